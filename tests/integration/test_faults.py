#!/usr/bin/env python3
"""I/O and allocation faults, injected by sluiced-faults (src/server/faults.h):

- disk full: ENOSPC on every log write while a producer runs. The records of the affected requests
  fail with -ENOSPC (retryable), nothing acknowledged is lost, and once the fault is cleared
  produce succeeds again; after a restart, the stored records are exactly the acknowledged ones.
- fsync failure (group mode): an fdatasync of one shard fails with EIO. The batch waiting for it
  is not acknowledged, the shard then refuses writes with `unavailable` and /metrics shows
  sluice_shard_failed 1 for it, other shards keep working; after a restart the shard works and
  every acknowledged record is there.
  Where: the shim fails the fsyncs that go through the log's I/O seam (segment roll: the sealed
  segment, its index and the folder; close). The group-commit fdatasync itself runs on io_uring,
  outside the seam, so the test makes segments small (--segment-bytes 4096) for a roll to sync
  the batches. sl_fault_sync_result() is ready for a hook in server.c sync_done.
- read and open failures: a READ answers the error and the next one works; a shard whose segment
  cannot be opened at start stops the server with a clear message.
- allocation failure on the PRODUCE path: those requests fail with `throttled`, the server lives.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_util as fu  # noqa: E402
import sluiceproto as sp  # noqa: E402

stats = {}


def produce_ok(c, stream, records):
    res = c.produce(stream, records)
    assert all(st == 0 for st, _, _ in res), [sp.ERR.get(st, st) for st, _, _ in res]
    return res


def stored(c, stream, nshards):
    out = {}
    for sh in range(nshards):
        for r in c.read_all(stream, sh):
            out[(sh, r["seq"])] = r["data"]
    return out


def test_disk_full_while_producing():
    # Small segments: the disk also fills up in the middle of segment rolls.
    srv = fu.FaultServer(args=["--segment-bytes", "64KiB"])
    try:
        srv.start()
        c = srv.client()
        c.create_stream("full", 2)
        c.close()
        acked = {}  # (shard, seq) -> data
        failures = []  # statuses of failed records
        phase = {"name": "before"}
        # [acked, failed] records per phase
        by_phase = {"before": [0, 0], "switching": [0, 0], "full": [0, 0], "after": [0, 0]}
        stop = threading.Event()
        errors = []

        def producer():
            try:
                p = srv.client()
                i = 0
                while not stop.is_set():
                    recs = [("k%d" % (i * 4 + j), b"data-%d-%d" % (i, j) * 20) for j in range(4)]
                    name = phase["name"]
                    for (st, sh, seq), (_, data) in zip(p.produce("full", recs), recs):
                        if st == 0:
                            assert (sh, seq) not in acked, ("acknowledged twice", sh, seq)
                            acked[(sh, seq)] = data
                            by_phase[name][0] += 1
                        else:
                            failures.append(st)
                            by_phase[name][1] += 1
                    i += 1
                    time.sleep(0.002)
                p.close()
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        t = threading.Thread(target=producer)
        t.start()
        time.sleep(0.5)
        phase["name"] = "switching"  # the server sees new rules within RELOAD_WAIT_S
        srv.set_faults("write:ENOSPC")  # every log write: the disk is full
        phase["name"] = "full"
        time.sleep(1.0)
        phase["name"] = "switching"
        srv.set_faults("")
        phase["name"] = "after"
        time.sleep(0.5)
        stop.set()
        t.join(30)
        assert not t.is_alive(), "producer hung"
        assert not errors, errors
        stats["disk_full"] = dict((k, tuple(v)) for k, v in by_phase.items())
        # A phase starts once the server must have seen the new rules; only the one request
        # in flight at that moment (4 records) may still get the old outcome.
        assert by_phase["before"][0] > 0 and by_phase["after"][0] > 0, by_phase
        assert by_phase["before"][1] == 0, by_phase
        assert by_phase["full"][1] > 0 and by_phase["full"][0] <= 4, by_phase
        assert by_phase["after"][1] <= 4, by_phase
        assert failures and set(failures) == {-fu.ENOSPC}, set(failures)
        assert all(st in fu.RETRYABLE for st in failures)
        assert "faults: first write failure (No space left on device)" in srv.log_text()
        # The fault is gone: produce works, and everything acknowledged is readable.
        c = srv.client()
        produce_ok(c, "full", [("after", b"after-the-fault")])
        got = stored(c, "full", 2)
        missing = [k for k in acked if got.get(k) != acked[k]]
        assert not missing, ("acknowledged records lost or changed", missing[:5])
        # A failed batch is undone (ftruncate), so nothing unacknowledged is stored either.
        extra = set(got) - set(acked)
        assert len(extra) == 1, ("records stored that were never acknowledged", len(extra))
        c.close()
        assert srv.stop() == 0
        srv.start()  # and all of it is on disk, not just in the page cache
        c = srv.client()
        got2 = stored(c, "full", 2)
        assert got2 == got, (len(got2), len(got))
        c.close()
        stats["disk_full_acked"] = len(acked)
        stats["disk_full_failed_records"] = len(failures)
    finally:
        srv.cleanup()


def test_fsync_failure_fails_the_shard():
    srv = fu.FaultServer(args=["--segment-bytes", "4096", "--fsync", "group"])
    try:
        srv.start()
        c = srv.client()
        c.create_stream("fbad", 1)
        c.create_stream("fgood", 1)
        acked = {"fbad": {}, "fgood": {}}
        for i in range(3):
            for s in ("fbad", "fgood"):
                (st, sh, seq), = produce_ok(c, s, [("k", b"before-%d" % i)])
                acked[s][seq] = b"before-%d" % i
        srv.set_faults("fsync:EIO:path=streams/fbad/")
        # Records of ~1 KiB in 4 KiB segments: a roll, and its sync, comes within a few.
        # Pipelined, so that batches already written wait for a sync when the roll fails.
        sent = {}
        for i in range(20):
            data = b"%04d" % i + b"x" * 1000
            sent[c.send(sp.OP_PRODUCE, c.produce_body("fbad", [("k", data)]))] = data
        results = {}
        for _ in sent:
            op, rid, body = c.recv_frame()
            (st, sh, seq), = sp.Client.parse_produce(sp.Client.check(body))
            results[rid] = st
            if st == 0:
                acked["fbad"][seq] = sent[rid]
        outcome = [results[rid] for rid in sorted(results)]
        stats["fsync_outcomes"] = [sp.ERR.get(s, s) for s in outcome]
        assert -fu.EIO in outcome, stats["fsync_outcomes"]
        first_fail = outcome.index(-fu.EIO)
        assert all(s != 0 for s in outcome[first_fail:]), ("acknowledged after the failure",
                                                          outcome)
        assert outcome[-1] == sp.CODE["unavailable"], outcome
        assert all(st in fu.RETRYABLE for st in outcome[first_fail:])
        # The shard keeps refusing; the other shard keeps working (its rolls sync fine).
        for i in range(3):
            (st, _, _), = c.produce("fbad", [("k", b"refused")])
            assert st == sp.CODE["unavailable"], sp.ERR.get(st, st)
        for i in range(12):
            data = b"good-%d" % i + b"y" * 1000
            (st, sh, seq), = produce_ok(c, "fgood", [("k", data)])
            acked["fgood"][seq] = data
        def shard_failed():
            m = srv.metrics()
            return m if m.get('sluice_shard_failed{stream="fbad",shard="0"}') == 1 else None
        m = sp.wait_until(shard_failed, 5, "sluice_shard_failed 1 for fbad")
        assert m['sluice_shard_failed{stream="fgood",shard="0"}'] == 0, m
        # Reads of the failed shard still work: acknowledged records are all there.
        got = {r["seq"]: r["data"] for r in c.read_all("fbad", 0)}
        assert all(got.get(k) == v for k, v in acked["fbad"].items())
        c.close()
        assert srv.stop() == 0
        srv.set_faults("")  # the disk is healthy again
        srv.start()
        c = srv.client()
        for s in ("fbad", "fgood"):
            got = {r["seq"]: r["data"] for r in c.read_all(s, 0)}
            lost = [k for k, v in acked[s].items() if got.get(k) != v]
            assert not lost, (s, "acknowledged records lost", lost)
        produce_ok(c, "fbad", [("k", b"works again")])
        m = srv.metrics()
        assert m['sluice_shard_failed{stream="fbad",shard="0"}'] == 0, m
        c.close()
    finally:
        srv.cleanup()


def test_read_fault_then_recovers():
    srv = fu.FaultServer()
    try:
        srv.start()
        c = srv.client()
        c.create_stream("rd", 1)
        produce_ok(c, "rd", [("k", b"one"), ("k", b"two")])
        srv.set_faults("read:EIO:path=streams/rd/:count=2")
        for _ in range(2):
            try:
                c.read("rd", 0, sp.POS_TRIM_HORIZON)
                raise AssertionError("a READ succeeded while its pread failed")
            except sp.SluiceError as e:
                assert e.status == -fu.EIO, e
        recs = c.read("rd", 0, sp.POS_TRIM_HORIZON)["records"]
        assert [r["data"] for r in recs] == [b"one", b"two"]
        c.ping()
        c.close()
    finally:
        srv.cleanup()


def test_open_fault_at_start():
    srv = fu.FaultServer()
    try:
        srv.start()
        c = srv.client()
        c.create_stream("op", 1)
        produce_ok(c, "op", [("k", b"x")])
        c.close()
        assert srv.stop() == 0
        srv.env["SLUICE_FAULTS"] = "open:EIO:path=streams/op/"
        rc, _ = srv.start_expect_failure()
        assert rc != 0
        tail = srv.log_tail(5)
        assert "cannot open data folder" in tail and "Input/output error" in tail, tail
        del srv.env["SLUICE_FAULTS"]
        srv.start()
        c = srv.client()
        assert [r["data"] for r in c.read_all("op", 0)] == [b"x"]
        c.close()
    finally:
        srv.cleanup()


def test_alloc_failure_on_produce():
    srv = fu.FaultServer(faults="alloc:ENOMEM:site=produce:after=2:count=3")
    try:
        srv.start()
        c = srv.client()
        c.create_stream("mem", 2)
        got = []
        for i in range(8):
            try:
                produce_ok(c, "mem", [("k%d" % i, b"v%d" % i)])
                got.append("ok")
            except sp.SluiceError as e:
                assert e.status == sp.CODE["throttled"] and "memory" in e.message, e
                got.append("throttled")
        assert got == ["ok"] * 2 + ["throttled"] * 3 + ["ok"] * 3, got
        c.ping()
        assert sum(len(c.read_all("mem", s)) for s in range(2)) == 5
        m = srv.metrics()
        assert m["sluice_records_produced_total"] == 5, m["sluice_records_produced_total"]
        c.close()
        assert srv.alive()
        stats["alloc_failures"] = got.count("throttled")
    finally:
        srv.cleanup()


def test_summary():
    print("  " + ", ".join("%s=%s" % kv for kv in stats.items()))


if __name__ == "__main__":
    fu.require_binary()
    sp.run_tests(sp.collect(globals()), time_limit=120)
