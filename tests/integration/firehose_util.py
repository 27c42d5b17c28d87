"""Reading a firehose archive back, independently of sluice's C code (docs/firehose.md).

Objects are decompressed with the zstd CLI (`zstd -dc`, Debian's zstd package), lines parsed with
the json module, data decoded with base64; keys are parsed with a regular expression written from
the documented layout PREFIX/YYYY/MM/DD/HH/STREAM-shardId-NNNNNNNNNNNN-FIRST-LAST.EXT.
"""
import base64
import collections
import datetime
import json
import os
import random
import re
import shutil
import subprocess

import sluiceproto as sp

FIELDS = ["stream", "shard", "seq", "ts", "key", "data"]
KEY_RE = re.compile(r"^(?:(?P<prefix>.+)/)?(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<h>\d{2})/"
                    r"(?P<stream>[A-Za-z0-9_.-]+)-shardId-(?P<shard>\d{12})-"
                    r"(?P<first>\d{20})-(?P<last>\d{20})"
                    r"(?P<ext>\.jsonl\.zst|\.jsonl|\.raw\.zst|\.raw)$")


def zstd_available():
    return shutil.which("zstd") is not None


def decompress(blob, what):
    p = subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("zstd -dc failed on %s: %s" % (what, p.stderr.decode(errors="replace")))
    return p.stdout


def parse_key(key, prefix=None):
    m = KEY_RE.match(key)
    if not m:
        raise AssertionError("object key does not follow the documented layout: %r" % key)
    g = m.groupdict()
    if prefix is not None and (g["prefix"] or "") != prefix:
        raise AssertionError("object key %r: prefix %r, expected %r" % (key, g["prefix"], prefix))
    return dict(prefix=g["prefix"] or "", hour=(int(g["y"]), int(g["m"]), int(g["d"]), int(g["h"])),
                stream=g["stream"], shard=int(g["shard"]), first=int(g["first"]),
                last=int(g["last"]), ext=g["ext"])


def list_file_objects(root):
    """{relative key: bytes} of every archive object under root; `.tmp.` files are left out (and
    returned separately: an interrupted write may leave one, listings ignore them), and so is
    the stream layout the firehose keeps at _meta/STREAM.json (not an archive object)."""
    objs, tmps = {}, []
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if rel.startswith("_meta/"):
                continue
            if ".tmp." in f:
                tmps.append(rel)
                continue
            with open(os.path.join(dirpath, f), "rb") as fh:
                objs[rel] = fh.read()
    return objs, tmps


def count_file_objects(root):
    n = 0
    for dirpath, _, files in os.walk(root):
        if os.path.relpath(dirpath, root).startswith("_meta"):
            continue
        n += sum(1 for f in files if ".tmp." not in f)
    return n


def decode_object(key, blob, stream, prefix=None):
    """Parse one object: returns (key info, [record dict]) for jsonl, (key info, [bytes line])
    for raw. Checks the line format, the shard/stream fields, contiguous increasing seqs and the
    key's first/last seq and hour against the content."""
    k = parse_key(key, prefix)
    assert k["stream"] == stream, (key, stream)
    body = decompress(blob, key) if k["ext"].endswith(".zst") else blob
    if not k["ext"].endswith(".zst"):
        assert not blob.startswith(b"\x28\xb5\x2f\xfd"), "uncompressed object is a zstd frame: " + key
    assert body.endswith(b"\n"), "object does not end with a newline: " + key
    lines = body[:-1].split(b"\n")
    if k["ext"].startswith(".raw"):
        return k, lines
    shard_name = "shardId-%012d" % k["shard"]
    recs = []
    for i, line in enumerate(lines):
        pairs = json.loads(line.decode("utf-8"), object_pairs_hook=lambda p: p)
        names = [n for n, _ in pairs]
        assert names == FIELDS, ("%s line %d: fields %r" % (key, i + 1, names))
        o = dict(pairs)
        assert o["stream"] == stream and o["shard"] == shard_name, (key, i + 1, o["stream"], o["shard"])
        assert isinstance(o["seq"], str) and o["seq"].isdigit(), (key, i + 1, o["seq"])
        assert isinstance(o["ts"], int), (key, i + 1, o["ts"])
        recs.append(dict(shard=k["shard"], seq=int(o["seq"]), ts=o["ts"], key=o["key"].encode(),
                         data=base64.b64decode(o["data"], validate=True)))
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
        "%s: sequence numbers not contiguous: %s" % (key, seqs[:5])
    assert (seqs[0], seqs[-1]) == (k["first"], k["last"]), \
        "%s: key says %d..%d, content %d..%d" % (key, k["first"], k["last"], seqs[0], seqs[-1])
    t = datetime.datetime.fromtimestamp(recs[0]["ts"] / 1000, datetime.timezone.utc)
    assert k["hour"] == (t.year, t.month, t.day, t.hour), \
        "%s: folder %s is not the UTC hour of the first record (%s)" % (key, k["hour"], t)
    return k, recs


def verify_archive(objects, stream, stream_records, produced=None, prefix=None):
    """objects: {key: bytes} (jsonl). stream_records: {shard: [record dicts from READ]} - what
    the archive must hold, exactly once. produced: a Counter of (key bytes, data bytes), checked
    against the archive too. Returns {shard: [(first, last, key)]} sorted."""
    seen = {}  # (shard, seq) -> object key
    ranges = collections.defaultdict(list)
    got = []
    for key in sorted(objects):
        k, recs = decode_object(key, objects[key], stream, prefix)
        ranges[k["shard"]].append((k["first"], k["last"], key))
        for r in recs:
            where = seen.get((r["shard"], r["seq"]))
            assert where is None, ("shard %d seq %d is in two objects: %s and %s"
                                   % (r["shard"], r["seq"], where, key))
            seen[(r["shard"], r["seq"])] = key
            got.append(r)
    for shard in ranges:
        ranges[shard].sort()
        rs = ranges[shard]
        for a, b in zip(rs, rs[1:]):
            assert b[0] == a[1] + 1, ("shard %d: gap or overlap between %s and %s" % (shard, a[2], b[2]))
    for shard, recs in stream_records.items():
        if not recs:
            assert shard not in ranges, "shard %d has objects but no records" % shard
            continue
        rs = ranges.get(shard)
        assert rs, "shard %d: no objects (expected %d records)" % (shard, len(recs))
        assert rs[0][0] == recs[0]["seq"] and rs[-1][1] == recs[-1]["seq"], \
            ("shard %d: archive covers %d..%d, stream %d..%d"
             % (shard, rs[0][0], rs[-1][1], recs[0]["seq"], recs[-1]["seq"]))
    by_seq = {(r["shard"], r["seq"]): r for r in got}
    n_expected = 0
    for shard, recs in stream_records.items():
        for r in recs:
            n_expected += 1
            a = by_seq.get((shard, r["seq"]))
            assert a is not None, "shard %d seq %d missing from the archive" % (shard, r["seq"])
            assert (a["key"], a["data"], a["ts"]) == (r["key"], r["data"], r["ts"]), \
                "shard %d seq %d differs: archive %r, stream %r" % (
                    shard, r["seq"], (a["key"], a["data"][:20], a["ts"]),
                    (r["key"], r["data"][:20], r["ts"]))
    assert len(got) == n_expected, ("archive has %d records, stream %d" % (len(got), n_expected))
    if produced is not None:
        arch = collections.Counter((r["key"], r["data"]) for r in got)
        assert arch == produced, "archive multiset differs from what was produced: " \
            "%d missing, %d extra" % (sum((produced - arch).values()), sum((arch - produced).values()))
    return ranges


def stream_contents(client, stream, shards):
    return {s: client.read_all(stream, s) for s in range(shards)}


# ---- records to produce ----

def make_records(rng, n, start=0, json_only=False, max_size=3000):
    """n (key, data) pairs: many keys (ASCII, non-ASCII, quotes and backslashes), binary data
    (every byte value, empty records, newlines) unless json_only."""
    out = []
    for i in range(start, start + n):
        kind = i % 7
        if kind == 0:
            key = "k%d" % rng.randrange(5000)
        elif kind == 1:
            key = "cl\u00e9-\u952e-%d" % rng.randrange(1000)
        elif kind == 2:
            key = 'q"\\/%d\t' % rng.randrange(100)
        else:
            key = "user-%06d" % rng.randrange(100000)
        if json_only:
            data = json.dumps({"i": i, "user": key, "v": rng.random(),
                               "tags": ["a" * rng.randrange(20)] * rng.randrange(5)}).encode()
        elif i % 50 == 0:
            data = b""
        elif i % 3 == 0:
            data = rng.randbytes(rng.randrange(1, max_size))
        else:
            data = (b'{"n":%d,"text":"%s"}\n' % (i, b"x\\\"\n\x00" * rng.randrange(max_size // 8)))
        out.append((key, data))
    return out


def produce_all(client, stream, records, batch=500):
    for i in range(0, len(records), batch):
        res = client.produce(stream, records[i:i + batch])
        bad = [r for r in res if r[0] != 0]
        assert not bad, "produce failed: %s" % (sp.ERR.get(bad[0][0], bad[0][0]),)


def shard_tips(client, stream, shards):
    """{shard: last seq} (0 when empty) from LIST_SHARDS."""
    return {s["id"]: s["next_seq"] - 1 for s in client.list_shards(stream)}


def wait_archived(client, name, tips, timeout, what="the firehose to archive every record"):
    """Until every shard's checkpoint reached its tip."""
    def done():
        d = client.describe_firehose(name)
        return all(st["checkpoint"] >= tips.get(st["id"], 0) for st in d["shards"]) and d
    return sp.wait_until(done, timeout, what, interval=0.1)
