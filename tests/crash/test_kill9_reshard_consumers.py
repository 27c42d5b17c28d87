#!/usr/bin/env python3
"""Crash test for consumers across resharding: kill -9 sluiced in rounds while producers write,
a resharding thread splits, merges and scales the stream, and an exec consumer works through it.

The handler is tests/integration/log_handler.py (one log line per batch, written before it
answers, in finish order). Checked:
  - after every restart the shards are consistent (open ones cover the hash space, children
    start after their parents' end_seq) and every shard, closed ones included, has a worker;
  - lineage order holds across crashes: for every partition key, every delivery of its records
    from a parent shard comes before any delivery of its records from a child (a child starts
    only once its parent's end checkpoint is saved, so no crash can replay a parent after a child);
  - after the last restart every acknowledged record is delivered, with its data.

Environment: SLUICE_CRASH_ROUNDS (default 5), SLUICE_CRASH_SEED (default random; printed).
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
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "5"))
SEED = int(os.environ.get("SLUICE_CRASH_SEED", str(random.randrange(1 << 30))))
STREAM, CONSUMER = "ccr", "ccr-c"
TIME_LIMIT = 120
HASH_MAX = (1 << 128) - 1


def producer(port, seed, rnd_no, acked, lock, stop):
    rnd = random.Random(seed)
    try:
        c = sp.Client(port, timeout=10)
        n = 0
        while not stop.is_set() and n < 50000:
            batch = []
            for _ in range(rnd.randrange(1, 30)):
                batch.append(("key-%d" % rnd.randrange(23), "g%d-n%d" % (rnd_no, n)))
                n += 1
            res = c.produce(STREAM, batch)
            with lock:
                for (_, d), (st, sh, seq) in zip(batch, res):
                    if st == 0:
                        acked[(sh, seq)] = d
            time.sleep(rnd.uniform(0, 0.01))
    except (OSError, ConnectionError, TimeoutError, sp.SluiceError):
        pass  # the server was killed


def open_shards(shards):
    parents = {p for s in shards for p in (s["parent"], s["adjacent"]) if p >= 0}
    return sorted((s for s in shards if s["id"] not in parents), key=lambda s: s["start"])


def resharder(port, seed, stop, errors):
    rnd = random.Random(seed)
    try:
        c = sp.Client(port, timeout=10)
        for _ in range(50):  # bounded
            if stop.is_set():
                break
            time.sleep(rnd.uniform(0.1, 0.4))
            op = open_shards(c.list_shards(STREAM))
            if rnd.random() < 0.5 and len(op) < 6:
                s = rnd.choice(op)
                c.split_shard(STREAM, s["id"], s["start"] + (s["end"] - s["start"]) // 2 + 1)
            else:
                n = len(op)
                c.scale_stream(STREAM, max(1, min(6, rnd.randrange((n + 1) // 2, 2 * n + 1))))
    except (OSError, ConnectionError, TimeoutError):
        pass
    except sp.SluiceError as e:
        if e.name != "shutting_down":
            errors.append("resharder: %s" % e)


def check_shards(c, what):
    shards = c.list_shards(STREAM)
    by_id = {s["id"]: s for s in shards}
    op = open_shards(shards)
    assert op[0]["start"] == 0 and op[-1]["end"] == HASH_MAX, (what, op)
    for a, b in zip(op, op[1:]):
        assert b["start"] == a["end"] + 1, (what, a, b)
    for s in shards:
        ps = [p for p in (s["parent"], s["adjacent"]) if p >= 0]
        if ps:
            assert s["start_seq"] == max(by_id[p]["end_seq"] for p in ps) + 1, (what, s)
    d = c.describe_consumer(CONSUMER)
    assert sorted(x["id"] for x in d["shards"]) == sorted(by_id), (what, "workers", d["shards"])
    return by_id


def check_lineage_order(entries, by_id, what):
    """Per key: the last log line holding one of its records from a parent comes before the
    first line holding one from a child."""
    first, last = {}, {}  # (key, shard) -> line index
    for i, e in enumerate(entries):
        for _, key, _ in e["recs"]:
            first.setdefault((key, e["shard"]), i)
            last[(key, e["shard"])] = i
    for (key, sh), i in first.items():
        for p in (by_id[sh]["parent"], by_id[sh]["adjacent"]):
            if p >= 0 and (key, p) in last:
                assert last[(key, p)] < i, ("%s: key %s delivered from child %d (line %d) before "
                                            "its parent %d was done (line %d)"
                                            % (what, key, sh, i, p, last[(key, p)]))


def main():
    rnd = random.Random(SEED)
    print("seed %d, %d rounds" % (SEED, ROUNDS), flush=True)
    root = tempfile.mkdtemp(prefix="sluice-crash-rsc-")
    data = os.path.join(root, "data")
    log = os.path.join(root, "handler.log")
    srv = sp.Server(data_dir=data, env={"SLUICE_TEST_GEN": "0"})
    acked, lock = {}, threading.Lock()
    t_start = time.monotonic()
    try:
        for rnd_no in range(ROUNDS + 1):
            last = rnd_no == ROUNDS
            srv.env["SLUICE_TEST_GEN"] = str(rnd_no)
            srv.start()
            c = srv.client()
            if rnd_no == 0:
                c.create_stream(STREAM, 2)
                c.create_consumer(CONSUMER, STREAM, cu.exec_log_handler(log, sleep_ms=3),
                                  start="trim-horizon", batch_size=25)
            by_id = check_shards(c, "start of run %d" % rnd_no)
            check_lineage_order(cu.read_jsonl(log), by_id, "start of run %d" % rnd_no)
            if last:
                cu.wait_caught_up(c, CONSUMER, STREAM, 60, "the consumer to finish")
                by_id = check_shards(c, "the end")
                entries = cu.read_jsonl(log)
                check_lineage_order(entries, by_id, "the end")
                done = {}
                for e in entries:
                    for seq, key, dat in e["recs"]:
                        done[(e["shard"], seq)] = dat
                missing = [k for k in acked if k not in done]
                assert not missing, ("acknowledged records never delivered", len(missing),
                                     sorted(missing)[:10])
                wrong = [k for k in acked if done[k] != acked[k]]
                assert not wrong, ("delivered data differs", wrong[:5])
                d = c.describe_consumer(CONSUMER)
                op = {s["id"] for s in open_shards(c.list_shards(STREAM))}
                assert all(s["state"] == "FINISHED" for s in d["shards"] if s["id"] not in op), \
                    cu.describe_str(d)
                c.close()
                assert srv.stop() == 0
                print("final: %d shards, %d acknowledged records, all delivered in lineage order"
                      % (len(by_id), len(acked)), flush=True)
                break
            stop = threading.Event()
            errors = []
            threads = [threading.Thread(target=producer, daemon=True,
                                        args=(srv.port, rnd.randrange(1 << 30), rnd_no, acked,
                                              lock, stop))
                       for _ in range(2)]
            threads.append(threading.Thread(target=resharder, daemon=True,
                                            args=(srv.port, rnd.randrange(1 << 30), stop, errors)))
            for th in threads:
                th.start()
            time.sleep(rnd.uniform(0.5, 2.0))
            c.close()
            srv.kill()  # SIGKILL, our own child by PID
            stop.set()
            for th in threads:
                th.join(15)
            assert not any(th.is_alive() for th in threads), "threads hang after the kill"
            assert not errors, errors
            print("round %d: %d shards, %d acknowledged so far" % (rnd_no, len(by_id), len(acked)),
                  flush=True)
            assert time.monotonic() - t_start < TIME_LIMIT, "time limit"
        print("1 passed, 0 failed (seed %d)" % SEED)
        return 0
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print("--- server log (tail)\n%s" % srv.log_tail(40))
        print("0 passed, 1 failed (seed %d)" % SEED)
        return 1
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
