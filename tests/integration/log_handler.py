#!/usr/bin/env python3
"""Exec handler for the consumer integration tests (python3 stdlib only).

Reads one Lambda-style Kinesis event per stdin line. For each batch it sleeps --sleep-ms (plus --sleep-per-record-ms per record), then
appends ONE JSON line to --log describing the whole batch, and only then answers {} (so a batch
in the log is one the handler finished before sluiced could hear about it: a checkpoint may never
pass a record that is not in the log):

  {"gen": $SLUICE_TEST_GEN or "", "pid": ..., "shard": $SLUICE_SHARD, "t0": entry time,
   "t1": exit time (time.time()), "recs": [[seq (int), key, data (UTF-8, backslash-escaped)]...]}

The line goes out with a single write() on an O_APPEND descriptor, so the lines of several
handler processes (shards, lanes) never interleave. With --fail-prefix P, records whose data
starts with P are reported in batchItemFailures (and the batch is still logged, with "failed").
"""
import argparse
import base64
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--sleep-ms", type=float, default=0)
    ap.add_argument("--sleep-per-record-ms", type=float, default=0)
    ap.add_argument("--fail-prefix", default=None)
    a = ap.parse_args()
    fd = os.open(a.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    shard = int(os.environ.get("SLUICE_SHARD", "-1"))
    gen = os.environ.get("SLUICE_TEST_GEN", "")
    fail = a.fail_prefix.encode() if a.fail_prefix else None
    for line in sys.stdin:
        t0 = time.time()
        event = json.loads(line)
        recs, failures = [], []
        for r in event["Records"]:
            k = r["kinesis"]
            data = base64.b64decode(k["data"])
            recs.append([int(k["sequenceNumber"]), k["partitionKey"],
                         data.decode("utf-8", "backslashreplace")])
            if fail is not None and data.startswith(fail):
                failures.append({"itemIdentifier": k["sequenceNumber"]})
        pause = a.sleep_ms + a.sleep_per_record_ms * len(recs)
        if pause:
            time.sleep(pause / 1000.0)
        entry = {"gen": gen, "pid": os.getpid(), "shard": shard, "t0": t0, "t1": time.time(),
                 "recs": recs}
        if failures:
            entry["failed"] = [f["itemIdentifier"] for f in failures]
        os.write(fd, (json.dumps(entry) + "\n").encode())
        sys.stdout.write(json.dumps({"batchItemFailures": failures} if failures else {}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        # sluiced went away (killed by a test) while we answered: nothing more to do.
        os._exit(0)
