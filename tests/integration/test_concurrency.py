#!/usr/bin/env python3
"""100 producer connections at once (threads), each with its own partition keys, plus a few
readers tailing the shards meanwhile. Afterwards every acknowledged record is present exactly
once, per-key order holds, and readers never saw anything that was not acknowledged."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

STREAM = "conc"
SHARDS = 6
PRODUCERS = int(os.environ.get("SLUICE_IT_PRODUCERS", "100"))
BATCHES = 20  # per producer
BATCH_MAX = 25
KEYS_PER_PRODUCER = 3
TIME_LIMIT = 60  # seconds for the load phase

srv = None
acked = {}  # (shard, seq) -> (key, data)
per_key = {}  # key -> [seq in send order]
errors = []
lock = threading.Lock()
stop_readers = threading.Event()
seen_by_readers = {}  # (shard, seq) -> (key, data)


def producer(pid, barrier, deadline):
    rnd = random.Random(pid)
    keys = ["p%03d-k%d" % (pid, j) for j in range(KEYS_PER_PRODUCER)]
    try:
        c = srv.client()
        barrier.wait(timeout=30)
        n = 0
        for b in range(BATCHES):
            if time.monotonic() > deadline:
                raise TimeoutError("producer %d: time limit after %d batches" % (pid, b))
            batch = []
            for _ in range(rnd.randrange(1, BATCH_MAX + 1)):
                k = rnd.choice(keys)
                batch.append((k, b"%s#%d#" % (k.encode(), n) + os.urandom(rnd.randrange(0, 64))))
                n += 1
            res = c.produce(STREAM, batch)
            mine = []
            for (k, data), (status, shard, seq) in zip(batch, res):
                if status != 0:
                    raise AssertionError("producer %d: status %s" % (pid, sp.ERR.get(status, status)))
                mine.append((k, data, shard, seq))
            with lock:
                for k, data, shard, seq in mine:
                    if (shard, seq) in acked:
                        errors.append("(shard %d, seq %d) acknowledged twice" % (shard, seq))
                    acked[(shard, seq)] = (k.encode(), data)
                    per_key.setdefault(k, []).append((shard, seq))
        c.close()
    except BaseException as e:  # noqa: BLE001
        with lock:
            errors.append("producer %d: %r" % (pid, e))


def reader(shard):
    try:
        c = srv.client()
        pos_type, pos = sp.POS_TRIM_HORIZON, 0
        last = 0
        for _ in range(100000):
            if stop_readers.is_set():
                break
            res = c.read(STREAM, shard, pos_type, pos, max_records=500)
            for r in res["records"]:
                if r["seq"] <= last:
                    errors.append("reader of shard %d: seq %d after %d" % (shard, r["seq"], last))
                last = r["seq"]
                seen_by_readers[(shard, r["seq"])] = (r["key"], r["data"])
            pos_type, pos = sp.POS_AT_SEQ, res["next_seq"]
            if not res["records"]:
                time.sleep(0.01)
        c.close()
    except BaseException as e:  # noqa: BLE001
        with lock:
            errors.append("reader %d: %r" % (shard, e))


def test_concurrent_producers():
    c = srv.client()
    c.create_stream(STREAM, SHARDS)
    deadline = time.monotonic() + TIME_LIMIT
    barrier = threading.Barrier(PRODUCERS)
    threads = [threading.Thread(target=producer, args=(i, barrier, deadline), daemon=True)
               for i in range(PRODUCERS)]
    readers = [threading.Thread(target=reader, args=(s,), daemon=True) for s in range(SHARDS)]
    t0 = time.monotonic()
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1, deadline - time.monotonic() + 5))
    stop_readers.set()
    for t in readers:
        t.join(timeout=10)
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "producers still running after the limit"
    assert not errors, errors[:10]
    print("  %d producers acknowledged %d records in %.1fs" % (PRODUCERS, len(acked), elapsed))

    got = {}
    for shard in range(SHARDS):
        recs = c.read_all(STREAM, shard)
        seqs = [r["seq"] for r in recs]
        assert seqs == sorted(set(seqs)), ("shard %d not strictly increasing" % shard)
        for r in recs:
            got[(shard, r["seq"])] = (r["key"], r["data"])
    missing = [k for k in acked if k not in got]
    assert not missing, ("acknowledged but missing", len(missing), missing[:5])
    extra = [k for k in got if k not in acked]
    assert not extra, ("present but never acknowledged", len(extra), extra[:5])
    wrong = [k for k in acked if acked[k] != got[k]]
    assert not wrong, ("wrong content", len(wrong), wrong[:5])
    for key, lst in per_key.items():
        shards = {s for s, _ in lst}
        assert len(shards) == 1, ("key on several shards", key, shards)
        assert shards == {sp.shard_of_key(key, SHARDS)}, ("key routed against the MD5 rule", key)
        seqs = [q for _, q in lst]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), ("per-key order broken", key)
    unacked_seen = [k for k in seen_by_readers if k not in acked]
    assert not unacked_seen, ("readers saw unacknowledged records", unacked_seen[:5])
    wrong = [k for k in seen_by_readers if seen_by_readers[k] != acked[k]]
    assert not wrong, ("readers saw wrong content", wrong[:5])
    assert len(acked) >= PRODUCERS * BATCHES, len(acked)
    c.close()


def histogram(m, name):
    """The cumulative buckets [(le, count)] of a Prometheus histogram, its _sum and _count."""
    buckets = []
    for k, v in m.items():
        if k.startswith(name + "_bucket{le=\""):
            le = k[len(name) + len("_bucket{le=\""):-2]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    return buckets, m.get(name + "_sum"), m.get(name + "_count")


def test_latency_histograms():
    """/metrics: one produce_duration sample per PRODUCE answered (the producers above sent
    PRODUCERS * BATCHES, all acknowledged), one fsync_duration sample per group commit sync,
    cumulative buckets that end at _count, and durations that add up to a plausible _sum."""
    import fault_util as fu
    m = fu.parse_metrics(sp.http_get(srv.http_port(), "/metrics")[1].decode())
    never = os.environ.get("SLUICE_IT_FSYNC") == "never"
    for name, want in (("sluice_produce_duration_seconds", PRODUCERS * BATCHES),
                       ("sluice_fsync_duration_seconds", m["sluice_syncs_total"])):
        buckets, total, count = histogram(m, name)
        assert len(buckets) == 18 and buckets[-1][0] == float("inf"), (name, buckets)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), (name, "buckets not cumulative", buckets)
        assert counts[-1] == count == want, (name, count, want)
        # The sum must fit the buckets: each sample lies between its bucket's edges (seconds).
        edges = [0.0] + [le for le, _ in buckets]
        per = [c - p for c, p in zip(counts, [0] + counts)]
        low = sum(n * edges[i] for i, n in enumerate(per))
        high = sum(n * edges[i + 1] for i, n in enumerate(per) if n)
        assert total is not None and low <= total * (1 + 1e-6) and total <= high, (
            name, low, total, high)
    if never:
        assert m["sluice_syncs_total"] == 0
    else:
        assert m["sluice_syncs_total"] > 0


def test_server_alive_and_stops_cleanly():
    assert srv.alive()
    c = srv.client()
    c.ping()
    c.close()
    if os.environ.get("SLUICE_IT_FSYNC") == "never":
        # The run above went through the receiving loops' direct appends (src/server/produce.c).
        import fault_util as fu
        m = fu.parse_metrics(sp.http_get(srv.http_port(), "/metrics")[1].decode())
        assert m.get("sluice_parts_appended_here_total", 0) > 0, "no direct append happened"
    rc = srv.stop()
    assert rc == 0, "sluiced exited %s after SIGTERM" % rc


if __name__ == "__main__":
    try:
        srv = sp.Server().start()
        sp.run_tests(sp.collect(globals()), time_limit=150)
    finally:
        if srv:
            srv.cleanup()
