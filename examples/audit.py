"""An ordinary AWS Lambda handler for a Kinesis event source, run by sluice unchanged:

    sluice consumer create orders-audit --stream orders \
        --handler 'exec:python3 tools/lambda-shim.py examples/audit.py'

Every order is appended to audit.jsonl (in sluiced's working directory, or $AUDIT_FILE) as one
JSON line. A record that is not a JSON object with an "order_id" is reported as a batch item
failure: sluice checkpoints the records before it and retries from it (and, with --on-failure,
eventually sends it there). Records after a failure are delivered again with the retry, so the
handler stops at the first failure instead of writing them twice.
"""
import base64
import json
import os

AUDIT_FILE = os.environ.get("AUDIT_FILE", "audit.jsonl")


def handler(event, context):
    failures = []
    lines = []
    for record in event["Records"]:
        kinesis = record["kinesis"]
        try:
            order = json.loads(base64.b64decode(kinesis["data"]))
            if not isinstance(order, dict) or "order_id" not in order:
                raise ValueError("not an order")
        except ValueError as e:
            print("bad order at %s: %s" % (kinesis["sequenceNumber"], e))  # sluiced's log
            failures.append({"itemIdentifier": kinesis["sequenceNumber"]})
            break
        lines.append(json.dumps({
            "order_id": order["order_id"],
            "key": kinesis["partitionKey"],
            "seq": kinesis["sequenceNumber"],
            "arrived": kinesis["approximateArrivalTimestamp"],
            "request": context.aws_request_id,
        }) + "\n")
    with open(AUDIT_FILE, "a", encoding="utf-8") as f:
        f.writelines(lines)
    return {"batchItemFailures": failures}
