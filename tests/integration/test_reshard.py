#!/usr/bin/env python3
"""Resharding against a real sluiced: split, merge and scale while producers keep writing.

Afterwards every acknowledged record is read back exactly once, each partition key's sequence
numbers strictly increase across parent -> child, no closed shard holds a record after its
end_seq, readers get the 'shard ended' flag past a closed shard's end, the error cases answer
what docs/protocol.md says, and a restart reopens every shard (closed ones too) and routes by the
open ones."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import fault_util as fu  # noqa: E402

STREAM = "rs"
PRODUCERS = 6
BATCHES = 20000  # per producer at most; producers stop soon after the reshards end
BATCH_MAX = 20
KEYS_PER_PRODUCER = 4
TIME_LIMIT = 90  # seconds for the load phase
HASH_MAX = (1 << 128) - 1

srv = None
acked = {}  # (shard, seq) -> (key, data)
per_key = {}  # key -> [(shard, seq)] in acknowledgement order (one producer per key)
errors = []
lock = threading.Lock()


def producer(pid, deadline, stop):
    rnd = random.Random(pid)
    keys = ["p%d-k%d" % (pid, j) for j in range(KEYS_PER_PRODUCER)]
    try:
        c = srv.client()
        n = 0
        stopping = 0
        for b in range(BATCHES):
            if time.monotonic() > deadline:
                raise TimeoutError("producer %d: time limit after %d batches" % (pid, b))
            if stop.is_set():
                stopping += 1
                if stopping > 10:  # a few batches after the last reshard
                    break
            batch = []
            for _ in range(rnd.randrange(1, BATCH_MAX + 1)):
                k = rnd.choice(keys)
                batch.append((k, b"%s#%d" % (k.encode(), n)))
                n += 1
            res = c.produce(STREAM, batch)
            with lock:
                for (k, data), (status, shard, seq) in zip(batch, res):
                    if status != 0:
                        errors.append("producer %d: status %s" % (pid, sp.ERR.get(status, status)))
                        continue
                    if (shard, seq) in acked:
                        errors.append("(shard %d, seq %d) acknowledged twice" % (shard, seq))
                    acked[(shard, seq)] = (k.encode(), data)
                    per_key.setdefault(k, []).append((shard, seq))
        c.close()
    except BaseException as e:  # noqa: BLE001
        with lock:
            errors.append("producer %d: %r" % (pid, e))


def read_everything(c):
    """{(shard, seq): (key, data)} over every shard; checks end_seq and the ended flag."""
    got = {}
    for sh in c.list_shards(STREAM):
        closed = sh["end_seq"] != 0 or any(o["parent"] == sh["id"] or o["adjacent"] == sh["id"]
                                           for o in c.list_shards(STREAM))
        res = c.read(STREAM, sh["id"], sp.POS_TRIM_HORIZON)
        for _ in range(100000):
            for r in res["records"]:
                assert (sh["id"], r["seq"]) not in got, ("record read twice", sh["id"], r["seq"])
                got[(sh["id"], r["seq"])] = (r["key"], r["data"])
                assert r["seq"] >= sh["start_seq"], ("record before start_seq", sh, r["seq"])
                if closed:
                    assert r["seq"] <= sh["end_seq"], ("record after end_seq", sh, r["seq"])
            if res["next_seq"] >= res["tip"] or not res["records"]:
                break
            res = c.read(STREAM, sh["id"], sp.POS_AT_SEQ, res["next_seq"])
        assert res["ended"] == closed, ("shard_ended flag", sh, res["ended"])
    return got


def check_all(c):
    assert not errors, errors[:5]
    got = read_everything(c)
    missing = [k for k in acked if k not in got]
    assert not missing, ("acknowledged records not found", len(missing), missing[:5])
    extra = [k for k in got if k not in acked]
    assert not extra, ("records nobody acknowledged", extra[:5])
    wrong = [k for k in acked if got[k] != acked[k]]
    assert not wrong, ("wrong content", wrong[:5])
    for key, lst in per_key.items():
        seqs = [q for _, q in lst]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), ("per-key sequence broken", key, lst)


def open_shards(c):
    return sorted((s for s in c.list_shards(STREAM) if s["end_seq"] == 0 and not any(
        o["parent"] == s["id"] or o["adjacent"] == s["id"] for o in c.list_shards(STREAM))),
        key=lambda s: s["start"])


def test_reshard_under_load():
    c = srv.client()
    c.create_stream(STREAM, 2)
    stop = threading.Event()
    deadline = time.monotonic() + TIME_LIMIT
    threads = [threading.Thread(target=producer, args=(i, deadline, stop)) for i in range(PRODUCERS)]
    scrapes = [0]

    def scraper():  # /metrics reads every shard of every view while the reshards replace them
        try:
            port = srv.http_port()
            for _ in range(100000):  # bounded
                if stop.is_set():
                    return
                assert sp.http_get(port, "/metrics")[0] == 200
                scrapes[0] += 1
        except BaseException as e:  # noqa: BLE001
            with lock:
                errors.append("scraper: %r" % (e,))
    threads.append(threading.Thread(target=scraper))
    for t in threads:
        t.start()
    time.sleep(0.3)
    # split shard 0 at its midpoint
    s0 = [s for s in c.list_shards(STREAM) if s["id"] == 0][0]
    kids = c.split_shard(STREAM, 0, (s0["start"] + s0["end"] + 1) // 2)
    assert kids == [2, 3], kids
    time.sleep(0.3)
    # merge the two children back
    child = c.merge_shards(STREAM, 3, 2)
    assert child == 4, child
    time.sleep(0.3)
    assert c.scale_stream(STREAM, 4) == 4
    time.sleep(0.3)
    assert c.scale_stream(STREAM, 3) == 3
    # Whether a produce part reaches a parent while it is sealed is a race the load usually wins
    # within the reshards above; on a loaded machine it may not, so go on resharding (bounded)
    # until one did, while the producers still write.
    extra = 0

    def parked():
        m = fu.parse_metrics(sp.http_get(srv.http_port(), "/metrics")[1].decode())
        return m["sluice_parts_parked_total"] + m["sluice_parts_rerouted_total"]
    want_parked = os.environ.get("SLUICE_IT_FSYNC") != "never"  # see the end of the test
    while want_parked and parked() == 0 and extra < 40 and time.monotonic() < deadline - 2:
        assert c.scale_stream(STREAM, 4 if extra % 2 == 0 else 3) == (4 if extra % 2 == 0 else 3)
        extra += 1
    if extra % 2:
        assert c.scale_stream(STREAM, 3) == 3
        extra += 1
    time.sleep(0.3)
    assert c.scale_stream(STREAM, 5) == 5
    stop.set()
    for t in threads:
        t.join(TIME_LIMIT + 30)
        assert not t.is_alive(), "producer thread hung"
    ranges = [(s["start"], s["end"]) for s in open_shards(c)]
    assert len(ranges) == 5, ranges
    for i, (a, b) in enumerate(ranges):  # UNIFORM_SCALING: the even split
        assert a == i * (1 << 128) // 5, (i, a)
    assert ranges[-1][1] == HASH_MAX
    check_all(c)
    # every closed parent: children start after its end_seq
    shards = {s["id"]: s for s in c.list_shards(STREAM)}
    for s in shards.values():
        for p in (s["parent"], s["adjacent"]):
            if p >= 0:
                assert s["start_seq"] > shards[p]["end_seq"], (s, shards[p])
    assert len(acked) > 1000, len(acked)
    assert scrapes[0] > 0
    m = fu.parse_metrics(sp.http_get(srv.http_port(), "/metrics")[1].decode())
    assert m["sluice_reshards_total"] == 5 + extra, (m["sluice_reshards_total"], extra)
    assert m["sluice_reshards_failed_total"] == 0
    # Producers kept writing through the cut-overs: some parts reached a sealed parent.
    print("parts parked %d, rerouted %d" % (m["sluice_parts_parked_total"],
                                              m["sluice_parts_rerouted_total"]))
    # Under --fsync never (SLUICE_IT_FSYNC) a seal settles at once (no fdatasync to wait for),
    # so that window is too short to be hit reliably; the group run covers it.
    if os.environ.get("SLUICE_IT_FSYNC") != "never":
        assert m["sluice_parts_parked_total"] + m["sluice_parts_rerouted_total"] > 0, m
    # the views the reshards replaced are freed once no worker can hold them
    sp.wait_until(lambda: fu.parse_metrics(sp.http_get(srv.http_port(), "/metrics")[1].decode())
                  ["sluice_stream_views_retired"] == 0, 10, "replaced views to be freed")
    c.close()


def test_errors():
    c = srv.client()
    shards = {s["id"]: s for s in c.list_shards(STREAM)}
    closed = 0

    def expect(status, fn, *args):
        try:
            fn(*args)
        except sp.SluiceError as e:
            assert sp.ERR.get(e.status) == status, (status, str(e))
            return str(e)
        raise AssertionError("expected %s from %s%r" % (status, fn.__name__, args))

    expect("invalid_argument", c.split_shard, STREAM, closed, 1 << 100)
    op = open_shards(c)
    first = op[0]
    expect("invalid_argument", c.split_shard, STREAM, first["id"], first["start"])  # not above start
    expect("invalid_argument", c.split_shard, STREAM, first["id"], first["end"] + 1)  # outside
    expect("invalid_argument", c.merge_shards, STREAM, op[0]["id"], op[2]["id"])  # not adjacent
    expect("invalid_argument", c.merge_shards, STREAM, op[0]["id"], op[0]["id"])
    expect("invalid_argument", c.merge_shards, STREAM, op[0]["id"], closed)
    n = len(op)
    expect("invalid_argument", c.scale_stream, STREAM, 2 * n + 1)
    expect("invalid_argument", c.scale_stream, STREAM, (n - 1) // 2)
    expect("invalid_argument", c.scale_stream, STREAM, 0)
    expect("stream_not_found", c.scale_stream, "nosuch", 2)
    expect("stream_not_found", c.split_shard, "nosuch", 0, 5)
    expect("shard_not_found", c.split_shard, STREAM, 999, 5)
    expect("shard_not_found", c.merge_shards, STREAM, 999, op[0]["id"])
    # nothing changed
    assert [s["id"] for s in open_shards(c)] == [s["id"] for s in op]
    # scale to the same uniform count is a no-op
    assert c.scale_stream(STREAM, n) == n
    assert [s["id"] for s in open_shards(c)] == [s["id"] for s in op]
    c.close()


def test_concurrent_reshards_one_at_a_time():
    """Two reshards of one stream at once: each succeeds or gets resource_in_use."""
    outcomes = []

    def go(target):
        c = srv.client()
        try:
            outcomes.append(c.scale_stream(STREAM, target))
        except sp.SluiceError as e:
            outcomes.append(sp.ERR.get(e.status))
        c.close()
    n = len(open_shards(srv.client()))
    ts = [threading.Thread(target=go, args=(t,)) for t in (n + 1, n + 1, n + 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    # n+1 then n+1 again is a no-op; "resource_in_use" when they overlapped
    assert all(o in (n + 1, "resource_in_use") for o in outcomes), outcomes
    assert len(open_shards(srv.client())) == n + 1


def test_latest_and_closed_reads():
    c = srv.client()
    shards = c.list_shards(STREAM)
    closed = [s for s in shards if s["end_seq"] > 0]
    assert closed
    s = closed[0]
    r = c.read(STREAM, s["id"], sp.POS_LATEST)
    assert r["ended"] and not r["records"], r
    assert r["tip"] == s["end_seq"] + 1, (r, s)
    r = c.read(STREAM, s["id"], sp.POS_AT_SEQ, s["end_seq"])
    assert [x["seq"] for x in r["records"]] == [s["end_seq"]] and r["ended"], r
    c.close()


def test_restart_reopens_every_shard():
    c = srv.client()
    before = c.list_shards(STREAM)
    c.close()
    assert srv.stop() == 0
    srv.start()
    c = srv.client()
    after = c.list_shards(STREAM)
    strip = [{k: v for k, v in s.items() if k != "next_seq"} for s in before]
    assert [{k: v for k, v in s.items() if k != "next_seq"} for s in after] == strip
    check_all(c)
    open_ids = {s["id"] for s in open_shards(c)}
    res = c.produce(STREAM, [("after-restart-%d" % i, b"x%d" % i) for i in range(200)])
    for i, (status, shard, seq) in enumerate(res):
        assert status == 0 and shard in open_ids, (status, shard, open_ids)
        acked[(shard, seq)] = (b"after-restart-%d" % i, b"x%d" % i)
    check_all(c)
    c.close()


def test_abandoned_reshard_loses_nothing():
    """The child's log cannot be created (EIO from the fault shim): the split is answered with
    the error, nothing changes, producers never notice; once the fault is gone the same split
    works and its children start clean."""
    fsrv = fu.FaultServer()
    try:
        fsrv.start()
        c = fsrv.client()
        c.create_stream("rsf", 2)
        got, stop, errs = {}, threading.Event(), []

        def load():
            try:
                p = fsrv.client()
                for i in range(100000):  # bounded
                    if stop.is_set():
                        break
                    batch = [("f%d" % (j % 7), b"f-%d-%d" % (i, j)) for j in range(10)]
                    for (k, d), (st, sh, seq) in zip(batch, p.produce("rsf", batch)):
                        assert st == 0, sp.ERR.get(st, st)
                        got[(sh, seq)] = (k.encode(), d)
                p.close()
            except BaseException as e:  # noqa: BLE001
                errs.append(e)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.2)
        fsrv.set_faults("open:EIO:path=shardId-000000000003")
        before = c.list_shards("rsf")
        try:
            c.split_shard("rsf", 0, 1 << 126)
            raise AssertionError("the split should have failed")
        except sp.SluiceError as e:
            assert e.status == -fu.EIO, e
            assert "shard 3" in str(e), e
        after = c.list_shards("rsf")
        assert [(s["id"], s["end_seq"]) for s in after] == [(s["id"], s["end_seq"]) for s in before]
        time.sleep(0.2)
        fsrv.set_faults("")
        assert c.split_shard("rsf", 0, 1 << 126) == [2, 3]
        time.sleep(0.2)
        stop.set()
        t.join(60)
        assert not t.is_alive() and not errs, errs
        m = fsrv.metrics()
        assert m["sluice_reshards_failed_total"] == 1 and m["sluice_reshards_total"] == 1, m
        stored = {}
        for sh in c.list_shards("rsf"):
            for r in c.read_all("rsf", sh["id"]):
                stored[(sh["id"], r["seq"])] = (r["key"], r["data"])
        assert stored == got, (len(stored), len(got))
        assert any(sh in (2, 3) for sh, _ in got), "nothing reached the children"
        c.close()
    finally:
        fsrv.cleanup()


if __name__ == "__main__":
    try:
        srv = sp.Server().start()
        sp.run_tests(sp.collect(globals()), time_limit=240)
    finally:
        if srv:
            srv.cleanup()
