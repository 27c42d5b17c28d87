#!/usr/bin/env python3
"""Records that keep failing are retried until they expire from the stream (default
--max-retries -1), then given up on: dropped and counted ('expired' in describe) without an
on-failure stream, or written to it with reason "expired"; either way the checkpoint moves past
them and the shard moves on. The stream keeps records for 3 s, so this takes a few seconds. Also --max-record-age."""
import base64
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

srv = sp.Server()
srv.start()
RETENTION_MS = 3000


def test_retried_until_expiry_then_dropped_or_handed_off():
    c = srv.client()
    c.create_stream("ex", 2, retention_ms=RETENTION_MS)
    assert c.describe_stream("ex")["retention_ms"] == RETENTION_MS
    c.create_stream("ex-dlq", 1)
    c.create_consumer("ex-drop", "ex", cu.plugin("fail_on_marker"), start="latest")
    c.create_consumer("ex-onf", "ex", cu.plugin("fail_on_marker"), start="latest",
                      on_failure="ex-dlq")
    k0, k1 = cu.key_for_shard(0, 2), cu.key_for_shard(1, 2)
    recs = [(k0, "FAIL-%d" % i) for i in range(5)] + [(k1, "FAIL-x%d" % i) for i in range(3)]
    res = c.produce("ex", recs)
    src = {(r_sh, r["seq"]): r for r_sh in (0, 1) for r in c.read_all("ex", r_sh)}
    first_ts = min(r["ts"] for r in src.values())
    want_expired = {0: 5, 1: 3}
    gave_up_at = {}
    checkpoints = {"ex-drop": [], "ex-onf": []}

    def done():
        ok = True
        for name in ("ex-drop", "ex-onf"):
            d = c.describe_consumer(name)
            for s in d["shards"]:
                checkpoints[name].append((s["id"], s["checkpoint"], s["expired"],
                                          s["sent_to_on_failure"]))
                n = s["expired"] if name == "ex-drop" else s["sent_to_on_failure"]
                if n and (name, s["id"]) not in gave_up_at:
                    gave_up_at[(name, s["id"])] = cu.now_ms()
                ok = ok and n == want_expired[s["id"]] and s["checkpoint"] == want_expired[s["id"]]
        return ok
    sp.wait_until(done, 12, "the failing records to expire and be given up on", interval=0.05)
    for key, t in gave_up_at.items():
        assert t - first_ts >= RETENTION_MS - 50, ("given up before the records expired", key,
                                                    t - first_ts)
    # Before giving up the checkpoint stayed put.
    for name, seen in checkpoints.items():
        for sh, cp, expired, sent in seen:
            if not expired and not sent:
                assert cp == 0, (name, "checkpoint moved before the records were given up", seen)
    for name in ("ex-drop", "ex-onf"):
        for s in c.describe_consumer(name)["shards"]:
            assert s["retries"] >= 2 and s["delivered"] == 0, (name, s)
            if name == "ex-drop":
                assert s["sent_to_on_failure"] == 0, s
            else:
                assert s["expired"] == 0, ("handed off records counted as expired", s)
    dlq = cu.on_failure_records(c, "ex-dlq")
    got = sorted((o["shard"], int(o["seq"])) for _, _, o in dlq)
    want = sorted(("shardId-%012d" % sh, seq) for _, sh, seq in res)
    assert got == want, (got, want)
    for _, r, o in dlq:
        sh = int(o["shard"].split("-")[1])
        orig = src[(sh, int(o["seq"]))]
        assert o["reason"] == "expired", o
        assert o["consumer"] == "ex-onf" and o["stream"] == "ex", o
        assert base64.b64decode(o["data"]) == orig["data"] and o["ts"] == orig["ts"], (o, orig)
        assert r["key"] == orig["key"], (r, orig)
    # The shards move on: new (good) records are delivered.
    res = c.produce("ex", [(k0, "good-%d" % i) for i in range(4)] + [(k1, "good")])
    for name in ("ex-drop", "ex-onf"):
        d = cu.wait_caught_up(c, name, "ex", 5)
        sm = cu.shard_map(d)
        assert sm[0]["delivered"] == 4 and sm[1]["delivered"] == 1, (name, cu.describe_str(d))
    c.close()


def test_max_record_age():
    c = srv.client()
    c.create_stream("age", 1)
    c.create_stream("age-dlq", 1)
    c.create_consumer("age-c", "age", cu.plugin("fail_on_marker"), start="trim-horizon",
                      max_record_age_s=1, on_failure="age-dlq")
    res = c.produce("age", [("k", "FAIL-old"), ("k", "FAIL-older")])
    t0 = time.monotonic()
    d = cu.wait_caught_up(c, "age-c", "age", 8, "records older than --max-record-age 1 s to "
                          "be given up on")
    assert time.monotonic() - t0 >= 0.9, "given up before the records were 1 s old"
    s = d["shards"][0]
    assert s["sent_to_on_failure"] == 2 and s["retries"] >= 1 and s["delivered"] == 0, s
    dlq = cu.on_failure_records(c, "age-dlq")
    assert sorted(o["reason"] for _, _, o in dlq) == ["max_record_age"] * 2, dlq
    assert sorted(base64.b64decode(o["data"]) for _, _, o in dlq) == [b"FAIL-old",
                                                                      b"FAIL-older"]
    c.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=60)
finally:
    srv.cleanup()
