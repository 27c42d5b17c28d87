#!/usr/bin/env python3
"""Round trip through a real sluiced: produce ~20k records with ~200 keys to a 4-shard stream,
read everything back, and check routing (Kinesis MD5 rule), ordering, positions and the
stream administration calls and their errors."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

STREAM = "rt"
SHARDS = 4
NKEYS = 200
NRECORDS = 20000
BATCH = 250

srv = None
cli = None
produced = {}  # (shard, seq) -> (key bytes, data bytes)
per_key = {}  # key -> [(produce index, shard, seq)]


def expect_error(name, fn, *args):
    try:
        fn(*args)
    except sp.SluiceError as e:
        assert e.name == name, "expected %s, got %s (%s)" % (name, e.name, e.message)
        return e
    raise AssertionError("expected %s, got success" % name)


def setup():
    global srv, cli
    srv = sp.Server().start()
    cli = srv.client()


def test_create_and_describe():
    cli.create_stream(STREAM, SHARDS, retention_ms=3600_000)
    assert STREAM in cli.list_streams()
    d = cli.describe_stream(STREAM)
    assert d["name"] == STREAM and d["retention_ms"] == 3600_000, d
    assert d["status"] == 0, d
    assert abs(d["created_ms"] - time.time() * 1000) < 120_000, d["created_ms"]
    shards = cli.list_shards(STREAM)
    assert [s["id"] for s in d["shards"]] == [s["id"] for s in shards]
    assert len(shards) == SHARDS, shards
    starts = sp.shard_starts(SHARDS)
    for i, s in enumerate(shards):
        end = starts[i + 1] - 1 if i + 1 < SHARDS else sp.HASH_SPACE - 1
        assert (s["start"], s["end"]) == (starts[i], end), ("shard range", i, s)
        assert s["parent"] == -1 and s["adjacent"] == -1 and s["end_seq"] == 0, s


def test_produce_many():
    rnd = random.Random(1)
    keys = ["key-%d-%s" % (i, "x" * rnd.randrange(0, 40)) for i in range(NKEYS)]
    keys[7] = "ключ-ünïcødé-🙂"  # multi-byte UTF-8
    keys[8] = "k\x00nul"  # U+0000 is allowed
    keys[9] = "z" * 256  # longest key
    sent = 0
    t0 = time.monotonic()
    while sent < NRECORDS and time.monotonic() - t0 < 120:
        batch = []
        for j in range(min(BATCH, NRECORDS - sent)):
            k = keys[rnd.randrange(NKEYS)]
            idx = sent + j
            data = ("%s|%d|" % (k, idx)).encode() + os.urandom(rnd.randrange(0, 200))
            if idx % 97 == 0:
                data = b""  # empty data is allowed
            batch.append((k, data))
        results = cli.produce(STREAM, batch)
        assert len(results) == len(batch)
        for j, ((k, data), (status, shard, seq)) in enumerate(zip(batch, results)):
            assert status == 0, ("record", sent + j, sp.ERR.get(status, status))
            kb = k.encode()
            assert shard == sp.shard_of_key(kb, SHARDS), (
                "key %r routed to shard %d, Kinesis rule says %d"
                % (k, shard, sp.shard_of_key(kb, SHARDS)))
            assert (shard, seq) not in produced, ("duplicate (shard, seq)", shard, seq)
            produced[(shard, seq)] = (kb, data)
            per_key.setdefault(kb, []).append((sent + j, shard, seq))
        sent += len(batch)
    assert sent == NRECORDS, "produced only %d records in time" % sent
    assert len(per_key) > NKEYS * 0.9, len(per_key)


def test_per_key_order_and_single_shard():
    assert per_key, "nothing produced"
    for k, lst in per_key.items():
        assert len({s for _, s, _ in lst}) == 1, ("key on several shards", k)
        seqs = [q for _, _, q in sorted(lst)]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), ("per-key order", k, seqs[:10])


def test_read_everything_back():
    assert produced, "nothing produced"
    got = {}
    for shard in range(SHARDS):
        recs = cli.read_all(STREAM, shard)
        seqs = [r["seq"] for r in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), ("shard order", shard)
        for r in recs:
            assert (shard, r["seq"]) not in got, ("read twice", shard, r["seq"])
            assert r["hash_key"] is None, r
            got[(shard, r["seq"])] = (r["key"], r["data"])
        # the tip equals the shard's next_seq
        res = cli.read(STREAM, shard, sp.POS_LATEST)
        assert res["records"] == [] and res["next_seq"] == res["tip"], res
    missing = set(produced) - set(got)
    extra = set(got) - set(produced)
    assert not missing, ("records missing", len(missing), sorted(missing)[:5])
    assert not extra, ("records never produced", len(extra), sorted(extra)[:5])
    bad = [k for k in produced if produced[k] != got[k]]
    assert not bad, ("records with wrong key/data", len(bad), bad[:5])
    # describe's next_seq is past every record
    for s in cli.list_shards(STREAM):
        top = max([q for (sh, q) in produced if sh == s["id"]], default=0)
        assert s["next_seq"] > top, s


def test_small_reads_follow_next_seq():
    # max_records=7 and a small max_bytes page through a shard without loss or repetition
    full = [r["seq"] for r in cli.read_all(STREAM, 1)]
    seen = []
    res = cli.read(STREAM, 1, sp.POS_TRIM_HORIZON, max_records=7)
    for _ in range(100000):
        assert len(res["records"]) <= 7
        seen += [r["seq"] for r in res["records"]]
        if res["next_seq"] >= res["tip"]:
            break
        assert res["records"], "no progress before the tip"
        res = cli.read(STREAM, 1, sp.POS_AT_SEQ, res["next_seq"], max_records=7,
                       max_bytes=300 if len(seen) % 2 else 1 << 20)
    assert seen == full, ("paged read differs", len(seen), len(full))


def test_explicit_hash_keys():
    starts = sp.shard_starts(SHARDS)
    cases = []
    for i in range(SHARDS):
        end = starts[i + 1] - 1 if i + 1 < SHARDS else sp.HASH_SPACE - 1
        for hk in (starts[i], end, (starts[i] + end) // 2):
            cases.append((hk, i))
    # a key whose MD5 lands on shard 0, forced to every shard by its hash key
    key = next(k for k in ("hk-%d" % j for j in range(1000)) if sp.shard_of_key(k, SHARDS) == 0)
    batch = [(key, b"explicit-%d" % n, hk) for n, (hk, _) in enumerate(cases)]
    results = cli.produce(STREAM, batch)
    for (hk, want), (status, shard, seq), rec in zip(cases, results, batch):
        assert status == 0, sp.ERR.get(status, status)
        assert shard == want, ("hash key %x went to shard %d, want %d" % (hk, shard, want))
        r = cli.read(STREAM, shard, sp.POS_AT_SEQ, seq, max_records=1)["records"]
        assert r and r[0]["seq"] == seq and r[0]["hash_key"] == hk and r[0]["data"] == rec[1], r


def test_positions():
    shard = 2
    recs = cli.read_all(STREAM, shard)
    assert len(recs) > 100, len(recs)
    mid = recs[len(recs) // 2]
    r = cli.read(STREAM, shard, sp.POS_AT_SEQ, mid["seq"], max_records=3)["records"]
    assert [x["seq"] for x in r] == [x["seq"] for x in recs[len(recs) // 2:len(recs) // 2 + 3]], r
    r = cli.read(STREAM, shard, sp.POS_AFTER_SEQ, mid["seq"], max_records=3)["records"]
    assert [x["seq"] for x in r] == [x["seq"] for x in recs[len(recs) // 2 + 1:len(recs) // 2 + 4]]
    # trim horizon starts at the first record
    r = cli.read(STREAM, shard, sp.POS_TRIM_HORIZON, max_records=1)["records"]
    assert r[0]["seq"] == recs[0]["seq"]
    # AT_TIMESTAMP: first record whose arrival time >= T
    ts_sorted = [x["ts"] for x in recs]
    assert all(a <= b for a, b in zip(ts_sorted, ts_sorted[1:])), "arrival times go back"
    t = mid["ts"]
    want = next(x for x in recs if x["ts"] >= t)
    r = cli.read(STREAM, shard, sp.POS_AT_TIMESTAMP, t, max_records=1)["records"]
    assert r and r[0]["seq"] == want["seq"], (r, want)
    r = cli.read(STREAM, shard, sp.POS_AT_TIMESTAMP, 0, max_records=1)["records"]
    assert r and r[0]["seq"] == recs[0]["seq"]
    future = int(time.time() * 1000) + 3600_000
    assert cli.read(STREAM, shard, sp.POS_AT_TIMESTAMP, future)["records"] == []
    # LATEST: nothing now, nothing on a second try; then new records appear at next_seq
    lat = cli.read(STREAM, shard, sp.POS_LATEST)
    assert lat["records"] == [], lat
    assert cli.read(STREAM, shard, sp.POS_AT_SEQ, lat["next_seq"])["records"] == []
    key = next(k for k in ("late-%d" % j for j in range(1000)) if sp.shard_of_key(k, SHARDS) == shard)
    before = int(time.time() * 1000)
    res = cli.produce(STREAM, [(key, b"new-1"), (key, b"new-2")])
    assert [x[1] for x in res] == [shard, shard] and all(x[0] == 0 for x in res), res
    r = cli.read(STREAM, shard, sp.POS_AT_SEQ, lat["next_seq"])["records"]
    assert [x["data"] for x in r] == [b"new-1", b"new-2"], r
    assert [x["seq"] for x in r] == [res[0][2], res[1][2]], (r, res)
    assert r[0]["seq"] > recs[-1]["seq"]
    assert before - 1000 <= r[0]["ts"] <= int(time.time() * 1000) + 1000, r[0]["ts"]
    # a LATEST read now (after the new records) returns nothing either
    assert cli.read(STREAM, shard, sp.POS_LATEST)["records"] == []
    # AT_TIMESTAMP of the new record finds it (or an earlier record of the same millisecond)
    r = cli.read(STREAM, shard, sp.POS_AT_TIMESTAMP, r[0]["ts"], max_records=10000)["records"]
    assert res[0][2] in [x["seq"] for x in r], "AT_TIMESTAMP of a new record misses it"


def test_errors():
    expect_error("stream_exists", cli.create_stream, STREAM, 2)
    expect_error("stream_exists", cli.create_stream, STREAM, SHARDS)
    for bad in ("a/b", "", "x" * 129, "sp ace", "é", "a\x00b", ".", ".."):
        expect_error("invalid_name", cli.create_stream, bad, 1)
    expect_error("invalid_name", cli.describe_stream, "a/b")
    expect_error("invalid_name", cli.list_shards, "")
    expect_error("invalid_name", cli.delete_stream, "x" * 129)
    cli.create_stream("n" * 128, 1)  # 128 is the longest valid name
    assert "n" * 128 in cli.list_streams()
    cli.delete_stream("n" * 128)
    cli.create_stream("Az09_.-", 1)
    cli.delete_stream("Az09_.-")
    expect_error("stream_not_found", cli.describe_stream, "nope")
    expect_error("stream_not_found", cli.list_shards, "nope")
    expect_error("stream_not_found", cli.delete_stream, "nope")
    expect_error("stream_not_found", cli.produce, "nope", [("k", b"v")])
    expect_error("stream_not_found", cli.read, "nope", 0, sp.POS_TRIM_HORIZON)
    expect_error("shard_not_found", cli.read, STREAM, SHARDS, sp.POS_TRIM_HORIZON)
    expect_error("invalid_argument", cli.create_stream, "zero", 0)
    expect_error("invalid_argument", cli.create_stream, "toomany", 4097)
    assert "zero" not in cli.list_streams() and "toomany" not in cli.list_streams()


def test_delete_stream():
    cli.create_stream("doomed", 3)
    res = cli.produce("doomed", [("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert all(r[0] == 0 for r in res), res
    assert sorted(cli.list_streams()) == sorted([STREAM, "doomed"]), cli.list_streams()
    cli.delete_stream("doomed")
    assert cli.list_streams() == [STREAM], cli.list_streams()
    expect_error("stream_not_found", cli.describe_stream, "doomed")
    expect_error("stream_not_found", cli.produce, "doomed", [("a", b"x")])
    expect_error("stream_not_found", cli.read, "doomed", 0, sp.POS_TRIM_HORIZON)
    expect_error("stream_not_found", cli.delete_stream, "doomed")
    # the name can be used again once the delete finished (until then: stream_exists, as
    # Kinesis' DELETING state; docs/architecture.md), and the new stream starts empty
    deadline = time.monotonic() + 10
    while True:
        try:
            cli.create_stream("doomed", 2)
            break
        except sp.SluiceError as e:
            assert e.name == "stream_exists", e
            assert time.monotonic() < deadline, "a deleted stream's name stays taken for 10 s"
            time.sleep(0.05)
    assert len(cli.list_shards("doomed")) == 2
    for sh in range(2):
        assert cli.read_all("doomed", sh) == [], "a recreated stream shows old records"
    cli.delete_stream("doomed")
    # the other stream is untouched
    assert len(cli.read_all(STREAM, 0)) > 0


def test_server_still_healthy():
    c2 = srv.client()
    c2.ping()
    c2.close()
    assert srv.alive()
    assert srv.stop() == 0, "sluiced exit code after SIGTERM"


if __name__ == "__main__":
    try:
        setup()
        sp.run_tests(sp.collect(globals()), time_limit=240)
    finally:
        if srv:
            srv.cleanup()
