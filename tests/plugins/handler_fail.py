#!/usr/bin/env python3
"""Test exec handler for sluice consumers (python3 stdlib only).

Reads one Lambda-style Kinesis event per stdin line and answers one line per event. First it
appends every record of the batch to the file named by $SLUICE_TEST_LOG (if set), one JSON line
per record: {"shard": <int, from $SLUICE_SHARD>, "seq": "<decimal>", "key": "...",
"data": "<data decoded as UTF-8, invalid bytes backslash-escaped>"}. Then, looking at the batch's
records in order (data base64-decoded):
  data == b"CRASH"            exit with status 3 without answering
  data == b"HANG"             sleep forever (the consumer's timeout must kill it)
  data == b"GARBAGE"          answer a line that is not JSON
  data starts with b"FAIL"    reported in batchItemFailures (every such record)
otherwise it answers {}.
"""
import base64
import json
import os
import sys
import time


def log_batch(records):
    path = os.environ.get("SLUICE_TEST_LOG")
    if not path:
        return
    shard = int(os.environ.get("SLUICE_SHARD", "-1"))
    lines = []
    for r in records:
        k = r["kinesis"]
        data = base64.b64decode(k["data"]).decode("utf-8", "backslashreplace")
        lines.append(json.dumps({"shard": shard, "seq": k["sequenceNumber"],
                                 "key": k["partitionKey"], "data": data}) + "\n")
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(lines))
        f.flush()


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    for line in sys.stdin:
        event = json.loads(line)
        records = event["Records"]
        log_batch(records)
        failures = []
        for r in records:
            data = base64.b64decode(r["kinesis"]["data"])
            if data == b"CRASH":
                sys.stderr.write("handler_fail: CRASH record, exiting with status 3\n")
                sys.stderr.flush()
                os._exit(3)
            if data == b"HANG":
                while True:
                    time.sleep(3600)
            if data == b"GARBAGE":
                sys.stdout.write("this is not a JSON response\n")
                sys.stdout.flush()
                break
            if data.startswith(b"FAIL"):
                failures.append({"itemIdentifier": r["kinesis"]["sequenceNumber"]})
        else:
            answer({"batchItemFailures": failures} if failures else {})


if __name__ == "__main__":
    main()
