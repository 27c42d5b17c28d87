#!/usr/bin/env python3
"""Consumers and firehoses follow resharding like the KCL (docs/architecture.md, "Resharding").

- an exec consumer (tests/plugins/handler_fail.py, which logs every record it is handed) created
  before split/merge/scale under producer load sees every acknowledged record exactly once, and
  each partition key's records in order across parent -> child (a child starts only after its
  parents are fully processed); closed shards end up "finished" in describe;
- a TRIM_HORIZON consumer created after the reshards starts at the roots and sees the same;
  a LATEST one created after them sees only what is produced later, in order;
- after a restart, consumers go on from their checkpoints: nothing delivered twice, children of
  finished parents go on, and a reshard after the restart is followed too;
- a firehose (file://) archives every record exactly once, and writes a child's objects only after
  every object of its parents.
"""
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402
import firehose_util as fu  # noqa: E402

STREAM = "rsc"
KEYS = 40
tmp = tempfile.mkdtemp(prefix="sluice-rsc-")
srv = None
acked = {}  # key -> [seq] in acknowledgement order (one producer)
records = {}  # (shard, seq) -> (key, data)


def logpath(name):
    return os.path.join(tmp, name + ".log")


def produce(c, n, tag):
    batch = [("key-%d" % (i % KEYS), "%s-%d" % (tag, i)) for i in range(n)]
    for (k, d), (st, sh, seq) in zip(batch, c.produce(STREAM, batch)):
        assert st == 0, sp.ERR.get(st, st)
        acked.setdefault(k, []).append(seq)
        records[(sh, seq)] = (k, d)


def deliveries(name):
    return [(e["shard"], int(e["seq"]), e["key"], e["data"]) for e in cu.read_jsonl(logpath(name))]


def check_consumer(name, since=None):
    """Every record (or each key's records with seq > since[key]) exactly once, in key order."""
    got = deliveries(name)
    seen = set()
    for sh, seq, k, d in got:
        assert (sh, seq) not in seen, ("delivered twice", name, sh, seq)
        seen.add((sh, seq))
        assert records.get((sh, seq)) == (k, d), ("unknown or wrong record", name, sh, seq, k, d)
    per_key = {}
    for sh, seq, k, d in got:
        per_key.setdefault(k, []).append(seq)
    for k, seqs in acked.items():
        want = [q for q in seqs if since is None or q > since.get(k, 0)]
        assert per_key.get(k, []) == want, ("key %s: handler saw %s, want %s"
                                            % (k, per_key.get(k, [])[:8], want[:8]))


def wait_consumer(c, name, timeout=60):
    cu.wait_caught_up(c, name, STREAM, timeout)


def closed_ids(c):
    shards = c.list_shards(STREAM)
    return {s["id"] for s in shards
            if any(o["parent"] == s["id"] or o["adjacent"] == s["id"] for o in shards)}


def test_consumer_follows_lineage_under_load():
    c = srv.client()
    c.create_stream(STREAM, 2)
    produce(c, 400, "pre")
    c.create_consumer("early", STREAM, cu.exec_handler_fail(logpath("early")),
                      start="trim-horizon", batch_size=20)
    c.create_firehose("fh", STREAM, "file://" + os.path.join(tmp, "fh"), buffer_bytes=1 << 20,
                      buffer_interval_ms=300, compression="none")
    stop = threading.Event()
    err = []

    def load():
        try:
            pc = srv.client()
            for i in range(2000):  # bounded
                if stop.is_set():
                    break
                produce(pc, 20, "load%d" % i)
                time.sleep(0.005)
            pc.close()
        except BaseException as e:  # noqa: BLE001
            err.append(e)
    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.3)
    s0 = [s for s in c.list_shards(STREAM) if s["id"] == 0][0]
    c.split_shard(STREAM, 0, (s0["start"] + s0["end"] + 1) // 2)
    time.sleep(0.3)
    c.merge_shards(STREAM, 2, 3)
    time.sleep(0.3)
    c.scale_stream(STREAM, 3)
    time.sleep(0.3)
    stop.set()
    t.join(60)
    assert not t.is_alive() and not err, err
    produce(c, 200, "post")
    wait_consumer(c, "early")
    check_consumer("early")
    d = c.describe_consumer("early")
    closed = closed_ids(c)
    for s in d["shards"]:
        if s["id"] in closed:
            assert s["state"] == "FINISHED", cu.describe_str(d)
    assert {s["id"] for s in d["shards"]} == {s["id"] for s in c.list_shards(STREAM)}
    c.close()


def test_firehose_archives_children_after_parents():
    c = srv.client()
    tips = fu.shard_tips(c, STREAM, None)
    fu.wait_archived(c, "fh", tips, 60)
    root = os.path.join(tmp, "fh")
    objects, tmps = fu.list_file_objects(root)
    assert not tmps, tmps
    stream_records = {s["id"]: c.read_all(STREAM, s["id"]) for s in c.list_shards(STREAM)}
    ranges = fu.verify_archive(objects, STREAM, stream_records)
    mtime = {}
    for shard, rs in ranges.items():
        ts = [os.stat(os.path.join(root, key)).st_mtime_ns for _, _, key in rs]
        mtime[shard] = (min(ts), max(ts))
    for s in c.list_shards(STREAM):
        for p in (s["parent"], s["adjacent"]):
            if p >= 0 and p in mtime and s["id"] in mtime:
                assert mtime[s["id"]][0] >= mtime[p][1], (
                    "shard %d archived before its parent %d finished" % (s["id"], p))
    d = c.describe_firehose("fh")
    closed = closed_ids(c)
    for s in d["shards"]:
        if s["id"] in closed:
            assert s["state"] == "FINISHED", d["shards"]
    c.close()


def test_new_consumers_after_reshard():
    c = srv.client()
    c.create_consumer("late-th", STREAM, cu.exec_handler_fail(logpath("late-th")),
                      start="trim-horizon", batch_size=50)
    c.create_consumer("late-latest", STREAM, cu.exec_handler_fail(logpath("late-latest")),
                      start="latest", batch_size=50)
    time.sleep(0.2)
    since = {k: v[-1] for k, v in acked.items()}
    produce(c, 300, "after-late")
    wait_consumer(c, "late-th")
    wait_consumer(c, "late-latest")
    check_consumer("late-th")
    check_consumer("late-latest", since)
    d = c.describe_consumer("late-latest")
    closed = closed_ids(c)
    assert all(s["state"] == "FINISHED" for s in d["shards"] if s["id"] in closed), \
        cu.describe_str(d)
    c.close()


def test_child_waits_for_a_stuck_parent():
    """A parent stuck retrying holds its children back (WAITING_PARENTS, nothing delivered);
    resetting the parent past the bad record lets it finish, then the children run."""
    c = srv.client()
    c.create_stream("rsw", 1)
    res = c.produce("rsw", [("w", "w-1"), ("w", "FAIL-w-2"), ("w", "w-3")])
    bad_seq = res[1][2]
    c.create_consumer("stuck", "rsw", cu.exec_handler_fail(logpath("stuck")),
                      start="trim-horizon", batch_size=10, max_retries=-1)
    sp.wait_until(lambda: any(s["state"] == "RETRYING" for s in c.describe_consumer("stuck")["shards"]),
                  20, "the parent to retry")
    kids = c.split_shard("rsw", 0, 1 << 127)
    after = c.produce("rsw", [("w", "w-%d" % i) for i in range(4, 40)] +
                      [("x%d" % i, "x-%d" % i) for i in range(40)])
    assert all(st == 0 and sh in kids for st, sh, _ in after), after
    time.sleep(1.0)
    d = c.describe_consumer("stuck")
    states = {s["id"]: s["state"] for s in d["shards"]}
    assert states[kids[0]] == states[kids[1]] == "WAITING_PARENTS", cu.describe_str(d)
    assert all(s["delivered"] == 0 for s in d["shards"] if s["id"] in kids), cu.describe_str(d)
    assert not [e for e in cu.read_jsonl(logpath("stuck")) if e["shard"] in kids]
    c.reset_consumer("stuck", 0, sp.POS_AFTER_SEQ, bad_seq)

    def done():
        d = c.describe_consumer("stuck")
        st = {s["id"]: s for s in d["shards"]}
        return (st[0]["state"] == "FINISHED" and
                sum(st[k]["delivered"] for k in kids) == len(after)) and d
    sp.wait_until(done, 30, "the children to run after the parent finished")
    child_w = [int(e["seq"]) for e in cu.read_jsonl(logpath("stuck"))
               if e["key"] == "w" and e["shard"] in kids]
    assert child_w == [q for st, sh, q in after[:36]], child_w
    parent_last = max(int(e["seq"]) for e in cu.read_jsonl(logpath("stuck")) if e["shard"] == 0)
    assert min(child_w) > parent_last
    c.delete_consumer("stuck")
    c.close()


def test_parent_records_expiring_unprocessed_release_the_children():
    """A parent whose records expire before they could be processed (the handler fails them
    until retention removes them) counts as finished; its children then run."""
    c = srv.client()
    c.create_stream("rse", 1, retention_ms=1000)
    c.produce("rse", [("e", "FAIL-%d" % i) for i in range(3)])
    c.create_consumer("exp", "rse", cu.exec_handler_fail(logpath("exp")), start="trim-horizon",
                      batch_size=10, max_retries=-1)
    kids = c.split_shard("rse", 0, 1 << 127)

    def parent_done():
        d = c.describe_consumer("exp")
        st = {s["id"]: s for s in d["shards"]}
        return st[0]["state"] == "FINISHED" and d
    d = sp.wait_until(parent_done, 30, "the parent to finish by expiry")
    st = {s["id"]: s for s in d["shards"]}
    assert st[0]["expired"] == 3 and st[0]["delivered"] == 0, cu.describe_str(d)
    # the children were waiting, and start now (before anything new could expire too)
    sp.wait_until(lambda: all(s["state"] == "IDLE" for s in c.describe_consumer("exp")["shards"]
                              if s["id"] in kids), 10, "the children to start")
    res = c.produce("rse", [("e", "later-%d" % i) for i in range(20)])
    assert all(x[0] == 0 and x[1] in kids for x in res), res

    def children_done():
        d = c.describe_consumer("exp")
        return sum(s["delivered"] for s in d["shards"] if s["id"] in kids) == 20 and d
    sp.wait_until(children_done, 30, "the children to deliver")
    got = [int(e["seq"]) for e in cu.read_jsonl(logpath("exp")) if e["data"].startswith("later")]
    assert got == [x[2] for x in res], got
    c.delete_consumer("exp")
    c.close()


def test_restart_then_reshard_again():
    c = srv.client()
    c.close()
    assert srv.stop() == 0
    srv.start()
    c = srv.client()
    produce(c, 200, "restarted")
    open_now = [s for s in c.list_shards(STREAM) if s["id"] not in closed_ids(c)]
    c.scale_stream(STREAM, 2 * len(open_now))
    produce(c, 300, "rescaled")
    for name in ("early", "late-th"):
        wait_consumer(c, name)
        check_consumer(name)
    c.close()


if __name__ == "__main__":
    try:
        srv = sp.Server().start()
        sp.run_tests(sp.collect(globals()), time_limit=280)
    finally:
        if srv:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
