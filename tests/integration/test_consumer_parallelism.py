#!/usr/bin/env python3
"""--parallelism: a shard's records spread over several handler invocations at once, by
partition key, so each key still sees its records in order and never two batches at a time; and
a slow handler gets through a shard faster than with --parallelism 1.

The handler (tests/integration/log_handler.py) sleeps 6 ms per record and logs each batch with
its entry and exit times (time.time(), comparable across the lanes' processes)."""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

srv = sp.Server()
srv.start()
tmp = tempfile.mkdtemp(prefix="sluice-par-")
KEYS = 40
RECORDS = 480
PER_RECORD_MS = 6


def run(parallelism):
    """Produce RECORDS on a fresh 1-shard stream, consume them with the slow handler; returns
    (seconds from create to caught up, log entries, {seq: (key, data)})."""
    name = "par%d" % parallelism
    log = os.path.join(tmp, name + ".log")
    c = srv.client()
    c.create_stream(name, 1)
    recs = [("key-%02d" % (i % KEYS), "%s-%d" % (name, i)) for i in range(RECORDS)]
    res = c.produce(name, recs)
    produced = {seq: (k, d) for (k, d), (_, _, seq) in zip(recs, res)}
    t0 = time.monotonic()
    c.create_consumer(name + "-c", name,
                      cu.exec_log_handler(log, sleep_per_record_ms=PER_RECORD_MS),
                      start="trim-horizon", batch_size=10, parallelism=parallelism)
    d = cu.wait_caught_up(c, name + "-c", name, 30)
    elapsed = time.monotonic() - t0
    assert d["shards"][0]["delivered"] == RECORDS, cu.describe_str(d)
    assert d["parallelism"] == parallelism
    c.delete_consumer(name + "-c")
    c.close()
    return elapsed, cu.read_jsonl(log), produced


def check_key_order(entries, produced):
    seen = {}
    by_key = {}
    for e in sorted(entries, key=lambda e: e["t0"]):
        keys = set()
        for seq, key, data in e["recs"]:
            assert produced[seq] == (key, data), (seq, key, data)
            seen[seq] = seen.get(seq, 0) + 1
            by_key.setdefault(key, []).append(seq)
            keys.add(key)
        for k in keys:
            by_key.setdefault("#intervals " + k, []).append((e["t0"], e["t1"], e["pid"]))
    assert sorted(seen) == sorted(produced) and set(seen.values()) == {1}, \
        ("not every record exactly once", len(seen))
    for k, v in by_key.items():
        if k.startswith("#intervals "):
            for (a0, a1, pa), (b0, b1, pb) in zip(v, v[1:]):
                assert a1 <= b0, ("two batches of key %s overlapped in time" % k[11:],
                                  (a0, a1, pa), (b0, b1, pb))
        else:
            assert v == sorted(v) and len(set(v)) == len(v), ("key %s out of order" % k, v)


def test_parallelism_keeps_key_order_and_is_faster():
    t1, e1, p1 = run(1)
    check_key_order(e1, p1)
    t4, e4, p4 = run(4)
    check_key_order(e4, p4)
    pids = {e["pid"] for e in e4}
    assert len(pids) == 4, ("expected 4 handler processes (lanes) for the shard", pids)
    # Real concurrency: batches of different lanes overlapped in time.
    ivs = sorted((e["t0"], e["t1"]) for e in e4)
    overlaps = sum(1 for (a0, a1), (b0, b1) in zip(ivs, ivs[1:]) if b0 < a1)
    assert overlaps > 0, "no two batches ever ran at the same time with --parallelism 4"
    speedup = t1 / t4
    print("parallelism 1: %.2fs, parallelism 4: %.2fs, speed-up %.2fx" % (t1, t4, speedup))
    assert speedup > 1.5, ("--parallelism 4 is not faster", t1, t4)


def test_failing_lane_blocks_only_itself():
    """With --parallelism 3, a failing record blocks its own lane (the keys that share its
    handler process): the other lanes' records of the window are delivered meanwhile, the
    checkpoint stays before the failing record until it is given up on, then everything moves
    on. Lanes are told apart by the handler's pid (one process per lane)."""
    log = os.path.join(tmp, "lane.log")
    c = srv.client()
    c.create_stream("lane", 1)
    c.create_stream("lane-dlq", 1)
    recs = [("key-%02d" % (i % 12), "v%d" % i) for i in range(60)]
    recs[5] = (recs[5][0], "FAIL-lane")
    res = c.produce("lane", recs)
    fail_seq = res[5][2]
    c.create_consumer("lane-c", "lane", cu.exec_log_handler(log, fail_prefix="FAIL"),
                      start="trim-horizon", batch_size=20, parallelism=3, max_retries=4,
                      on_failure="lane-dlq")
    seen_cp = []

    def finished():
        s = c.describe_consumer("lane-c")["shards"][0]
        seen_cp.append((s["checkpoint"], s["sent_to_on_failure"]))
        return cu.caught_up(c, "lane-c", "lane")
    sp.wait_until(finished, 15, "the lane consumer to give up and finish", interval=0.02)
    for cp, sent in seen_cp:
        if not sent:
            assert cp < fail_seq, ("checkpoint passed the failing record", cp, fail_seq)
    entries = cu.read_jsonl(log)
    key_of = {seq: k for (k, d), (_, _, seq) in zip(recs, res)}
    pid_of_key = {}
    for e in entries:
        for seq, key, _ in e["recs"]:
            pid_of_key.setdefault(key, set()).add(e["pid"])
    assert all(len(p) == 1 for p in pid_of_key.values()), ("a key moved between lanes",
                                                          pid_of_key)
    failed = [e for e in entries if e.get("failed")]
    assert len(failed) == 5, ("1 delivery + 4 retries of the failing lane", len(failed))
    lane_pid = failed[0]["pid"]
    lane_keys = {k for k, p in pid_of_key.items() if p == {lane_pid}}
    other = {seq for seq, k in key_of.items() if k not in lane_keys}
    assert other, "every key landed in the failing lane"
    done_at = {}
    for e in entries:
        if not e.get("failed"):
            for r in e["recs"]:
                done_at.setdefault(r[0], e["t1"])
    last_retry = max(e["t0"] for e in failed)
    late = sorted(seq for seq in other if not done_at.get(seq, 1e18) < last_retry)
    assert not late, ("records of other lanes waited for the failing lane", late)
    dlq = cu.on_failure_records(c, "lane-dlq")
    given_up = {int(o["seq"]) for _, _, o in dlq}
    assert fail_seq in given_up, dlq
    # Only records of the failing lane can have been given up on with it.
    assert not given_up & other, sorted(given_up & other)
    c.delete_consumer("lane-c")
    c.close()

try:
    sp.run_tests(sp.collect(globals()), time_limit=80)
finally:
    srv.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
