#!/usr/bin/env python3
"""A clean restart keeps everything: produce, SIGTERM (exit 0), start again on the same data
folder; streams, shard counts and every record come back with the same sequence numbers, and
appends continue above them. A second sluiced on a folder in use refuses to start."""
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

STREAMS = {"alpha": 1, "beta": 3, "gamma": 8}
root = tempfile.mkdtemp(prefix="sluice-restart-")
data = os.path.join(root, "data")
srv = None


def snapshot(c):
    """{stream: {shard: [(seq, ts, key, hash_key, data)]}}"""
    out = {}
    for name in c.list_streams():
        out[name] = {}
        for s in c.list_shards(name):
            out[name][s["id"]] = [(r["seq"], r["ts"], r["key"], r["hash_key"], r["data"])
                                  for r in c.read_all(name, s["id"])]
    return out


def produce_some(c, rnd, rounds, tag):
    acked = {}
    for name in STREAMS:
        for b in range(rounds):
            batch = []
            for j in range(rnd.randrange(1, 60)):
                key = "k%d" % rnd.randrange(50)
                d = b"%s/%s/%d/%d/" % (tag.encode(), name.encode(), b, j) + os.urandom(
                    rnd.choice((0, 10, 100, 3000)))
                hk = rnd.randrange(sp.HASH_SPACE) if j % 11 == 3 else None
                batch.append((key, d, hk))
            for (key, d, hk), (st, shard, seq) in zip(batch, c.produce(name, batch)):
                assert st == 0, sp.ERR.get(st, st)
                acked[(name, shard, seq)] = (key.encode(), d, hk)
    return acked


state = {}


def test_produce_then_sigterm():
    global srv
    srv = sp.Server(data_dir=data).start()
    c = srv.client()
    for name, n in STREAMS.items():
        c.create_stream(name, n, retention_ms=7 * 86400_000)
    rnd = random.Random(5)
    acked = produce_some(c, rnd, 30, "first")
    before = snapshot(c)
    # every acknowledged record is in the snapshot with its sequence number
    flat = {(n, sh, r[0]): (r[2], r[4], r[3]) for n, m in before.items() for sh, l in m.items()
            for r in l}
    assert flat == acked, "before restart: read-back differs from acknowledgements"
    state["before"] = before
    state["shards"] = {n: c.list_shards(n) for n in STREAMS}
    state["describe"] = {n: c.describe_stream(n) for n in STREAMS}
    c.close()
    rc = srv.stop()
    assert rc == 0, "sluiced exited %s after SIGTERM" % rc


def test_restart_restores_everything():
    global srv
    assert "before" in state, "first phase failed"
    srv = sp.Server(data_dir=data).start()
    c = srv.client()
    assert sorted(c.list_streams()) == sorted(STREAMS), c.list_streams()
    for n, count in STREAMS.items():
        d = c.describe_stream(n)
        assert len(d["shards"]) == count, (n, d)
        old = state["describe"][n]
        assert (d["retention_ms"], d["created_ms"]) == (old["retention_ms"], old["created_ms"]), (d, old)
        for s_new, s_old in zip(c.list_shards(n), state["shards"][n]):
            for f in ("id", "start", "end", "parent", "start_seq"):
                assert s_new[f] == s_old[f], (n, f, s_new, s_old)
            assert s_new["next_seq"] >= s_old["next_seq"], (n, s_new, s_old)
    after = snapshot(c)
    assert after == state["before"], "records differ after restart (seq, ts, key, hash key, data)"
    # appends continue above every old sequence number
    rnd = random.Random(6)
    new = produce_some(c, rnd, 5, "second")
    for (name, shard, seq) in new:
        old = state["before"][name][shard]
        if old:
            assert seq > old[-1][0], ("seq reused or went back", name, shard, seq, old[-1][0])
    # and a full read shows old + new, in order
    final = snapshot(c)
    for name in STREAMS:
        for shard, recs in final[name].items():
            seqs = [r[0] for r in recs]
            assert seqs == sorted(set(seqs)), (name, shard)
            assert recs[:len(state["before"][name][shard])] == state["before"][name][shard]
    n_new = sum(len(l) for m in final.values() for l in m.values()) - sum(
        len(l) for m in state["before"].values() for l in m.values())
    assert n_new == len(new), (n_new, len(new))
    state["final"] = final
    c.close()


def test_second_server_refuses_same_folder():
    assert srv and srv.alive()
    other = sp.Server(data_dir=data, log_path=os.path.join(root, "second.log"))
    rc, out = other.start_expect_failure()
    assert rc != 0, "second sluiced exited 0"
    assert "listening" not in out, out
    with open(os.path.join(root, "second.log"), "rb") as f:
        msg = f.read().decode(errors="replace")
    assert "in use" in msg or "lock" in msg.lower(), msg
    # the first server is unharmed
    c = srv.client()
    c.ping()
    assert snapshot(c) == state["final"]
    c.close()


def test_sigterm_with_clients_connected():
    """Shutdown with an idle connection and a producer mid-stream still exits 0, and every
    record acknowledged before it is there after the next start."""
    global srv
    c_idle = srv.client()
    c = srv.client()
    acked = {}
    stop = threading.Event()
    errs = []

    def load():
        rnd = random.Random(9)
        try:
            for b in range(100000):
                if stop.is_set():
                    return
                batch = [("t%d" % rnd.randrange(20), b"term-%d-%d" % (b, j)) for j in range(20)]
                try:
                    res = c.produce("gamma", batch)
                except (sp.SluiceError, ConnectionError, OSError, TimeoutError) as e:
                    if isinstance(e, sp.SluiceError) and e.name != "shutting_down":
                        errs.append(e)
                    return
                for (k, d), (st, shard, seq) in zip(batch, res):
                    if st == 0:
                        acked[(shard, seq)] = d
                    elif st != sp.CODE["shutting_down"]:
                        errs.append(st)
        except BaseException as e:  # noqa: BLE001
            errs.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    time.sleep(0.3)
    rc = srv.stop()
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
    assert rc == 0, "exit code %s" % rc
    assert not errs, errs
    assert acked, "nothing acknowledged before SIGTERM"
    c.close()
    c_idle.close()
    srv = sp.Server(data_dir=data).start()
    c = srv.client()
    present = {}
    for s in c.list_shards("gamma"):
        for r in c.read_all("gamma", s["id"]):
            present[(s["id"], r["seq"])] = r["data"]
    missing = [k for k in acked if present.get(k) != acked[k]]
    assert not missing, ("acknowledged before SIGTERM, lost", len(missing), missing[:5])
    c.close()
    assert srv.stop() == 0


def test_orphaned_folder_set_aside():
    """A stream whose metadata file is gone leaves its shard folder behind: the next start moves
    it to DATA/orphaned/ (never deleted, never reused: a new stream of the name starts empty at
    seq 1). A folder whose metadata file is unreadable stays where it is."""
    global srv
    assert not srv.alive()  # the previous test stopped it
    meta_file = os.path.join(data, "meta", "streams", "alpha.json")
    assert os.path.exists(meta_file), os.listdir(os.path.join(data, "meta", "streams"))
    os.unlink(meta_file)
    old_dir = os.path.join(data, "streams", "alpha")
    assert os.path.isdir(old_dir)
    with open(os.path.join(data, "meta", "streams", "beta.json"), "r+b") as f:
        good = f.read()
        f.seek(0)
        f.write(b"{" + good)  # unreadable now
    srv = sp.Server(data_dir=data).start()
    assert not os.path.exists(old_dir)
    assert os.path.isdir(os.path.join(data, "streams", "beta"))
    c = srv.client()
    assert "alpha" not in c.list_streams()
    c.create_stream("alpha", 1)
    assert c.read_all("alpha", 0) == []
    (st, shard, seq), = c.produce("alpha", [("k", b"fresh")])
    assert st == 0 and seq == 1, (st, shard, seq)
    aside = os.listdir(os.path.join(data, "orphaned"))
    assert len(aside) == 1 and aside[0].startswith("alpha-"), aside
    assert os.listdir(os.path.join(data, "orphaned", aside[0])) == ["shardId-000000000000"]
    assert "beta" not in c.list_streams()
    c.close()
    # fixed, beta comes back with its records
    assert srv.stop() == 0
    with open(os.path.join(data, "meta", "streams", "beta.json"), "wb") as f:
        f.write(good)
    srv = sp.Server(data_dir=data).start()
    c = srv.client()
    assert snapshot(c)["beta"] == state["final"]["beta"]
    c.close()


if __name__ == "__main__":
    try:
        sp.run_tests(sp.collect(globals()), time_limit=150)
    finally:
        if srv:
            srv.kill()
        shutil.rmtree(root, ignore_errors=True)
