#!/usr/bin/env python3
"""Crash test: kill -9 under load, restart, check the durability promise (DESIGN.md, guarantee 1).

Each round starts sluiced (--fsync group) on the same data folder, verifies everything the
earlier rounds left, runs several producer threads (own connections, own partition keys, random
record sizes, several shards), and SIGKILLs the server at a random moment. The final restart is
verified too. Checked after every restart:
  - every record acknowledged before a kill is present, at exactly its acknowledged (shard, seq);
  - every record present is one that was sent, byte for byte (data regenerated from its id),
    and appears once;
  - a record seen after one restart is still there, unchanged, after every later one;
  - per shard, sequence numbers strictly increase; per partition key, records are in send
    order; new appends get sequence numbers above everything that was there before.
Records whose acknowledgement never arrived may or may not be present.

Environment: SLUICE_CRASH_ROUNDS (default 5), SLUICE_CRASH_SECONDS (time limit, default 100),
SLUICE_CRASH_SEED (default: random; printed, so a failure can be replayed).
"""
import hashlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sluiceproto as sp  # noqa: E402

ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "5"))
TIME_LIMIT = float(os.environ.get("SLUICE_CRASH_SECONDS", "100"))
SEED = int(os.environ.get("SLUICE_CRASH_SEED", str(random.randrange(1 << 30))))
STREAM = "crash"
SHARDS = 5
PRODUCERS = 4
KEYS_PER_PRODUCER = 6
RECORDS_PER_THREAD_ROUND = 20000  # bound per round, besides the kill
BATCH_MAX = 20


def payload(rid, n):
    """The data of record rid: deterministic, so a reader can tell a sent record from junk."""
    out = bytearray()
    h = hashlib.sha256(rid.encode()).digest()
    while len(out) < n:
        out += h
        h = hashlib.sha256(h).digest()
    return bytes(out[:n])


def make_data(rid, n):
    return ("%s|%d|" % (rid, n)).encode() + payload(rid, n)


def parse_data(data):
    """(rid, ok): ok when data is exactly what make_data produced for that id."""
    try:
        rid, n, _ = data.split(b"|", 2)
        rid = rid.decode()
        return rid, data == make_data(rid, int(n))
    except ValueError:
        return None, False


def record_size(rnd):
    x = rnd.random()
    if x < 0.70:
        return rnd.randrange(0, 256)
    if x < 0.95:
        return rnd.randrange(256, 4096)
    return rnd.randrange(4096, 64 << 10)


class Model:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}  # rid -> (key, order) ; order = (round, thread, n) sorts send order per key
        self.acked = {}  # rid -> (shard, seq)
        self.observed = {}  # (shard, seq) -> rid, as of the last verification
        self.checked_acked = 0
        self.unacked_present = 0
        self.verifications = 0


def producer(srv_port, model, rnd_seed, rnd_round, tid, stop, errors):
    rnd = random.Random(rnd_seed)
    keys = ["t%dk%d" % (tid, j) for j in range(KEYS_PER_PRODUCER)]
    try:
        c = sp.Client(srv_port, timeout=20)
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
                batch.append((key, make_data(rid, record_size(rnd)), rid))
                with model.lock:
                    model.sent[rid] = (key, (rnd_round, n))
                n += 1
            res = c.produce(STREAM, [(k, d) for k, d, _ in batch])
            with model.lock:
                for (key, _, rid), (status, shard, seq) in zip(batch, res):
                    if status != 0:
                        errors.append("thread %d: record %s status %s" % (tid, rid, sp.ERR.get(status, status)))
                        continue
                    model.acked[rid] = (shard, seq)
    except (ConnectionError, OSError, TimeoutError):
        pass  # the server was killed: requests in flight stay unacknowledged
    except sp.SluiceError as e:
        if e.name not in ("shutting_down", "unavailable"):
            errors.append("thread %d: %s" % (tid, e))
    except BaseException as e:  # noqa: BLE001
        errors.append("thread %d: %r" % (tid, e))
    finally:
        c.close()


def verify(srv, model, where):
    c = srv.client(timeout=60)
    shards = c.list_shards(STREAM)
    assert [s["id"] for s in shards] == list(range(SHARDS)), (where, shards)
    present = {}  # (shard, seq) -> rid
    where_is = {}  # rid -> (shard, seq)
    tips = {}
    for s in shards:
        recs = c.read_all(STREAM, s["id"])
        seqs = [r["seq"] for r in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), "%s: shard %d seqs not increasing" % (where, s["id"])
        tips[s["id"]] = max(seqs, default=0)
        for r in recs:
            rid, ok = parse_data(r["data"])
            assert ok, "%s: shard %d seq %d holds data that was never sent: %r" % (
                where, s["id"], r["seq"], r["data"][:60])
            assert rid in model.sent, "%s: record %s was never sent" % (where, rid)
            key, _ = model.sent[rid]
            assert r["key"] == key.encode(), "%s: record %s has key %r, sent %r" % (where, rid, r["key"], key)
            assert r["hash_key"] is None
            assert rid not in where_is, "%s: record %s present twice: %s and %s" % (
                where, rid, where_is[rid], (s["id"], r["seq"]))
            where_is[rid] = (s["id"], r["seq"])
            present[(s["id"], r["seq"])] = rid
    # every acknowledged record, at its acknowledged place
    lost = [(rid, pos) for rid, pos in model.acked.items() if where_is.get(rid) != pos]
    assert not lost, "%s: %d acknowledged records lost or moved, e.g. %s (now at %s)" % (
        where, len(lost), lost[:3], [where_is.get(r) for r, _ in lost[:3]])
    # what an earlier restart showed is still there
    gone = [(pos, rid) for pos, rid in model.observed.items() if present.get(pos) != rid]
    assert not gone, "%s: %d records seen after an earlier restart changed/vanished: %s" % (
        where, len(gone), gone[:3])
    # per key: send order == seq order (a key lives on one shard)
    by_key = {}
    for rid, (shard, seq) in where_is.items():
        key, order = model.sent[rid]
        by_key.setdefault(key, []).append((order, shard, seq))
    for key, lst in by_key.items():
        lst.sort()
        assert len({s for _, s, _ in lst}) == 1, "%s: key %s on several shards" % (where, key)
        assert lst[0][1] == sp.shard_of_key(key, SHARDS), "%s: key %s routed wrongly" % (where, key)
        seqs = [q for _, _, q in lst]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), "%s: key %s out of order" % (where, key)
    model.checked_acked += len(model.acked)
    model.unacked_present += sum(1 for rid in where_is if rid not in model.acked)
    model.observed = present
    model.verifications += 1
    c.close()
    return tips, len(present)


def main():
    t_start = time.monotonic()
    root = tempfile.mkdtemp(prefix="sluice-crash-")
    data = os.path.join(root, "data")
    model = Model()
    rnd = random.Random(SEED)
    print("seed %d, %d rounds, %.0fs limit" % (SEED, ROUNDS, TIME_LIMIT), flush=True)
    srv = None
    failed = None
    rounds_done = 0
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
                tips, n_present = {i: 0 for i in range(SHARDS)}, 0
            else:
                tips, n_present = verify(srv, model, "after kill %d" % (rnd_no - 1))
            stop = threading.Event()
            errors = []
            threads = [threading.Thread(target=producer, daemon=True,
                                        args=(srv.port, model, rnd.randrange(1 << 30), rnd_no, t,
                                              stop, errors))
                       for t in range(PRODUCERS)]
            acked_before = len(model.acked)
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.2, 1.5))
            srv.kill()  # SIGKILL, our own child by PID
            stop.set()
            for t in threads:
                t.join(timeout=30)
            assert not any(t.is_alive() for t in threads), "producers hang after the kill"
            assert not errors, errors[:5]
            new = [model.acked[r] for r in list(model.acked)[acked_before:]]
            for shard, seq in new:
                assert seq > tips[shard], ("round %d: seq %d on shard %d not above the %d there "
                                           "before" % (rnd_no, seq, shard, tips[shard]))
            print("round %d: %d present at start, %d acknowledged before the kill, %d sent"
                  % (rnd_no, n_present, len(model.acked) - acked_before,
                     sum(1 for r in model.sent if r.startswith("r%dt" % rnd_no))), flush=True)
            rounds_done += 1
        # the last kill is verified by one more start, which must also stop cleanly
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
    print("rounds %d, verifications %d, acknowledged records checked %d (%d distinct), "
          "unacknowledged but present %d, records sent %d, %.1fs"
          % (rounds_done, model.verifications, model.checked_acked, len(model.acked),
             model.unacked_present, len(model.sent), time.monotonic() - t_start))
    if failed or rounds_done == 0:
        print("0 passed, 1 failed (seed %d)" % SEED)
        sys.exit(1)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
