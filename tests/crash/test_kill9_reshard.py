#!/usr/bin/env python3
"""Crash test: kill -9 while streams are being resharded under load.

Each round starts sluiced on the same data folder, verifies everything the earlier rounds left,
runs producer threads and a resharding thread (splits, merges and scales, one after another as
fast as the server answers) and SIGKILLs the server at a random moment, often in the middle of
a reshard. Checked after every restart:
  - the metadata is consistent: the open shards cover the hash space exactly, every closed shard
    has children that start after its end_seq, every shard (closed ones too) can be read;
  - every record acknowledged before a kill is present, at exactly its acknowledged (shard, seq),
    once; every record present was sent, byte for byte; none lies after its shard's end_seq;
  - a record seen after one restart is still there after every later one;
  - per partition key, sequence numbers increase in send order across parents and children.
Records whose acknowledgement never arrived may or may not be present.

Environment: SLUICE_CRASH_ROUNDS (default 6), SLUICE_CRASH_SECONDS (time limit, default 100),
SLUICE_CRASH_SEED (default: random; printed, so a failure can be replayed).
"""
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import sluiceproto as sp  # noqa: E402
from test_kill9 import Model, make_data, parse_data, record_size  # noqa: E402

ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "6"))
TIME_LIMIT = float(os.environ.get("SLUICE_CRASH_SECONDS", "100"))
SEED = int(os.environ.get("SLUICE_CRASH_SEED", str(random.randrange(1 << 30))))
STREAM = "crash-rs"
SHARDS = 3
PRODUCERS = 3
KEYS_PER_PRODUCER = 5
RECORDS_PER_THREAD_ROUND = 20000
RESHARDS_PER_ROUND = 200  # bound per round, besides the kill
BATCH_MAX = 20
HASH_MAX = (1 << 128) - 1


def producer(port, model, seed, rnd_round, tid, stop, errors):
    rnd = random.Random(seed)
    keys = ["t%dk%d" % (tid, j) for j in range(KEYS_PER_PRODUCER)]
    try:
        c = sp.Client(port, timeout=20)
    except OSError as e:
        errors.append("thread %d: cannot connect: %r" % (tid, e))
        return
    n = 0
    try:
        while n < RECORDS_PER_THREAD_ROUND and not stop.is_set():
            batch = []
            for _ in range(rnd.randrange(1, BATCH_MAX + 1)):
                rid = "r%dt%dn%d" % (rnd_round, tid, n)
                key = rnd.choice(keys)
                batch.append((key, make_data(rid, record_size(rnd) % 2048), rid))
                with model.lock:
                    model.sent[rid] = (key, (rnd_round, n))
                n += 1
            res = c.produce(STREAM, [(k, d) for k, d, _ in batch])
            with model.lock:
                for (key, _, rid), (status, shard, seq) in zip(batch, res):
                    if status != 0:
                        errors.append("thread %d: record %s status %s"
                                      % (tid, rid, sp.ERR.get(status, status)))
                        continue
                    model.acked[rid] = (shard, seq)
    except (ConnectionError, OSError, TimeoutError):
        pass  # the server was killed
    except sp.SluiceError as e:
        if e.name not in ("shutting_down", "unavailable"):
            errors.append("thread %d: %s" % (tid, e))
    except BaseException as e:  # noqa: BLE001
        errors.append("thread %d: %r" % (tid, e))
    finally:
        c.close()


def open_shards(shards):
    parents = {p for s in shards for p in (s["parent"], s["adjacent"]) if p >= 0}
    return sorted((s for s in shards if s["id"] not in parents), key=lambda s: s["start"])


def resharder(port, seed, stop, errors, counts):
    rnd = random.Random(seed)
    try:
        c = sp.Client(port, timeout=20)
    except OSError as e:
        errors.append("resharder: cannot connect: %r" % (e,))
        return
    try:
        for _ in range(RESHARDS_PER_ROUND):
            if stop.is_set():
                break
            op = open_shards(c.list_shards(STREAM))
            x = rnd.random()
            if x < 0.35 and len(op) < 8:
                s = rnd.choice(op)
                if s["end"] > s["start"]:
                    c.split_shard(STREAM, s["id"], s["start"] + (s["end"] - s["start"]) // 2 + 1)
            elif x < 0.7 and len(op) > 1:
                i = rnd.randrange(len(op) - 1)
                c.merge_shards(STREAM, op[i + 1]["id"], op[i]["id"])
            else:
                n = len(op)
                c.scale_stream(STREAM, max(1, min(8, rnd.randrange((n + 1) // 2, 2 * n + 1))))
            counts[0] += 1
            time.sleep(rnd.uniform(0, 0.05))
    except (ConnectionError, OSError, TimeoutError):
        pass
    except sp.SluiceError as e:
        if e.name not in ("shutting_down",):
            errors.append("resharder: %s" % e)
    except BaseException as e:  # noqa: BLE001
        errors.append("resharder: %r" % (e,))
    finally:
        c.close()


def verify(srv, model, where):
    c = srv.client(timeout=60)
    shards = c.list_shards(STREAM)
    by_id = {s["id"]: s for s in shards}
    op = open_shards(shards)
    assert op and op[0]["start"] == 0 and op[-1]["end"] == HASH_MAX, (where, op)
    for a, b in zip(op, op[1:]):
        assert b["start"] == a["end"] + 1, ("%s: open shards leave a gap or overlap" % where, a, b)
    closed = {s["id"] for s in shards} - {s["id"] for s in op}
    for s in shards:
        for p in (s["parent"], s["adjacent"]):
            if p >= 0:
                assert p in by_id, (where, "parent missing", s)
                assert s["start_seq"] == max(by_id[q]["end_seq"] for q in (s["parent"], s["adjacent"])
                                             if q >= 0) + 1, (where, s, by_id[p])
    present, where_is = {}, {}
    for s in shards:
        res = c.read(STREAM, s["id"], sp.POS_TRIM_HORIZON)
        recs = []
        for _ in range(100000):
            recs += res["records"]
            if res["next_seq"] >= res["tip"] or not res["records"]:
                break
            res = c.read(STREAM, s["id"], sp.POS_AT_SEQ, res["next_seq"])
        assert res["ended"] == (s["id"] in closed), (where, s, res["ended"])
        seqs = [r["seq"] for r in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), (where, "seqs not increasing", s)
        for r in recs:
            assert r["seq"] >= s["start_seq"], (where, s, r["seq"])
            if s["id"] in closed:
                assert r["seq"] <= s["end_seq"], ("%s: record after end_seq" % where, s, r["seq"])
            rid, ok = parse_data(r["data"])
            assert ok and rid in model.sent, (where, "junk", s["id"], r["seq"])
            assert r["key"] == model.sent[rid][0].encode(), (where, rid)
            assert rid not in where_is, (where, "twice", rid, where_is[rid], (s["id"], r["seq"]))
            where_is[rid] = (s["id"], r["seq"])
            present[(s["id"], r["seq"])] = rid
    lost = [(rid, pos) for rid, pos in model.acked.items() if where_is.get(rid) != pos]
    assert not lost, "%s: %d acknowledged records lost or moved, e.g. %s (now at %s)" % (
        where, len(lost), lost[:3], [where_is.get(r) for r, _ in lost[:3]])
    gone = [(pos, rid) for pos, rid in model.observed.items() if present.get(pos) != rid]
    assert not gone, "%s: %d records seen earlier changed/vanished: %s" % (where, len(gone), gone[:3])
    by_key = {}
    for rid, (shard, seq) in where_is.items():
        key, order = model.sent[rid]
        by_key.setdefault(key, []).append((order, seq, shard))
    for key, lst in by_key.items():
        lst.sort()
        seqs = [q for _, q, _ in lst]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), (where, "key out of order", key, lst[:6])
    model.checked_acked += len(model.acked)
    model.unacked_present += sum(1 for rid in where_is if rid not in model.acked)
    model.observed = present
    model.verifications += 1
    c.close()
    return len(shards), len(op), len(present)


def main():
    t_start = time.monotonic()
    root = tempfile.mkdtemp(prefix="sluice-crash-rs-")
    data = os.path.join(root, "data")
    model = Model()
    rnd = random.Random(SEED)
    print("seed %d, %d rounds, %.0fs limit" % (SEED, ROUNDS, TIME_LIMIT), flush=True)
    srv = None
    failed = None
    rounds_done = 0
    reshards = 0
    try:
        for rnd_no in range(1, ROUNDS + 1):
            if time.monotonic() - t_start > TIME_LIMIT * 0.8:
                print("time limit: stopping after %d rounds" % rounds_done)
                break
            srv = sp.Server(data_dir=data, args=["--fsync", "group"],
                            log_path=os.path.join(root, "sluiced.log")).start()
            if rnd_no == 1:
                c = srv.client()
                c.create_stream(STREAM, SHARDS)
                c.close()
                info = (SHARDS, SHARDS, 0)
            else:
                info = verify(srv, model, "after kill %d" % (rnd_no - 1))
            stop = threading.Event()
            errors = []
            counts = [0]
            threads = [threading.Thread(target=producer, daemon=True,
                                        args=(srv.port, model, rnd.randrange(1 << 30), rnd_no, t,
                                              stop, errors))
                       for t in range(PRODUCERS)]
            threads.append(threading.Thread(target=resharder, daemon=True,
                                            args=(srv.port, rnd.randrange(1 << 30), stop, errors,
                                                  counts)))
            acked_before = len(model.acked)
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.2, 1.2))
            srv.kill()  # SIGKILL, our own child by PID
            stop.set()
            for t in threads:
                t.join(timeout=30)
            assert not any(t.is_alive() for t in threads), "threads hang after the kill"
            assert not errors, errors[:5]
            reshards += counts[0]
            print("round %d: %d shards (%d open), %d records at start; %d acknowledged, "
                  "%d reshards before the kill" % (rnd_no, info[0], info[1], info[2],
                                                   len(model.acked) - acked_before, counts[0]),
                  flush=True)
            rounds_done += 1
        srv = sp.Server(data_dir=data, log_path=os.path.join(root, "sluiced.log")).start()
        verify(srv, model, "after the last kill")
        rc = srv.stop()
        assert rc == 0, "sluiced exited %s after SIGTERM" % rc
    except BaseException as e:  # noqa: BLE001
        failed = e
        import traceback
        traceback.print_exc()
        try:
            with open(os.path.join(root, "sluiced.log"), "rb") as f:
                print("--- sluiced.log (tail)\n" + b"".join(f.readlines()[-30:]).decode(errors="replace"))
        except OSError:
            pass
    finally:
        if srv:
            srv.kill()
        shutil.rmtree(root, ignore_errors=True)
    print("rounds %d, verifications %d, reshards %d, acknowledged records checked %d (%d distinct), "
          "unacknowledged but present %d, %.1fs"
          % (rounds_done, model.verifications, reshards, model.checked_acked, len(model.acked),
             model.unacked_present, time.monotonic() - t_start))
    if failed or rounds_done == 0:
        print("0 passed, 1 failed (seed %d)" % SEED)
        sys.exit(1)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
