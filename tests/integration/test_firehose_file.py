#!/usr/bin/env python3
"""Firehose to a file:// destination, end to end (docs/firehose.md).

A real sluiced, records produced over the native protocol (binary data, empty records, many
keys, 2 shards), firehoses created with FIREHOSE_CREATE, and the objects read back from the
folder by an independent decoder (firehose_util.py: `zstd -dc`, json, base64) and checked: the
records equal what was produced and what the stream holds, each exactly once; per shard the
objects' sequence ranges are contiguous and match their keys; keys follow the documented layout.

  - size flush (buffer_bytes 1 MiB, interval at its maximum) and FIREHOSE_FLUSH for the rest;
  - time flush (interval 1 s, buffer 128 MiB): everything arrives without a flush;
  - describe (objects, bytes, last key, counters, config round trip), list, delete;
  - --format raw (data lines only) and --compression none;
  - kill -9 right after objects appear, several rounds, restart on the same data: no record in
    two objects (a re-upload after the crash must overwrite the same key), nothing missing.
A crash between writing an object's temporary file and its rename is the objstore's to handle
(atomic rename): tests/unit/objstore/test_objstore_file.c covers it ("what a crash in the
middle of put leaves behind"), not this test.
"""
import collections
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import firehose_util as fu  # noqa: E402
import sluiceproto as sp  # noqa: E402

MIB = 1 << 20
STREAM = "fhs"


def tmpdir():
    d = tempfile.mkdtemp(prefix="sluice-fh-")
    TMP.append(d)
    return d


TMP = []


def new_stream(c, name=STREAM, shards=2):
    c.create_stream(name, shards)
    sp.wait_until(lambda: c.describe_stream(name)["status"] == 0, 10, "stream active")


def test_size_time_and_explicit_flush():
    rng = random.Random(1)
    with sp.Server() as srv:
        c = srv.client()
        new_stream(c)
        d_size, d_time = tmpdir(), tmpdir()
        c.create_firehose("fh-size", STREAM, "file://" + d_size, buffer_bytes=1 * MIB,
                          buffer_interval_ms=900000)
        c.create_firehose("fh-time", STREAM, "file://" + d_time, buffer_bytes=128 * MIB,
                          buffer_interval_ms=1000)
        # About 2.8 MiB per shard: two size flushes each, the rest stays buffered.
        recs = fu.make_records(rng, 5000)
        t0 = time.monotonic()
        fu.produce_all(c, STREAM, recs)
        produced = collections.Counter((k.encode(), d) for k, d in recs)
        tips = fu.shard_tips(c, STREAM, 2)
        assert all(t > 0 for t in tips.values()), ("both shards get records", tips)

        # Size: at least two objects per shard without any flush, and not everything.
        def size_objects():
            objs, _ = fu.list_file_objects(d_size)
            per = collections.Counter(fu.parse_key(k)["shard"] for k in objs)
            return per if all(per[s] >= 2 for s in range(2)) else None
        sp.wait_until(size_objects, 20, "two size-flushed objects per shard")
        time.sleep(0.5)
        d = c.describe_firehose("fh-size")
        archived = sum(s["records_archived"] for s in d["shards"])
        assert archived < len(recs), ("the size firehose wrote everything without a flush", archived)
        assert sum(s["buffered_records"] for s in d["shards"]) > 0 or archived < len(recs)
        objs, _ = fu.list_file_objects(d_size)
        for key, blob in objs.items():
            _, rs = fu.decode_object(key, blob, STREAM)
            raw = sum(len(r["data"]) + len(r["key"]) for r in rs)
            assert raw >= 0.7 * MIB, ("a size-flushed object holds only %d bytes" % raw, key)
            assert raw <= 1.3 * MIB, ("a size-flushed object holds %d bytes" % raw, key)

        # Time: fh-time got everything within a few intervals, without a flush.
        fu.wait_archived(c, "fh-time", tips, 10, "the time flush")
        t_time = time.monotonic() - t0
        objs_t, _ = fu.list_file_objects(d_time)
        fu.verify_archive(objs_t, STREAM, fu.stream_contents(c, STREAM, 2), produced)
        assert t_time >= 0.9, ("a 1 s interval flushed after %.2fs" % t_time)

        # Explicit flush: the rest of fh-size now.
        c.flush_firehose("fh-size")
        fu.wait_archived(c, "fh-size", tips, 10, "FIREHOSE_FLUSH")
        objs, tmps = fu.list_file_objects(d_size)
        assert not tmps, tmps
        fu.verify_archive(objs, STREAM, fu.stream_contents(c, STREAM, 2), produced)

        # A second round continues the ranges without a gap.
        more = fu.make_records(rng, 400, start=10000)
        fu.produce_all(c, STREAM, more)
        produced.update((k.encode(), dd) for k, dd in more)
        tips = fu.shard_tips(c, STREAM, 2)
        c.flush_firehose("fh-size")
        fu.wait_archived(c, "fh-size", tips, 10, "the second flush")
        fu.wait_archived(c, "fh-time", tips, 10, "the second time flush")
        contents = fu.stream_contents(c, STREAM, 2)
        for dd in (d_size, d_time):
            objs, _ = fu.list_file_objects(dd)
            fu.verify_archive(objs, STREAM, contents, produced)


def test_flush_writes_out_a_backlog():
    """FIREHOSE_FLUSH is "write out every shard's buffer now" (src/proto/codec.h): with several
    buffers' worth waiting, everything produced before the flush must be archived without
    waiting for the interval (900 s here), not only the next window."""
    rng = random.Random(5)
    with sp.Server() as srv:
        c = srv.client()
        new_stream(c)
        recs = fu.make_records(rng, 9000)  # ~5 MiB per shard: five buffers of 1 MiB
        fu.produce_all(c, STREAM, recs)
        tips = fu.shard_tips(c, STREAM, 2)
        dest = tmpdir()
        c.create_firehose("fh-backlog", STREAM, "file://" + dest, buffer_bytes=MIB,
                          buffer_interval_ms=900000)
        c.flush_firehose("fh-backlog")
        try:
            fu.wait_archived(c, "fh-backlog", tips, 15, "FIREHOSE_FLUSH to write out a backlog")
        except AssertionError as e:
            d = c.describe_firehose("fh-backlog")
            raise AssertionError("%s: tips %s, checkpoints %s, objects %s, buffered records %s" % (
                e, tips, [st["checkpoint"] for st in d["shards"]],
                [st["objects_written"] for st in d["shards"]],
                [st["buffered_records"] for st in d["shards"]]))
        objs, _ = fu.list_file_objects(dest)
        fu.verify_archive(objs, STREAM, fu.stream_contents(c, STREAM, 2),
                          collections.Counter((k.encode(), d) for k, d in recs))


def test_describe_list_delete():
    rng = random.Random(2)
    with sp.Server() as srv:
        c = srv.client()
        new_stream(c)
        dest = tmpdir()
        c.create_firehose("fh-d", STREAM, "file://" + dest, buffer_bytes=2 * MIB,
                          buffer_interval_ms=900000, zstd_level=5, max_retry_duration_ms=60000,
                          start="trim-horizon")
        recs = fu.make_records(rng, 600)
        fu.produce_all(c, STREAM, recs)
        tips = fu.shard_tips(c, STREAM, 2)
        d = c.describe_firehose("fh-d")
        assert d["name"] == "fh-d" and d["stream"] == STREAM, d
        assert d["dest"] == "file://" + dest, d["dest"]
        assert (d["buffer_bytes"], d["buffer_interval_ms"], d["compression"], d["zstd_level"],
                d["format"], d["max_retry_duration_ms"], d["on_failure"], d["start_type"]) == \
            (2 * MIB, 900000, 1, 5, 0, 60000, "", sp.POS_TRIM_HORIZON), d
        assert d["created_ms"] > 0 and len(d["shards"]) == 2, d
        for st in d["shards"]:
            assert st["objects_written"] == 0 and st["last_object_key"] == "", st
        c.flush_firehose("fh-d")
        d = fu.wait_archived(c, "fh-d", tips, 10)
        objs, _ = fu.list_file_objects(dest)
        ranges = fu.verify_archive(objs, STREAM, fu.stream_contents(c, STREAM, 2))
        for st in d["shards"]:
            mine = ranges[st["id"]]
            assert st["objects_written"] == len(mine), (st, mine)
            assert st["last_object_key"] == mine[-1][2], (st["last_object_key"], mine[-1][2])
            assert st["bytes_written"] == sum(len(objs[k]) for _, _, k in mine), st
            assert st["records_archived"] == tips[st["id"]], (st, tips)
            assert st["checkpoint"] == tips[st["id"]], st
            assert st["upload_failures"] == 0 and st["last_flush_ms"] > 0, st
            assert st["buffered_records"] == 0, st
        assert "fh-d" in c.list_firehoses()
        # Same name space as consumers.
        try:
            c.create_firehose("fh-d", STREAM, "file://" + dest)
            raise AssertionError("a second firehose of the same name was accepted")
        except sp.SluiceError:
            pass
        c.delete_firehose("fh-d")
        assert "fh-d" not in c.list_firehoses()
        try:
            c.describe_firehose("fh-d")
            raise AssertionError("describe of a deleted firehose answered")
        except sp.SluiceError:
            pass
        objs2, _ = fu.list_file_objects(dest)
        assert objs2 == objs, "delete changed the objects"


def test_raw_and_uncompressed():
    rng = random.Random(3)
    with sp.Server() as srv:
        c = srv.client()
        new_stream(c)
        d_raw, d_none, d_rawnone = tmpdir(), tmpdir(), tmpdir()
        c.create_firehose("fh-raw", STREAM, "file://" + d_raw, buffer_bytes=MIB,
                          buffer_interval_ms=900000, format="raw")
        c.create_firehose("fh-none", STREAM, "file://" + d_none, buffer_bytes=MIB,
                          buffer_interval_ms=900000, compression="none")
        c.create_firehose("fh-rawnone", STREAM, "file://" + d_rawnone, buffer_bytes=MIB,
                          buffer_interval_ms=900000, compression="none", format="raw")
        recs = fu.make_records(rng, 2000, json_only=True)
        fu.produce_all(c, STREAM, recs)
        produced = collections.Counter((k.encode(), d) for k, d in recs)
        tips = fu.shard_tips(c, STREAM, 2)
        for n in ("fh-raw", "fh-none", "fh-rawnone"):
            c.flush_firehose(n)
        for n in ("fh-raw", "fh-none", "fh-rawnone"):
            fu.wait_archived(c, n, tips, 15, n)
        contents = fu.stream_contents(c, STREAM, 2)
        objs, _ = fu.list_file_objects(d_none)
        assert objs and all(k.endswith(".jsonl") for k in objs), list(objs)
        fu.verify_archive(objs, STREAM, contents, produced)
        for dd, ext in ((d_raw, ".raw.zst"), (d_rawnone, ".raw")):
            objs, _ = fu.list_file_objects(dd)
            assert objs and all(k.endswith(ext) for k in objs), list(objs)
            by_shard = collections.defaultdict(list)
            for key, blob in objs.items():
                k, lines = fu.decode_object(key, blob, STREAM)
                by_shard[k["shard"]].append((k["first"], k["last"], lines))
            for shard, recs_s in contents.items():
                parts = sorted(by_shard[shard])
                for a, b in zip(parts, parts[1:]):
                    assert b[0] == a[1] + 1, (shard, a[:2], b[:2])
                lines = [ln for p in parts for ln in p[2]]
                want = [r["data"] for r in recs_s]
                assert lines == want, ("raw objects of shard %d differ from the records' data "
                                       "(%d lines, %d records)" % (shard, len(lines), len(want)))
                for p in parts:
                    first = p[0]
                    n = len(p[2])
                    assert p[1] == first + n - 1, ("raw key range vs lines", p[:2], n)


def test_kill9_between_upload_and_checkpoint():
    """Kill -9 right after new objects appear, restart, repeat; then everything exactly once."""
    rng = random.Random(4)
    root = tmpdir()
    data = os.path.join(root, "data")
    dest = os.path.join(root, "objects")
    produced = collections.Counter()
    srv = sp.Server(data_dir=data)
    rounds = int(os.environ.get("SLUICE_FH_CRASH_ROUNDS", "6"))
    seq = 0
    try:
        srv.start()
        c = srv.client()
        new_stream(c)
        c.create_firehose("fh-crash", STREAM, "file://" + dest, buffer_bytes=MIB,
                          buffer_interval_ms=200)
        killed_after = []
        for rnd in range(rounds):
            c = srv.client()
            before = fu.count_file_objects(dest)
            stop = threading.Event()
            errors = []

            def producer(port=srv.port):
                nonlocal seq
                try:
                    pc = sp.Client(port)
                    while not stop.is_set():
                        recs = fu.make_records(rng, 100, start=seq, max_size=6000)
                        seq += 100
                        res = pc.produce(STREAM, recs)
                        for (k, d), r in zip(recs, res):
                            if r[0] == 0:
                                produced[(k.encode(), d)] += 1
                        time.sleep(0.005)
                except (OSError, ConnectionError, sp.SluiceError, TimeoutError):
                    pass  # the server was killed under us: unacknowledged records don't count
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
            th = threading.Thread(target=producer, daemon=True)
            th.start()
            deadline = time.monotonic() + 15
            while fu.count_file_objects(dest) <= before and time.monotonic() < deadline:
                time.sleep(0.001)
            # A few milliseconds in: the checkpoint writer runs every 100 ms.
            time.sleep(rng.choice([0, 0.002, 0.01, 0.03]))
            srv.kill()
            stop.set()
            th.join(10)
            assert not errors, errors
            killed_after.append(fu.count_file_objects(dest) - before)
            srv.start()
        c = srv.client()
        # Records that were acknowledged after the kill cannot exist; ones that were written but
        # not acknowledged can: the stream is the reference, the produced multiset a subset.
        tips = fu.shard_tips(c, STREAM, 2)
        c.flush_firehose("fh-crash")
        fu.wait_archived(c, "fh-crash", tips, 30)
        objs, tmps = fu.list_file_objects(dest)
        contents = fu.stream_contents(c, STREAM, 2)
        fu.verify_archive(objs, STREAM, contents)
        arch = collections.Counter((r["key"], r["data"]) for rs in contents.values() for r in rs)
        missing = produced - arch
        assert not missing, "%d acknowledged records are not in the stream" % sum(missing.values())
        print("  crash rounds: %d, new objects seen before each kill: %s, objects %d, "
              "leftover tmp files %d" % (rounds, killed_after, len(objs), len(tmps)))
    finally:
        srv.cleanup()


if __name__ == "__main__":
    if not fu.zstd_available():
        print("skip: the zstd CLI is missing (Debian package zstd)")
        sys.exit(77)
    try:
        sp.run_tests(sp.collect(globals()), time_limit=240)
    finally:
        for d in TMP:
            shutil.rmtree(d, ignore_errors=True)
