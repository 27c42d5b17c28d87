#!/usr/bin/env python3
"""Restore, replay, export and import end to end (docs/operations.md, "Recovery runbook").

Real sluiced processes, the real sluice CLI, a firehose writing to a file:// destination:

  - data loss: produce (binary data, many keys, 3 shards), archive, stop sluiced, delete its
    data folder, start it empty, `sluice restore`: every record is back with its original
    shard, sequence number, key, arrival timestamp and bytes, the layout (ids, hash ranges,
    start seqs) is the original; a consumer reset to trim-horizon sees every record in order;
    a second restore stores nothing (idempotent);
  - a damaged archive: a missing object is reported as a gap with its shard and seq range and
    the records after it keep their seqs (exit status 3; 0 with --accept-gaps), an object
    archived twice (overlapping ranges) is restored once, a corrupt object is reported by key;
  - a stream split and merged while archived (an empty closed parent included): the restore
    rebuilds the whole lineage, and a consumer from trim-horizon delivers parents first;
  - raw archives are refused with a clear message;
  - replay of a range into another stream while a producer keeps writing to the source, with
    and without --keep-keys: per key (or per source shard) the copy is in source order, with
    nothing missing and nothing twice;
  - export of a shard range and import into another server: same seqs, keys, timestamps and
    data; a second import skips everything; --new-seqs produces instead.
"""
import collections
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import consumer_util as cu  # noqa: E402
import firehose_util as fu  # noqa: E402
import sluiceproto as sp  # noqa: E402

CMD_TIMEOUT = 120
TMP = []


def tmpdir():
    d = tempfile.mkdtemp(prefix="sluice-rs-")
    TMP.append(d)
    return d


def cli_path():
    p = os.path.join(sp.build_dir(), "tools", "cli", "sluice")
    if not os.access(p, os.X_OK):
        raise RuntimeError("%s is missing: build the sluice CLI" % p)
    return p


def sluice(srv, *args, input=None):
    """Run the CLI against srv; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run([cli_path(), "--server", "127.0.0.1:%d" % srv.port] + list(args),
                       input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=CMD_TIMEOUT)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def contents(c, stream):
    """{shard: [(seq, ts, key, data)]} of every shard."""
    return {s["id"]: [(r["seq"], r["ts"], r["key"], r["data"]) for r in c.read_all(stream, s["id"])]
            for s in c.list_shards(stream)}


def layout(c, stream):
    return [(s["id"], s["parent"], s["start"], s["end"], s["start_seq"])
            for s in c.list_shards(stream)]


def archive(c, stream, dest, name="arch"):
    """A firehose of stream into dest; returns once every record is in an object."""
    c.create_firehose(name, stream, "file://" + dest, buffer_interval_ms=1000)
    c.flush_firehose(name)
    fu.wait_archived(c, name, fu.shard_tips(c, stream, 0), 30)


def server_with_archive():
    """(root, data folder, archive folder, a started sluiced on that data folder)."""
    root = tmpdir()
    data = os.path.join(root, "data")
    srv = sp.Server(data_dir=data).start()
    return root, data, os.path.join(root, "archive"), srv


def lose_data_and_restore(srv, data, dest, stream):
    """Stop sluiced, delete its data folder, start it empty, restore stream from dest.
    Returns (a client of the new process, the restore's stderr)."""
    assert srv.stop() == 0
    shutil.rmtree(data)  # the data folder is lost
    srv.start()
    c = srv.client()
    assert c.list_streams() == []
    rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", stream)
    assert rc == 0, err
    return c, err


def test_restore_after_data_loss():
    rng = random.Random(7)
    root, data, dest, srv = server_with_archive()
    try:
        c = srv.client()
        c.create_stream("orders", 3)
        recs = fu.make_records(rng, 3000, max_size=2000)
        fu.produce_all(c, "orders", recs)
        archive(c, "orders", dest)
        assert os.path.exists(os.path.join(dest, "_meta", "orders.json"))
        before, shape = contents(c, "orders"), layout(c, "orders")
        assert sum(len(v) for v in before.values()) == len(recs)
        c.close()
        c, err = lose_data_and_restore(srv, data, dest, "orders")
        assert "3000 records restored" in err and "0 gaps" in err, err
        assert layout(c, "orders") == shape
        after = contents(c, "orders")
        for s in before:
            assert after[s] == before[s], ("shard %d differs after the restore" % s,
                                           len(after[s]), len(before[s]))
        # A second run finds everything stored.
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "orders")
        assert rc == 0 and "0 records restored" in err and "3000 already stored" in err, err
        # Into an existing stream of another layout: refused, nothing stored.
        c.create_stream("other", 2)
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "orders",
                            "--into", "other")
        assert rc == 1 and "layout differs" in err and "hash range" in err, (rc, err)
        assert all(s["next_seq"] == 1 for s in c.list_shards("other"))
        # Only a time range, under another name: exactly the records that arrived in [t1, t2).
        ts = sorted({r[1] for rs in before.values() for r in rs})
        t1, t2 = ts[len(ts) // 3], ts[2 * len(ts) // 3]
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "orders",
                            "--into", "window", "--from-time", str(t1), "--to-time", str(t2))
        assert rc == 0, err
        win = contents(c, "window")
        for s in before:
            assert win[s] == [r for r in before[s] if t1 <= r[1] < t2], "window, shard %d" % s
        # Appends go on after the restored tips.
        res = c.produce("orders", [("after", b"x")])
        assert res[0][0] == 0 and res[0][2] == len(before[res[0][1]]) + 1, res
        # A consumer reset (the CLI) to trim-horizon gets every record, in order per shard.
        log = os.path.join(root, "consumer.log")
        c.create_consumer("audit", "orders", cu.exec_log_handler(log), start="latest",
                          batch_size=500)
        time.sleep(0.5)
        rc, _, err = sluice(srv, "consumer", "reset", "audit", "--to", "trim-horizon")
        assert rc == 0, err
        cu.wait_caught_up(c, "audit", "orders", 60)
        seen = collections.defaultdict(list)
        for e in cu.read_jsonl(log):
            seen[e["shard"]] += [r[0] for r in e["recs"]]
        for s, rs in before.items():
            want = [r[0] for r in rs] + ([res[0][2]] if s == res[0][1] else [])
            got = seen[s][seen[s].index(1):] if 1 in seen[s] else seen[s]
            assert got == want, ("consumer after reset, shard %d" % s, got[:10], want[:10])
        c.delete_consumer("audit")
        c.close()
    finally:
        srv.cleanup()


def split_in_half(c, stream, shard_id):
    sh = [s for s in c.list_shards(stream) if s["id"] == shard_id][0]
    return c.split_shard(stream, shard_id, (sh["start"] + sh["end"] + 1) // 2)


def test_restore_after_resharding():
    """A stream split and merged while its firehose archived it (one parent split before it got
    any record): the archive's layout follows the reshards, and a restore into an empty server
    rebuilds the whole lineage - closed parents with their records and end seqs, children with
    their start seqs - record for record; producers go on into the open children only, and a
    consumer from trim-horizon delivers every parent's records before any of its children's."""
    rng = random.Random(23)
    root, data, dest, srv = server_with_archive()
    try:
        c = srv.client()
        c.create_stream("lineage", 2)
        c.create_firehose("arch", "lineage", "file://" + dest, buffer_interval_ms=1000)
        kids1 = split_in_half(c, "lineage", 1)  # no record yet: an empty closed parent
        recs = fu.make_records(rng, 1500, max_size=1500)
        fu.produce_all(c, "lineage", recs)
        kids0 = split_in_half(c, "lineage", 0)
        more = fu.make_records(rng, 1500, start=1500, max_size=1500)
        fu.produce_all(c, "lineage", more)
        merged = c.merge_shards("lineage", kids1[0], kids1[1])
        last = fu.make_records(rng, 1500, start=3000, max_size=1500)
        fu.produce_all(c, "lineage", last)
        recs += more + last
        c.flush_firehose("arch")
        fu.wait_archived(c, "arch", fu.shard_tips(c, "lineage", 0), 60)
        with open(os.path.join(dest, "_meta", "lineage.json")) as f:
            meta = json.load(f)
        assert len(meta["shards"]) == 7, meta  # the archive's layout followed every reshard
        before, shape = contents(c, "lineage"), layout(c, "lineage")
        ends = {s["id"]: s["end_seq"] for s in c.list_shards("lineage")}
        assert len(shape) == 7, shape  # 0, 1, 1's two children, 0's two children, the merge
        assert before[1] == [] and all(before[k] for k in kids0) and before[merged], \
            {k: len(v) for k, v in before.items()}
        assert sum(len(v) for v in before.values()) == len(recs)
        c.close()
        c, err = lose_data_and_restore(srv, data, dest, "lineage")
        assert "%d records restored" % len(recs) in err and "0 gaps" in err, err
        assert layout(c, "lineage") == shape
        assert {s["id"]: s["end_seq"] for s in c.list_shards("lineage")} == ends
        after = contents(c, "lineage")
        for sid in before:
            assert after[sid] == before[sid], ("shard %d differs after the restore" % sid,
                                               len(after[sid]), len(before[sid]))
        # New records go to the open shards (0's children and the merged one), after the tips.
        res = c.produce("lineage", [("after-%d" % i, b"y") for i in range(50)])
        open_ids = set(kids0) | {merged}
        for status, sid, seq in res:
            assert status == 0 and sid in open_ids, res
            assert seq > (before[sid][-1][0] if before[sid] else 0), (sid, seq)
        # A consumer from trim-horizon: every record once, parents before children.
        log = os.path.join(root, "consumer.log")
        c.create_consumer("audit", "lineage", cu.exec_log_handler(log), start="trim-horizon",
                          batch_size=300)
        cu.wait_caught_up(c, "audit", "lineage", 60)
        order = []  # (shard, seq) in delivery order
        for e in cu.read_jsonl(log):
            order += [(e["shard"], r[0]) for r in e["recs"]]
        assert len(order) == len(set(order)) == len(recs) + len(res), (len(order), len(recs))
        pos = {}
        for i, (sid, _) in enumerate(order):
            pos.setdefault(sid, [i, i])[1] = i
        for s in c.list_shards("lineage"):
            for p in (s["parent"], s["adjacent"]):
                if p >= 0 and p in pos and s["id"] in pos:
                    assert pos[p][1] < pos[s["id"]][0], ("child %d before parent %d"
                                                         % (s["id"], p))
        c.delete_consumer("audit")
        c.close()
    finally:
        srv.cleanup()


def objects_of(dest, shard):
    """[(first seq, last seq, key)] of shard's objects, by first seq."""
    objs, _ = fu.list_file_objects(dest)
    infos = [(fu.parse_key(k), k) for k in objs]
    return sorted((i["first"], i["last"], k) for i, k in infos if i["shard"] == shard)


def test_gaps_duplicates_and_bad_objects():
    rng = random.Random(11)
    dest = tmpdir()
    with sp.Server() as srv:
        c = srv.client()
        c.create_stream("g", 2)
        c.create_firehose("arch", "g", "file://" + dest, buffer_interval_ms=900000)
        for rnd in range(4):  # four objects per shard, one per flush
            fu.produce_all(c, "g", fu.make_records(rng, 400, start=rnd * 400))
            c.flush_firehose("arch")
            fu.wait_archived(c, "arch", fu.shard_tips(c, "g", 2), 30)
        before = contents(c, "g")
        objs1 = objects_of(dest, 1)
        assert len(objs1) == 4, objs1
        # A missing object in shard 1.
        first, last, key = objs1[1]
        os.rename(os.path.join(dest, key), os.path.join(tmpdir(), "moved"))
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "g",
                            "--into", "g2")
        assert rc == 3, (rc, err)
        assert ("gap: shardId-000000000001 seqs %d..%d (%d records)"
                % (first, last, last - first + 1)) in err, err
        got = contents(c, "g2")
        assert got[0] == before[0]
        assert got[1] == [r for r in before[1] if not first <= r[0] <= last]
        # --accept-gaps: the same restore exits 0.
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "g",
                            "--into", "g3", "--accept-gaps")
        assert rc == 0 and "1 gaps" in err, (rc, err)
        # Records archived twice: an object overlapping two others, built from their lines.
        objs0 = objects_of(dest, 0)
        a, b = objs0[0], objs0[1]
        lines_a = fu.decompress(open(os.path.join(dest, a[2]), "rb").read(), a[2]).splitlines(True)
        lines_b = fu.decompress(open(os.path.join(dest, b[2]), "rb").read(), b[2]).splitlines(True)
        both = b"".join(lines_a[len(lines_a) // 2:] + lines_b[:len(lines_b) // 2])
        mid_first = a[0] + len(lines_a) // 2
        mid_last = b[0] + len(lines_b) // 2 - 1
        folder = os.path.dirname(os.path.join(dest, a[2]))
        dup_key = "g-shardId-000000000000-%020d-%020d.jsonl.zst" % (mid_first, mid_last)
        subprocess.run(["zstd", "-q", "-o", os.path.join(folder, dup_key)], input=both,
                       check=True)
        # A corrupt object: the last object of shard 0 with a byte flipped.
        _, _, bad_key = objs0[3]
        p = os.path.join(dest, bad_key)
        blob = bytearray(open(p, "rb").read())
        blob[len(blob) // 2] ^= 0xFF
        open(p, "wb").write(bytes(blob))
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "g",
                            "--into", "g4")
        assert rc == 3, (rc, err)
        assert "bad object %s" % bad_key in err, err
        assert "%d duplicates skipped" % (mid_last - mid_first + 1) in err, err
        got = contents(c, "g4")
        lost0 = (objs0[3][0], objs0[3][1])
        assert got[0] == [r for r in before[0] if not lost0[0] <= r[0] <= lost0[1]]
        # Without the stored layout: an even split of highest id + 1 shards, said so.
        shutil.rmtree(os.path.join(dest, "_meta"))
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "g",
                            "--into", "g5", "--accept-gaps")
        assert rc == 0 and "no _meta/g.json" in err and "evenly split" in err, (rc, err)
        assert layout(c, "g5") == layout(c, "g")
        assert contents(c, "g5")[1] == got1_missing(before, first, last)
        c.close()


def got1_missing(before, first, last):
    return [r for r in before[1] if not first <= r[0] <= last]


def test_raw_archive_is_refused():
    dest = tmpdir()
    with sp.Server() as srv:
        c = srv.client()
        c.create_stream("r", 1)
        c.produce("r", [("k", b"v%d" % i) for i in range(10)])
        c.create_firehose("raw", "r", "file://" + dest, format=1, buffer_interval_ms=1000)
        c.flush_firehose("raw")
        fu.wait_archived(c, "raw", fu.shard_tips(c, "r", 1), 30)
        rc, _, err = sluice(srv, "restore", "--from", "file://" + dest, "--stream", "r",
                            "--into", "r2")
        assert rc == 1 and "raw" in err and "cannot be restored" in err, (rc, err)
        c.close()


def test_replay_while_producing():
    with sp.Server() as srv:
        c = srv.client()
        c.create_stream("src", 2)
        c.create_stream("dst", 3)
        c.create_stream("dst2", 3)
        keys = ["key-%d" % i for i in range(40)]
        counters = collections.Counter()

        def batch(n):
            out = []
            for i in range(n):
                k = keys[(counters["_"] + i) % len(keys)]
                out.append((k, b"%s:%d" % (k.encode(), counters[k])))
                counters[k] += 1
            counters["_"] += n
            return out
        for _ in range(20):
            fu.produce_all(c, "src", batch(500))
        stop, writing = threading.Event(), threading.Event()
        writer = srv.client()
        produced_during = [0]

        def produce_more():  # bounded in count and time
            t_end = time.monotonic() + 30
            for _ in range(2000):
                if stop.is_set() or time.monotonic() > t_end:
                    return
                fu.produce_all(writer, "src", batch(50))
                produced_during[0] += 50
                writing.set()
        t = threading.Thread(target=produce_more)
        t.start()
        try:
            assert writing.wait(10), "the producer thread did not start"
            rc, _, err = sluice(srv, "replay", "src", "--from", "seq:1", "--into", "dst",
                                "--keep-keys")
            assert rc == 0, err
            rc2, _, err2 = sluice(srv, "replay", "src", "--from", "trim-horizon", "--into",
                                  "dst2")
            assert rc2 == 0, err2
            during = produced_during[0]
        finally:
            stop.set()
            t.join()
        writer.close()
        assert during > 50, ("no records produced while the replays ran", during)
        src = contents(c, "src")
        src_by_key = collections.defaultdict(list)
        for s in src.values():
            for r in s:
                src_by_key[r[2]].append(r[3])
        # --keep-keys: per key, a prefix of the source's records, in order, nothing twice.
        dst_by_key = collections.defaultdict(list)
        n = 0
        for s in contents(c, "dst").values():
            for r in s:
                dst_by_key[r[2]].append(r[3])
                n += 1
        assert n >= 10000, n
        for k, got in dst_by_key.items():
            assert got == src_by_key[k][:len(got)], ("order of key %s" % k, got[:5])
        # Without: the key is the source shard id; per source shard, a prefix in order.
        dst2 = contents(c, "dst2")
        for s, recs in src.items():
            name = b"shardId-%012d" % s
            got = [r[3] for sh in dst2.values() for r in sh if r[2] == name]
            assert len(got) >= 1 and got == [r[3] for r in recs][:len(got)], \
                ("source shard %d" % s, len(got))
        c.close()


OP_CREATE_FROM_META, OP_RESTORE_APPEND, OP_META_GET = 0x1C, 0x22, 0x23


def restore_body(stream, shard, recs):
    """A RESTORE_APPEND body: recs = [(seq, ts, key, data)] (docs/protocol.md, "Restore")."""
    b = sp.str8(stream) + struct.pack("<II", shard, len(recs))
    for seq, ts, key, data in recs:
        b += struct.pack("<Qq", seq, ts) + sp.str16(key) + struct.pack("<I", len(data)) + data
    return b


def expect(name, fn, *args):
    try:
        fn(*args)
    except sp.SluiceError as e:
        assert e.name == name, (name, str(e))
        return str(e)
    raise AssertionError("expected %s" % name)


def test_restore_append_and_create_from_meta_rules():
    """The wire rules, with an independent client: exact layout, original seqs, skips, refusals."""
    T = int(time.time() * 1000) - 60000  # arrival times inside the retention
    with sp.Server() as srv:
        c = srv.client()
        c.create_stream("src", 3)
        meta = c.call(OP_META_GET, sp.str8("src"))
        (n,) = struct.unpack_from("<I", meta)
        doc = meta[4:4 + n]
        assert json.loads(doc)["name"] == "src" and len(json.loads(doc)["shards"]) == 3
        c.call(OP_CREATE_FROM_META, sp.str8("dst") + struct.pack("<I", len(doc)) + doc)
        assert layout(c, "dst") == layout(c, "src")
        expect("stream_exists", c.call, OP_CREATE_FROM_META,
               sp.str8("dst") + struct.pack("<I", len(doc)) + doc)
        bad = doc.replace(b'"shards"', b'"shardz"')
        msg = expect("invalid_argument", c.call, OP_CREATE_FROM_META,
                     sp.str8("bad") + struct.pack("<I", len(bad)) + bad)
        assert "shards" in msg, msg
        assert "bad" not in c.list_streams()
        # Original seqs and timestamps, a hole allowed, the answer counts.
        r = c.call(OP_RESTORE_APPEND, restore_body("dst", 1, [(1, T, "a", b"x"),
                                                               (2, T + 1, "b", b"y"),
                                                               (7, T + 2, "a", b"z")]))
        assert struct.unpack("<IIQ", r) == (3, 0, 8)
        got = [(x["seq"], x["ts"], x["key"], x["data"]) for x in c.read_all("dst", 1)]
        assert got == [(1, T, b"a", b"x"), (2, T + 1, b"b", b"y"), (7, T + 2, b"a", b"z")], got
        # Re-sent: skipped; overlapping: the new part appended.
        r = c.call(OP_RESTORE_APPEND, restore_body("dst", 1, [(2, T + 1, "b", b"y"),
                                                               (7, T + 2, "a", b"z"),
                                                               (8, T + 3, "c", b"w")]))
        assert struct.unpack("<IIQ", r) == (1, 2, 9)
        # Refusals store nothing.
        for body, name in [
                (restore_body("dst", 1, [(10, T, "a", b""), (10, T, "a", b"")]), "seq_order"),
                (restore_body("dst", 1, [(12, T, "a", b""), (11, T, "a", b"")]), "seq_order"),
                (restore_body("dst", 1, [(10, 0, "a", b"")]), "invalid_argument"),
                (restore_body("dst", 1, [(0, T, "a", b"")]), "invalid_argument"),
                (restore_body("dst", 1, [(10, T, "", b"")]), "invalid_key"),
                (restore_body("dst", 9, [(10, T, "a", b"")]), "shard_not_found"),
                (restore_body("nope", 0, [(10, T, "a", b"")]), "stream_not_found"),
                (restore_body("dst", 1, []), "invalid_argument"),
                (restore_body("dst", 1, [(10, T, "a", b"")])[:-1], "protocol"),
                (restore_body("dst", 1, [(10, T, "a", b"")]) + b"!", "protocol")]:
            expect(name, c.call, OP_RESTORE_APPEND, body)
        assert [x["seq"] for x in c.read_all("dst", 1)] == [1, 2, 7, 8]
        # Produce goes on after the restored tip.
        res = c.produce("dst", [(sp_key_for(1, 3), b"p")])
        assert res[0][1] == 1 and res[0][2] == 9, res
        c.close()


def sp_key_for(shard, n):
    return cu.key_for_shard(shard, n)


def test_export_import():
    rng = random.Random(5)
    with sp.Server() as a, sp.Server() as b:
        ca, cb = a.client(), b.client()
        ca.create_stream("ex", 2)
        fu.produce_all(ca, "ex", fu.make_records(rng, 2000))
        src = contents(ca, "ex")
        lo, hi = 5, len(src[1]) - 5
        rc, blob, err = sluice(a, "export", "ex", "--shard", "1", "--from", "seq:%d" % lo,
                               "--to", "seq:%d" % hi)
        assert rc == 0, err
        want = [r for r in src[1] if lo <= r[0] <= hi]
        assert "%d records" % len(want) in err, err
        cb.create_stream("ex", 2)
        rc, _, err = sluice(b, "import", input=blob)
        assert rc == 0 and "%d records restored" % len(want) in err, err
        assert contents(cb, "ex")[1] == want
        rc, _, err = sluice(b, "import", input=blob + blob)  # twice in one input, and again
        assert rc == 0 and "0 records restored" in err, err
        cb.create_stream("fresh", 4)
        rc, _, err = sluice(b, "import", "--stream", "fresh", "--new-seqs", input=blob)
        assert rc == 0, err
        got = collections.defaultdict(list)
        for s in contents(cb, "fresh").values():
            for r in s:
                got[r[2]].append(r[3])
        exp = collections.defaultdict(list)
        for r in want:
            exp[r[2]].append(r[3])
        assert got == exp
        # A truncated file is refused, naming the byte offset.
        rc, _, err = sluice(b, "import", "--stream", "fresh", input=blob[:-3])
        assert rc == 1 and "not a complete zstd frame" in err, (rc, err)
        ca.close()
        cb.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=280)
finally:
    for d in TMP:
        shutil.rmtree(d, ignore_errors=True)
