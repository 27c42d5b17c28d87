#!/usr/bin/env python3
"""Consumers with exec handlers (tests/plugins/handler_fail.py, which logs every record it is
handed to $SLUICE_TEST_LOG before it answers).

- per shard, records reach the handler in sequence order, each exactly once when nothing fails;
- a partial failure (a FAIL record, reported in batchItemFailures): the records before it are
  checkpointed and not delivered again, the checkpoint never passes the failing record before
  it is given up on; with --max-retries 2 and --on-failure the failing record lands in the
  on-failure stream with its origin (stream, shard, seq, key, ts, reason, base64 data), after
  exactly 1 + 2 deliveries, and the shard moves on;
- --bisect-on-error: only the failing record is given up on, its batch neighbours succeed;
- CRASH (the handler exits): retried, the handler started again; HANG with --timeout 1000: the
  process group is killed, "timed out" reported, retried; GARBAGE (a line that is not JSON):
  failed and retried.
"""
import base64
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
tmp = tempfile.mkdtemp(prefix="sluice-exec-")


def logpath(name):
    return os.path.join(tmp, name + ".log")


def deliveries(log):
    """[(shard, seq, data)] in log order."""
    return [(e["shard"], int(e["seq"]), e["data"]) for e in cu.read_jsonl(log)]


def test_order_per_shard_exactly_once():
    c = srv.client()
    c.create_stream("ord", 4)
    recs = [("key-%d" % (i % 53), "rec-%d" % i) for i in range(800)]
    res = []
    for i in range(0, len(recs), 200):
        res += c.produce("ord", recs[i:i + 200])
    produced = {}  # shard -> [(seq, key, data)]
    for (k, d), (st, sh, seq) in zip(recs, res):
        assert st == 0
        produced.setdefault(sh, []).append((seq, k, d))
    c.create_consumer("ord-c", "ord", cu.exec_handler_fail(logpath("ord")), start="trim-horizon",
                      batch_size=25)
    cu.wait_caught_up(c, "ord-c", "ord", 20)
    got = {}
    for e in cu.read_jsonl(logpath("ord")):
        got.setdefault(e["shard"], []).append((int(e["seq"]), e["key"], e["data"]))
    for sh, want in produced.items():
        assert got.get(sh) == want, ("shard %d: handler saw" % sh, (got.get(sh) or [])[:5],
                                     "want", want[:5])
    d = c.describe_consumer("ord-c")
    for s in d["shards"]:
        assert s["delivered"] == len(produced[s["id"]]) and s["retries"] == 0, s
    c.delete_consumer("ord-c")
    c.close()


def test_partial_failure_max_retries_on_failure():
    c = srv.client()
    c.create_stream("pf", 1)
    c.create_stream("pf-dlq", 1)
    recs = [("pk-%d" % i, "a%d" % i) for i in range(10)] + [("pk-fail", "FAIL-me")] + \
        [("pk-%d" % i, "b%d" % i) for i in range(9)]
    res = c.produce("pf", recs)
    seq = {d: s for (_, d), (_, _, s) in zip(recs, res)}
    fail_seq = seq["FAIL-me"]
    src = {r["seq"]: r for r in c.read_all("pf", 0)}
    c.create_consumer("pf-c", "pf", cu.exec_handler_fail(logpath("pf")), start="trim-horizon",
                      max_retries=2, on_failure="pf-dlq")
    seen = []  # (checkpoint, sent_to_on_failure) observed while it works
    deadline = time.monotonic() + 15
    while True:
        s = c.describe_consumer("pf-c")["shards"][0]
        seen.append((s["checkpoint"], s["sent_to_on_failure"], s["state"]))
        if s["checkpoint"] == len(recs) and s["lag_records"] == 0:
            break
        assert time.monotonic() < deadline, ("no progress", s)
        time.sleep(0.01)
    for cp, sent, state in seen:
        if sent == 0:
            assert cp < fail_seq, ("checkpoint passed the failing record before giving up",
                                   cp, fail_seq, seen)
    assert any(cp == fail_seq - 1 and state == "RETRYING" for cp, sent, state in seen), \
        ("never saw the shard retrying with the checkpoint just before the failing record", seen)
    log = deliveries(logpath("pf"))
    count = {}
    for _, sq, _ in log:
        count[sq] = count.get(sq, 0) + 1
    for i in range(10):
        assert count[seq["a%d" % i]] == 1, ("a record before the failure was redelivered",
                                            "a%d" % i, count)
    assert count[fail_seq] == 3, ("deliveries of the failing record with --max-retries 2",
                                  count[fail_seq])
    dlq = cu.on_failure_records(c, "pf-dlq")
    by_seq = {int(o["seq"]): (r, o) for _, r, o in dlq}
    assert fail_seq in by_seq, ("failing record not in the on-failure stream", dlq)
    assert not any(seq["a%d" % i] in by_seq for i in range(10)), "a succeeded record in dlq"
    for sq, (r, o) in by_seq.items():
        orig = src[sq]
        assert o["consumer"] == "pf-c" and o["stream"] == "pf", o
        assert o["shard"] == "shardId-000000000000", o
        assert o["seq"] == str(sq), o
        assert o["key"] == orig["key"].decode() and r["key"] == orig["key"], (o, orig)
        assert base64.b64decode(o["data"]) == orig["data"], (o, orig)
        assert o["ts"] == orig["ts"], (o, orig)
        assert o["reason"] == "max_retries", o
        assert o["error"], o
    # The shard moves on: new records are delivered.
    c.produce("pf", [("pk-new", "c%d" % i) for i in range(5)])
    cu.wait_caught_up(c, "pf-c", "pf", 10)
    assert {"c%d" % i for i in range(5)} <= {d for _, _, d in deliveries(logpath("pf"))}
    c.delete_consumer("pf-c")
    c.close()
    o = by_seq[fail_seq][1]
    # ENGINE BUG (reported to the lead): "attempts" says 2 (the retries) for a record that was
    # delivered 3 times (1 + --max-retries 2); the handler log above counts 3 deliveries.
    assert o["attempts"] == count[fail_seq], ("attempts in the on-failure record", o["attempts"],
                                              "deliveries seen by the handler", count[fail_seq])


def test_bisect_isolates_the_failing_record():
    c = srv.client()
    c.create_stream("bi", 1)
    c.create_stream("bi-dlq", 1)
    recs = [("bk-%d" % i, "n%d" % i) for i in range(16)]
    recs[5] = ("bk-5", "FAIL-bisect")
    res = c.produce("bi", recs)
    seq = {d: s for (_, d), (_, _, s) in zip(recs, res)}
    c.create_consumer("bi-c", "bi", cu.exec_handler_fail(logpath("bi")), start="trim-horizon",
                      batch_size=16, max_retries=1, bisect_on_error=True, on_failure="bi-dlq")
    d = cu.wait_caught_up(c, "bi-c", "bi", 15)
    s = d["shards"][0]
    dlq = cu.on_failure_records(c, "bi-dlq")
    assert [o["seq"] for _, _, o in dlq] == [str(seq["FAIL-bisect"])], \
        ("with --bisect-on-error only the failing record is given up on", dlq)
    assert base64.b64decode(dlq[0][2]["data"]) == b"FAIL-bisect"
    assert s["delivered"] == 15 and s["sent_to_on_failure"] == 1, s
    assert s["retries"] > 0, s
    # Every neighbour was handed to the handler and, in its last delivery, not behind a FAIL.
    seen = {sq for _, sq, _ in deliveries(logpath("bi"))}
    assert set(seq.values()) <= seen, (sorted(set(seq.values()) - seen))
    c.delete_consumer("bi-c")
    c.close()


def test_crash_hang_garbage():
    c = srv.client()
    cases = {
        # name: (bad record, options, words expected in the given-up record's error)
        "cr": ("CRASH", dict(batch_size=10, bisect_on_error=True), ("status 3",)),
        "hg": ("HANG", dict(batch_size=1, timeout_ms=1000), ("timed out",)),
        "gb": ("GARBAGE", dict(batch_size=10, bisect_on_error=True), ()),
    }
    seqs = {}
    for name, (bad, opts, _) in cases.items():
        c.create_stream(name, 1)
        c.create_stream(name + "-dlq", 1)
        recs = [("x", "%s-ok-%d" % (name, i)) for i in range(3)] + [("x", bad)] + \
            [("x", "%s-ok-%d" % (name, i)) for i in range(3, 6)]
        res = c.produce(name, recs)
        seqs[name] = {d: s for (_, d), (_, _, s) in zip(recs, res)}
    t0 = time.monotonic()
    for name, (bad, opts, _) in cases.items():
        c.create_consumer(name + "-c", name, cu.exec_handler_fail(logpath(name)),
                          start="trim-horizon", max_retries=1, on_failure=name + "-dlq", **opts)
    errors = {name: set() for name in cases}

    def all_done():
        done = True
        for name in cases:
            d = c.describe_consumer(name + "-c")
            errors[name].add(d["shards"][0]["last_error"])
            done = done and cu.caught_up(c, name + "-c", name) is not None
        return done
    sp.wait_until(all_done, 20, "the CRASH/HANG/GARBAGE consumers to give up and move on",
                  interval=0.02)
    elapsed = time.monotonic() - t0
    for name, (bad, opts, words) in cases.items():
        s = c.describe_consumer(name + "-c")["shards"][0]
        assert s["retries"] > 0 and s["batches_failed"] >= 2, (name, s)
        assert s["delivered"] == 6 and s["sent_to_on_failure"] == 1, (name, s)
        dlq = cu.on_failure_records(c, name + "-dlq")
        assert len(dlq) == 1 and base64.b64decode(dlq[0][2]["data"]) == bad.encode(), (name, dlq)
        o = dlq[0][2]
        assert o["reason"] == "max_retries" and o["seq"] == str(seqs[name][bad]), o
        for w in words:
            assert w in o["error"], (name, "error of the given-up record", o["error"])
        log = deliveries(logpath(name))
        bad_deliveries = sum(1 for _, _, d in log if d == bad)
        assert bad_deliveries >= 2, (name, "the bad record was not retried", log)
        ok = {d for _, _, d in log if d != bad}
        assert ok == {"%s-ok-%d" % (name, i) for i in range(6)}, (name, ok)
    assert any("timed out" in e for e in errors["hg"]), ("describe never showed the timeout",
                                                        errors["hg"])
    assert any(("status 3" in e or "exited" in e) for e in errors["cr"]), errors["cr"]
    # The hung handlers were killed with their process group: at most the current (idle)
    # handler of the consumer is left.
    pids = sp.wait_until(lambda: (lambda p: p if len(p) <= 1 else None)(
        cu.procs_with_env("SLUICE_CONSUMER", "hg-c")) or [None], 5,
        "timed-out HANG handlers to be gone")
    assert elapsed < 15, elapsed
    for name in cases:
        c.delete_consumer(name + "-c")
    c.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=100)
finally:
    srv.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
