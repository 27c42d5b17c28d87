#!/usr/bin/env python3
"""Consumer checkpoints: at least once across kill -9, never ahead of the handler, and reset.

The handler is tests/integration/log_handler.py: it writes one log line per batch *before* it
answers, so a record whose checkpoint sluiced has saved must already be in the log.

- kill -9 while an exec consumer is mid-stream (thousands of records on 3 shards): the saved
  checkpoint files and every checkpoint describe showed never pass a record the handler did not
  finish; after the restart every shard continues exactly after its saved checkpoint, in order,
  with no gap, up to the tip; every record was handled at least once.
- CONSUMER_RESET to trim-horizon of every shard while batches are out: each shard is delivered
  again from its first record, in order; reset of one shard (trim-horizon, at-seq) redelivers
  only that shard;
- CONSUMER_RESET right after CONSUMER_CREATE, while each shard's first batch is being handed to
  an exec handler that is just starting: the abandoned batch never reaches a handler process
  (a kill that came before the spawn used to be lost), so each shard is logged exactly once.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

root = tempfile.mkdtemp(prefix="sluice-ckpt-")
data_dir = os.path.join(root, "data")
srv = sp.Server(data_dir=data_dir, env={"SLUICE_TEST_GEN": "1"})
srv.start()


def done_by_shard(entries):
    """{shard: set of seqs the handler finished} from log_handler.py entries."""
    out = {}
    for e in entries:
        out.setdefault(e["shard"], set()).update(r[0] for r in e["recs"])
    return out


def check_not_ahead(cps, entries, what):
    """Every seq 1..checkpoint of every shard is among the records the handler finished."""
    done = done_by_shard(entries)
    for sh, cp in cps.items():
        missing = [s for s in range(1, cp + 1) if s not in done.get(sh, set())]
        assert not missing, ("%s: checkpoint %d of shard %d passes records the handler never "
                             "finished" % (what, cp, sh), missing[:10])


def test_kill9_mid_stream_at_least_once_in_order():
    log = os.path.join(root, "ck.log")
    c = srv.client()
    c.create_stream("ck", 3)
    produced = {}  # (shard, seq) -> data
    for b in range(12):
        recs = [("k%d" % (i % 61), "r%d-%d" % (b, i)) for i in range(500)]
        for (_, d), (st, sh, seq) in zip(recs, c.produce("ck", recs)):
            assert st == 0
            produced[(sh, seq)] = d
    total = len(produced)
    c.create_consumer("ck-c", "ck", cu.exec_log_handler(log, sleep_ms=15), start="trim-horizon",
                      batch_size=50)
    polls = 0
    deadline = time.monotonic() + 20
    while True:
        d = c.describe_consumer("ck-c")
        entries = cu.read_jsonl(log)  # read after describe: the log can only have grown
        check_not_ahead({s["id"]: s["checkpoint"] for s in d["shards"]}, entries, "describe")
        polls += 1
        delivered = sum(s["delivered"] for s in d["shards"])
        if delivered >= total // 3:
            break
        assert time.monotonic() < deadline, ("too slow", cu.describe_str(d))
        time.sleep(0.01)
    assert delivered < total, "the consumer finished before the kill; make the handler slower"
    c.close()
    srv.kill()
    saved = {sh: cu.checkpoint_file(data_dir, "ck-c", sh) or 0 for sh in range(3)}
    check_not_ahead(saved, cu.read_jsonl(log), "checkpoint files after kill -9")
    assert any(saved.values()), ("no checkpoint saved at all after %d records" % delivered)
    srv.env["SLUICE_TEST_GEN"] = "2"
    srv.start()
    c = srv.client()
    cu.wait_caught_up(c, "ck-c", "ck", 30)
    entries = cu.read_jsonl(log)
    tips = cu.tips(c, "ck")
    for sh in range(3):
        after = [r for e in entries if e["gen"] == "2" and e["shard"] == sh for r in e["recs"]]
        seqs = [r[0] for r in after]
        want = list(range(saved[sh] + 1, tips[sh] + 1))
        assert seqs == want, ("shard %d after the restart: not exactly checkpoint+1..tip in "
                              "order" % sh, seqs[:5], seqs[-5:], "want", want[:3], want[-3:])
        for seq, key, dat in after:
            assert produced[(sh, seq)] == dat, (sh, seq, dat)
    done = done_by_shard(entries)
    missing = [k for k in produced if k[1] not in done.get(k[0], set())]
    assert not missing, ("records never handled", missing[:10])
    c.delete_consumer("ck-c")
    c.close()


def wait_rerun(log, n0, shard, start, tip, timeout):
    """Wait for a run of shard's records start..tip, in order and contiguous, in the log lines
    after the first n0 (lines of batches that were out at the reset may come first)."""
    def find():
        recs = [r for e in cu.read_jsonl(log)[n0:] if e["shard"] == shard for r in e["recs"]]
        seqs = [r[0] for r in recs]
        if start not in seqs:
            return None
        run = seqs[seqs.index(start):]
        if len(run) < tip - start + 1:
            return None
        assert run == list(range(start, tip + 1)), ("shard %d after reset" % shard, run)
        return run
    return sp.wait_until(find, timeout, "shard %d to be delivered again from %d to %d"
                         % (shard, start, tip))


def test_reset_while_running():
    log = os.path.join(root, "rs.log")
    c = srv.client()
    c.create_stream("rs", 2)
    for b in range(3):
        c.produce("rs", [("k%d" % (i % 17), "r%d-%d" % (b, i)) for i in range(200)])
    tips = cu.tips(c, "rs")
    c.create_consumer("rs-c", "rs", cu.exec_log_handler(log, sleep_ms=40), start="trim-horizon",
                      batch_size=20)

    def lines_per_shard():
        n = {0: 0, 1: 0}
        for e in cu.read_jsonl(log):
            n[e["shard"]] += 1
        return n
    # Two batches logged per shard: the one out at the reset does not start at seq 1, so a line
    # of it logged just before the reset cannot be mistaken for the start of the re-run.
    sp.wait_until(lambda: min(lines_per_shard().values()) >= 2, 20, "two batches per shard")
    d = c.describe_consumer("rs-c")
    assert any(s["state"] == "DELIVERING" and s["checkpoint"] < tips[s["id"]]
               for s in d["shards"]), ("not mid-stream at the reset", cu.describe_str(d))
    n0 = len(cu.read_jsonl(log))
    c.reset_consumer("rs-c", -1, sp.POS_TRIM_HORIZON)
    # The deliveries out at the reset are abandoned (exec handlers killed); the next window,
    # fetched from the new position, must go out and be checkpointed as usual.
    for sh in (0, 1):
        try:
            wait_rerun(log, n0, sh, 1, tips[sh], 30)
        except AssertionError as e:
            raise AssertionError("%s; describe: %s"
                                 % (e, cu.describe_str(c.describe_consumer("rs-c"))))
    cu.wait_caught_up(c, "rs-c", "rs", 30)
    # One shard, when idle: only that shard again.
    n1 = len(cu.read_jsonl(log))
    c.reset_consumer("rs-c", 1, sp.POS_TRIM_HORIZON)
    wait_rerun(log, n1, 1, 1, tips[1], 10)
    cu.wait_caught_up(c, "rs-c", "rs", 10)
    # At a sequence number.
    c.reset_consumer("rs-c", 0, sp.POS_AT_SEQ, 150)
    wait_rerun(log, n1, 0, 150, tips[0], 10)
    cu.wait_caught_up(c, "rs-c", "rs", 10)
    later = cu.read_jsonl(log)[n1:]
    assert all(r[0] >= 150 for e in later if e["shard"] == 0 for r in e["recs"]), \
        "reset of shard 0 to seq 150 redelivered earlier records"
    assert sum(1 for e in later for r in e["recs"] if e["shard"] == 1) == tips[1], \
        "shard 1 was delivered more than once after its own reset"
    c.delete_consumer("rs-c")
    c.close()


def test_reset_as_the_first_batches_start():
    """The reset lands while each shard's first batch is handed to a starting exec handler (on
    the previous engine about a third of the shards here logged their first batch twice)."""
    c = srv.client()
    c.create_stream("rf", 2)
    c.produce("rf", [("k%d" % (i % 17), "r%d" % i) for i in range(120)])
    tips = cu.tips(c, "rf")
    for r in range(10):
        log = os.path.join(root, "rf%d.log" % r)
        name = "rf-c%d" % r
        c.create_consumer(name, "rf", cu.exec_log_handler(log, sleep_ms=20),
                          start="trim-horizon", batch_size=20)
        c.reset_consumer(name, -1, sp.POS_TRIM_HORIZON)
        cu.wait_caught_up(c, name, "rf", 30)
        c.delete_consumer(name)
        time.sleep(0.2)  # a handler still running an abandoned batch would log it by now
        for sh in (0, 1):
            seqs = [x[0] for e in cu.read_jsonl(log) if e["shard"] == sh for x in e["recs"]]
            assert seqs == list(range(1, tips[sh] + 1)), (
                "round %d shard %d: not each record once, in order" % (r, sh), seqs[:45])
    c.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=100)
finally:
    srv.cleanup()
    shutil.rmtree(root, ignore_errors=True)
