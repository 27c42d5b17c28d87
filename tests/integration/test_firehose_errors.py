"""A firehose whose uploads keep failing gives up after --max-retry-duration and, having no
on-failure stream, stores the records under errors/ in the same layout, instead of dropping them;
the shard then moves on.

The failure is made real and specific: the destination's YYYY folder is a regular file, so every
archive key (YYYY/MM/DD/HH/...) fails with ENOTDIR while errors/... keys still work.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from sluiceproto import Server  # noqa: E402


def wait_until(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def main():
    passed = failed = 0
    dest = tempfile.mkdtemp(prefix="sluice-fh-errors-")
    try:
        with Server() as s:
            c = s.client()
            c.create_stream("clicks", 1)
            # The hour folder of every key starts with the current year, in UTC.
            open(os.path.join(dest, time.strftime("%Y", time.gmtime())), "w").write("not a folder")
            c.create_firehose("arch", "clicks", "file://" + dest, buffer_interval_ms=60000,
                              max_retry_duration_ms=1000)
            sent = [(f"k{i}", f"data-{i}") for i in range(200)]
            c.produce("clicks", sent)
            c.flush_firehose("arch")
            found = wait_until(lambda: glob.glob(dest + "/errors/**/*.jsonl.zst", recursive=True), 15)
            objs = glob.glob(dest + "/errors/**/*.jsonl.zst", recursive=True)
            lines = []
            for o in objs:
                out = subprocess.run(["zstd", "-dc", o], capture_output=True, check=True).stdout
                lines += out.decode().splitlines()
            wait_until(lambda: c.describe_firehose("arch")["shards"][0]["checkpoint"] >= len(sent), 5)
            shard = c.describe_firehose("arch")["shards"][0]
            checks = [
                ("an errors/ object appeared", bool(found)),
                ("it holds every record once", len(lines) == len(sent)),
                ("the upload failures were counted", shard["upload_failures"] > 0),
                ("they count as handed off", shard["sent_to_on_failure"] == len(sent)),
                ("the checkpoint moved past them", shard["checkpoint"] >= len(sent)),
            ]
            for what, ok in checks:
                print(("ok   " if ok else "FAIL ") + what)
                passed += ok
                failed += not ok
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
