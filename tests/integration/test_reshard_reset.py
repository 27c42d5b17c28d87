#!/usr/bin/env python3
"""Consumer reset across resharding keeps parents before children (docs/handlers.md, "Reset").

The stream is split, merged and split again (0 -> 2,3; 3+1 -> 4; 4 -> 5,6) with records in
every generation; the exec handler (log_handler.py) logs every batch before it answers.

- reset of every shard to trim-horizon, several times, once the consumer consumed everything:
  every shard is delivered again in full, each parent's whole re-run before any line of its
  children's, and each key's records again in order, nothing lost;
- the same while the re-run is still going (batches out at the reset): what comes after the
  reset is again the full, lineage-ordered run (before it only an in-order piece of the old run);
- reset of one parent (shard 3, grandparent of 5 and 6): only its records come again; records
  produced into its descendants meanwhile wait until it is finished again, and the children go
  on from their own positions (nothing of theirs is delivered twice).
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

STREAM = "rr"
CONSUMER = "rr-c"
KEYS = 32
tmp = tempfile.mkdtemp(prefix="sluice-rr-")
LOG = os.path.join(tmp, "handler.log")
srv = None
acked = {}  # key -> [seq] in acknowledgement order (one producer)
shard_seqs = {}  # shard -> [seq] ascending
parents = {}  # shard -> [parent ids]
CLOSED = {0, 1, 3, 4}


def produce(c, n, tag):
    batch = [("key-%d" % (i % KEYS), "%s-%d" % (tag, i)) for i in range(n)]
    for (k, _), (st, sh, seq) in zip(batch, c.produce(STREAM, batch)):
        assert st == 0, sp.ERR.get(st, st)
        acked.setdefault(k, []).append(seq)
        shard_seqs.setdefault(sh, []).append(seq)


def lines_since(n0):
    """The handler's log lines after the first n0: [(line index, shard, [(seq, key)])]."""
    return [(i, e["shard"], [(r[0], r[1]) for r in e["recs"]])
            for i, e in enumerate(cu.read_jsonl(LOG)[n0:])]


def is_slice(part, whole):
    """Whether part is a contiguous piece of whole (in order, nothing skipped)."""
    if not part:
        return True
    return any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1))


def rerun_of(lines, shard):
    """The lines of shard's run from its first record: from the last line that starts there."""
    mine = [(i, recs) for i, sh, recs in lines if sh == shard]
    starts = [k for k, (_, recs) in enumerate(mine) if recs[0][0] == shard_seqs[shard][0]]
    assert starts, ("shard %d was not delivered again from its first record %d"
                    % (shard, shard_seqs[shard][0]), [r[0][0] for _, r in mine][:20])
    return mine[starts[-1]:]


def check_full_rerun(n0, what):
    """After the first n0 log lines: every shard again in full, parents before children, and per
    key the whole sequence again in order (before it, at most an in-order piece of the old run
    that was out at the reset)."""
    lines = lines_since(n0)
    span = {}
    for shard, seqs in shard_seqs.items():
        run = rerun_of(lines, shard)
        got = [seq for _, recs in run for seq, _ in recs]
        assert got == seqs, ("%s: shard %d run again: not all its records in order"
                             % (what, shard), got[:10], seqs[:10])
        span[shard] = (run[0][0], run[-1][0])
    for child, ps in parents.items():
        for p in ps:
            assert span[p][1] < span[child][0], (
                "%s: child shard %d delivered (log line %d) before its parent %d finished "
                "(its last line %d)" % (what, child, span[child][0], p, span[p][1]))
    per_key = {}
    for _, _, recs in lines:
        for seq, key in recs:
            per_key.setdefault(key, []).append(seq)
    for key, want in acked.items():
        got = per_key.get(key, [])
        head, tail = got[:len(got) - len(want)], got[len(got) - len(want):]
        assert tail == want, ("%s: key %s not delivered again in order" % (what, key),
                              got[:12], want[:12])
        assert is_slice(head, want), ("%s: key %s: before the re-run, records out of order"
                                      % (what, key), head)


def wait_caught_up(c):
    cu.wait_caught_up(c, CONSUMER, STREAM, 60)


def wait_logged(n0, want):
    """Wait until the log lines after the first n0 hold want[shard] (a list of seqs) in order
    for every shard of want (the reset is applied on the loops after its answer, so describe
    alone cannot tell a re-run that ended from one that did not start)."""
    def done():
        got = {}
        for _, sh, recs in lines_since(n0):
            got.setdefault(sh, []).extend(seq for seq, _ in recs)
        return all(is_slice(seqs, got.get(sh, [])) for sh, seqs in want.items())
    sp.wait_until(done, 60, "the handler to log the records again")


def wait_finished(c, ids):
    """Closed shards show FINISHED once their end checkpoint is saved (up to 100 ms later)."""
    sp.wait_until(lambda: all(s["state"] == "FINISHED" for s in
                              c.describe_consumer(CONSUMER)["shards"] if s["id"] in ids),
                  10, "shards %s to be FINISHED" % sorted(ids))


def test_setup_and_consume_to_the_end():
    c = srv.client()
    c.create_stream(STREAM, 2)
    produce(c, 200, "gen0")
    s0 = [s for s in c.list_shards(STREAM) if s["id"] == 0][0]
    assert c.split_shard(STREAM, 0, (s0["start"] + s0["end"] + 1) // 2) == [2, 3]
    produce(c, 200, "gen1")
    assert c.merge_shards(STREAM, 3, 1) == 4
    produce(c, 200, "gen2")
    s4 = [s for s in c.list_shards(STREAM) if s["id"] == 4][0]
    assert c.split_shard(STREAM, 4, (s4["start"] + s4["end"] + 1) // 2) == [5, 6]
    produce(c, 200, "gen3")
    for s in c.list_shards(STREAM):
        parents[s["id"]] = [p for p in (s["parent"], s["adjacent"]) if p >= 0]
    assert parents == {0: [], 1: [], 2: [0], 3: [0], 4: [3, 1], 5: [4], 6: [4]}, parents
    assert set(shard_seqs) == set(parents), ("a generation got no records", shard_seqs.keys())
    c.create_consumer(CONSUMER, STREAM, cu.exec_log_handler(LOG, sleep_ms=1),
                      start="trim-horizon", batch_size=10)
    wait_caught_up(c)
    check_full_rerun(0, "first run")
    c.close()


def test_reset_all_to_trim_horizon_keeps_lineage_order():
    c = srv.client()
    for round_ in range(4):
        n0 = len(cu.read_jsonl(LOG))
        c.reset_consumer(CONSUMER, -1, sp.POS_TRIM_HORIZON)
        wait_logged(n0, shard_seqs)
        wait_caught_up(c)
        check_full_rerun(n0, "reset round %d" % round_)
        wait_finished(c, CLOSED)
    c.close()


def test_reset_all_while_delivering():
    c = srv.client()
    n0 = len(cu.read_jsonl(LOG))
    c.reset_consumer(CONSUMER, -1, sp.POS_TRIM_HORIZON)
    # The re-run is under way (some lines logged); reset again with batches out.
    sp.wait_until(lambda: len(cu.read_jsonl(LOG)) >= n0 + 5, 30, "the re-run to start")
    n1 = len(cu.read_jsonl(LOG))
    c.reset_consumer(CONSUMER, -1, sp.POS_TRIM_HORIZON)
    wait_logged(n1, shard_seqs)
    wait_caught_up(c)
    check_full_rerun(n1, "reset while delivering")
    c.close()


def test_reset_one_parent_holds_back_its_descendants():
    c = srv.client()
    wait_caught_up(c)
    n0 = len(cu.read_jsonl(LOG))
    before = {k: list(v) for k, v in shard_seqs.items()}
    c.reset_consumer(CONSUMER, 3, sp.POS_TRIM_HORIZON)
    produce(c, 200, "after-parent-reset")  # into 2, 5 and 6
    wait_logged(n0, {sh: shard_seqs[sh][len(before[sh]):] for sh in (2, 5, 6)})
    wait_logged(n0, {3: before[3]})
    wait_caught_up(c)
    lines = lines_since(n0)
    got = {}
    for i, sh, recs in lines:
        got.setdefault(sh, []).extend(seq for seq, _ in recs)
    assert got.get(3) == before[3], ("shard 3 not delivered again in full", got.get(3, [])[:10])
    for sh in (0, 1, 4):
        assert sh not in got, ("shard %d delivered again" % sh, got[sh][:10])
    for sh in (2, 5, 6):
        new = shard_seqs[sh][len(before[sh]):]
        assert got.get(sh, []) == new, ("shard %d: not exactly the new records" % sh,
                                         got.get(sh, [])[:10], new[:10])
    last3 = max(i for i, sh, _ in lines if sh == 3)
    early = [(i, sh) for i, sh, _ in lines if sh in (5, 6) and i < last3]
    assert not early, ("descendants of shard 3 delivered before it finished again", early[:5],
                       "last line of shard 3", last3)
    wait_finished(c, CLOSED)
    c.delete_consumer(CONSUMER)
    c.close()


if __name__ == "__main__":
    try:
        srv = sp.Server(threads=4).start()
        sp.run_tests(sp.collect(globals()), time_limit=100)
    finally:
        if srv:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
