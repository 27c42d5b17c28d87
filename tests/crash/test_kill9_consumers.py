#!/usr/bin/env python3
"""Crash test for consumers: kill -9 sluiced in rounds while producers write and an exec
consumer works through the stream, and check the at-least-once promise of docs/handlers.md.

The handler is tests/integration/log_handler.py, which writes one log line per batch *before* it
answers; sluiced passes SLUICE_TEST_GEN (the round) on to it, so the log tells which run of the
server handed out each batch. Checked:
  - at every describe while running, and in the checkpoint files after every kill, no
    checkpoint passes a record the handler did not finish (every seq 1..checkpoint is logged);
  - checkpoint files never go backwards from one kill to the next;
  - after every restart, each shard is delivered on from exactly its saved checkpoint + 1, in
    sequence order, without skipping a record present in the shard;
  - after the last restart every acknowledged record is delivered (with its data).

Environment: SLUICE_CRASH_ROUNDS (default 6), SLUICE_CRASH_SEED (default random; printed).
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

ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("SLUICE_CRASH_SEED", str(random.randrange(1 << 30))))
STREAM, CONSUMER, SHARDS = "cc", "cc-c", 3
TIME_LIMIT = 90


def producer(port, rnd_seed, rnd_no, acked, lock, stop):
    rnd = random.Random(rnd_seed)
    try:
        c = sp.Client(port, timeout=10)
        n = 0
        while not stop.is_set():
            batch = []
            for _ in range(rnd.randrange(1, 40)):
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


def done_by_shard(entries):
    out = {}
    for e in entries:
        out.setdefault(e["shard"], set()).update(r[0] for r in e["recs"])
    return out


def check_not_ahead(cps, entries, what):
    done = done_by_shard(entries)
    for sh, cp in cps.items():
        missing = [s for s in range(1, cp + 1) if s not in done.get(sh, set())]
        assert not missing, ("%s: checkpoint %d of shard %d passes records the handler never "
                             "finished" % (what, cp, sh), missing[:10])


def check_generation(c, entries, gen, saved, what):
    """Records handed out by run `gen`: per shard, the shard's records after saved[shard], in
    order, as a prefix (the run may have been killed part way)."""
    for sh in range(SHARDS):
        got = [r[0] for e in entries if e["gen"] == str(gen) and e["shard"] == sh
               for r in e["recs"]]
        present = [r["seq"] for r in c.read_all(STREAM, sh) if r["seq"] > saved[sh]]
        assert got == present[:len(got)], (
            "%s: shard %d did not continue at checkpoint %d + 1 in order" % (what, sh, saved[sh]),
            got[:8], present[:8])


def main():
    rnd = random.Random(SEED)
    print("seed %d, %d rounds" % (SEED, ROUNDS), flush=True)
    root = tempfile.mkdtemp(prefix="sluice-crash-consumers-")
    data = os.path.join(root, "data")
    log = os.path.join(root, "handler.log")
    srv = sp.Server(data_dir=data, env={"SLUICE_TEST_GEN": "0"})
    acked, lock = {}, threading.Lock()
    saved_prev = {sh: 0 for sh in range(SHARDS)}
    saved_before = {0: dict(saved_prev)}  # run -> checkpoint files when it started
    t_start = time.monotonic()
    try:
        for rnd_no in range(ROUNDS + 1):
            last = rnd_no == ROUNDS
            srv.env["SLUICE_TEST_GEN"] = str(rnd_no)
            srv.start()
            c = srv.client()
            if rnd_no > 0:
                # The run killed last: it went on from its start checkpoint, in order.
                check_generation(c, cu.read_jsonl(log), rnd_no - 1, saved_before[rnd_no - 1],
                                 "run %d" % (rnd_no - 1))
            if rnd_no == 0:
                c.create_stream(STREAM, SHARDS)
                c.create_consumer(CONSUMER, STREAM, cu.exec_log_handler(log, sleep_ms=5),
                                  start="trim-horizon", batch_size=30)
            stop = threading.Event()
            threads = []
            if not last:
                for t in range(2):
                    th = threading.Thread(target=producer, daemon=True,
                                          args=(srv.port, rnd.randrange(1 << 30), rnd_no, acked,
                                                lock, stop))
                    th.start()
                    threads.append(th)
            kill_at = time.monotonic() + rnd.uniform(0.6, 2.0)
            polls = 0
            while not last and time.monotonic() < kill_at:
                d = c.describe_consumer(CONSUMER)
                check_not_ahead({s["id"]: s["checkpoint"] for s in d["shards"]},
                                cu.read_jsonl(log), "round %d, describe" % rnd_no)
                polls += 1
                time.sleep(0.05)
            if last:
                cu.wait_caught_up(c, CONSUMER, STREAM, 30, "the consumer to finish after the "
                                  "last restart")
                entries = cu.read_jsonl(log)
                check_generation(c, entries, rnd_no, saved_prev, "after the last restart")
                done = {}
                for e in entries:
                    for seq, key, dat in e["recs"]:
                        done[(e["shard"], seq)] = dat
                missing = [k for k in acked if k not in done]
                assert not missing, ("acknowledged records never delivered", len(missing),
                                     sorted(missing)[:10])
                wrong = [k for k in acked if done[k] != acked[k]]
                assert not wrong, ("delivered data differs", wrong[:5])
                c.close()
                assert srv.stop() == 0
                print("final: %d acknowledged records, all delivered" % len(acked), flush=True)
                break
            c.close()
            srv.kill()  # SIGKILL, our own child by PID
            stop.set()
            for th in threads:
                th.join(10)
            assert not any(th.is_alive() for th in threads), "producers hang after the kill"
            saved = {sh: cu.checkpoint_file(data, CONSUMER, sh) or 0 for sh in range(SHARDS)}
            entries = cu.read_jsonl(log)
            check_not_ahead(saved, entries, "checkpoint files after kill %d" % rnd_no)
            for sh in range(SHARDS):
                assert saved[sh] >= saved_prev[sh], ("checkpoint went backwards", sh,
                                                     saved_prev[sh], saved[sh])
            saved_before[rnd_no + 1] = saved
            saved_prev = saved
            print("round %d: %d polls, checkpoints %s, %d acknowledged so far"
                  % (rnd_no, polls, saved, len(acked)), flush=True)
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
