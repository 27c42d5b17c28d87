#!/usr/bin/env python3
"""The sluice CLI end to end: a real sluiced (sluiceproto.Server) driven through the real
`sluice` binary (BUILD/tools/cli/sluice) with subprocess. Covers stream create/list/describe
(text and --format json)/delete; put with --key, --key-field, default line-number keys and a
200k-line input streamed through a pipe; get --format json (the documented shape, checked field by
field and against the input), --format raw, --from trim-horizon|latest|seq:N|time:ISO, --shard by
number and by shardId-..., --max and --follow (exits 0 on SIGINT); consumer create/list/describe/
reset/delete with the echo_ok test plugin; and the error conventions: a failed operation prints
one line starting with "sluice:" on stderr and exits non-zero, a usage error exits 2.

Every wait is bounded; the whole run is bounded by run_tests' time limit."""
import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

CMD_TIMEOUT = 60  # seconds, for any one CLI invocation
SHARDS = 4

srv = None
addr = None


def cli_path():
    p = os.path.join(sp.build_dir(), "tools", "cli", "sluice")
    if not os.access(p, os.X_OK):
        raise RuntimeError("%s is missing: build the sluice CLI (ninja tools/cli/sluice)" % p)
    return p


def plugin_path(name):
    p = os.path.join(sp.build_dir(), "tests", "plugins", name + ".so")
    if not os.path.exists(p):
        raise RuntimeError("%s is missing: build tests/plugins" % p)
    return os.path.abspath(p)


def sluice(*args, input=None, server=True, timeout=CMD_TIMEOUT):
    """Run the CLI; returns (exit code, stdout bytes, stderr text)."""
    argv = [cli_path()]
    if server:
        argv += ["--server", addr]
    argv += list(args)
    env = dict(os.environ)
    env.pop("SLUICE_SERVER", None)
    env.pop("SLUICE_AUTH_TOKEN", None)
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def ok(*args, **kw):
    rc, out, err = sluice(*args, **kw)
    assert rc == 0, "sluice %s: exit %d, stderr %r" % (" ".join(args), rc, err)
    return out


def fails(*args, code=None, **kw):
    """The command must fail with one 'sluice:' line on stderr; returns that line."""
    rc, out, err = sluice(*args, **kw)
    what = "sluice %s" % " ".join(args)
    assert rc != 0, "%s: succeeded, expected a failure (stdout %r)" % (what, out[:200])
    if code is not None:
        assert rc == code, "%s: exit %d, expected %d (stderr %r)" % (what, rc, code, err)
    lines = err.splitlines()
    assert len(lines) == 1, "%s: expected one line on stderr, got %r" % (what, err)
    assert lines[0].startswith("sluice:"), "%s: stderr %r" % (what, err)
    return lines[0]


def usage_error(*args, **kw):
    rc, out, err = sluice(*args, **kw)
    what = "sluice %s" % " ".join(args)
    assert rc == 2, "%s: exit %d, expected 2 (stderr %r)" % (what, rc, err)
    assert err.strip(), "%s: a usage error must say something on stderr" % what
    assert not out, "%s: stdout %r" % (what, out[:200])
    return err


def get_json(*args):
    """sluice get ... --format json, parsed."""
    out = ok("get", *args, "--format", "json")
    return [json.loads(line) for line in out.decode().splitlines()]


def put_lines(stream, lines, *args):
    out = ok("put", stream, *args, input=b"".join(line + b"\n" for line in lines))
    assert out.decode() == "%d records acknowledged\n" % len(lines), out
    return out


def wait_until(what, fn, timeout=30, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def make_stream(name, shards=SHARDS, retention="1h"):
    ok("stream", "create", name, "--shards", str(shards), "--retention", retention)

    def active():
        d = json.loads(ok("stream", "describe", name, "--format", "json"))
        return d["status"] == "ACTIVE"
    wait_until("stream %s to be ACTIVE" % name, active)


SHARD_RE = re.compile(r"^shardId-\d{12}$")


def check_record_shape(r, stream, t_lo_ms, t_hi_ms):
    """The documented shape of `get --format json`:
    {"stream","shard","seq" (decimal string),"ts" (int ms),"key","data" (base64)}."""
    assert set(r) == {"stream", "shard", "seq", "ts", "key", "data"}, r
    assert r["stream"] == stream, r
    assert isinstance(r["shard"], str) and SHARD_RE.match(r["shard"]), r
    assert isinstance(r["seq"], str) and r["seq"].isdigit() and str(int(r["seq"])) == r["seq"], r
    assert int(r["seq"]) >= 1, r
    assert isinstance(r["ts"], int) and not isinstance(r["ts"], bool), r
    assert t_lo_ms - 5000 <= r["ts"] <= t_hi_ms + 5000, (r["ts"], t_lo_ms, t_hi_ms)
    assert isinstance(r["key"], str), r
    assert isinstance(r["data"], str), r
    return base64.b64decode(r["data"], validate=True)


def shard_num(r):
    return int(r["shard"][len("shardId-"):])


def setup():
    global srv, addr
    cli_path()
    srv = sp.Server().start()
    addr = "127.0.0.1:%d" % srv.port


# ---- streams ----

def test_stream_admin():
    make_stream("cli-adm", shards=3, retention="2h")
    assert "cli-adm" in ok("stream", "list").decode().splitlines()
    names = json.loads(ok("stream", "list", "--format", "json"))
    assert isinstance(names, list) and "cli-adm" in names, names

    text = ok("stream", "describe", "cli-adm").decode()
    assert re.search(r"^Stream:\s+cli-adm$", text, re.M), text
    assert re.search(r"^Status:\s+ACTIVE$", text, re.M), text
    assert re.search(r"^Shards:\s+3$", text, re.M), text
    for i in range(3):
        assert "shardId-%012d" % i in text, text

    d = json.loads(ok("stream", "describe", "cli-adm", "--format", "json"))
    assert d["name"] == "cli-adm" and d["status"] == "ACTIVE", d
    assert d["retention_ms"] == 2 * 3600 * 1000, d
    assert abs(d["created_ms"] - time.time() * 1000) < 120000, d
    assert [s["shard_id"] for s in d["shards"]] == ["shardId-%012d" % i for i in range(3)], d
    starts = sp.shard_starts(3)
    for i, s in enumerate(d["shards"]):
        assert int(s["start_hash_key"]) == starts[i], (i, s)
        assert s["parent_shard_id"] is None and s["end_seq"] is None, s
        assert s["next_seq"].isdigit(), s

    fails("stream", "create", "cli-adm", "--shards", "1", code=1)  # the name is taken
    ok("stream", "delete", "cli-adm")

    def gone():
        return "cli-adm" not in json.loads(ok("stream", "list", "--format", "json"))
    wait_until("cli-adm to disappear", gone)
    fails("stream", "describe", "cli-adm")


def test_stream_reshard_while_putting():
    """split/merge/scale through the CLI while `sluice put` (libsluice's asynchronous producer)
    streams records in: every line is acknowledged and read back exactly once; describe shows
    the lineage."""
    make_stream("cli-rs", shards=2)
    n = 60000
    p = subprocess.Popen([cli_path(), "--server", addr, "put", "cli-rs", "--batch", "200"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outs = {}
    readers = [threading.Thread(target=lambda f=f: outs.__setitem__(f, getattr(p, f).read()))
               for f in ("stdout", "stderr")]
    for t in readers:
        t.start()
    steps = [("stream", "split", "cli-rs", "0"),
             ("stream", "merge", "cli-rs", "shardId-000000000002", "3"),
             ("stream", "scale", "cli-rs", "4"),
             ("stream", "scale", "cli-rs", "3")]
    said = []
    try:
        for i in range(n):
            p.stdin.write(b"rs-%06d\n" % i)
            if i % (n // (len(steps) + 1)) == n // (len(steps) + 1) - 1 and steps:
                p.stdin.flush()
                said.append(ok(*steps.pop(0)).decode())
        p.stdin.close()
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for t in readers:
            t.join(30)
    assert not steps, steps
    assert p.returncode == 0, (p.returncode, outs.get("stderr"))
    assert outs["stdout"].decode() == "%d records acknowledged\n" % n, outs["stdout"]
    assert said[0].startswith("split shardId-000000000000 at ") and said[0].endswith(
        "into shardId-000000000002 and shardId-000000000003\n"), said[0]
    assert said[1] == ("merged shardId-000000000002 and shardId-000000000003 into "
                       "shardId-000000000004\n"), said[1]
    assert said[3] == "stream cli-rs now has 3 open shards\n", said[3]
    raw = ok("get", "cli-rs", "--format", "raw", timeout=120).split(b"\n")[:-1]
    assert sorted(raw) == [b"rs-%06d" % i for i in range(n)], (len(raw), n)

    d = json.loads(ok("stream", "describe", "cli-rs", "--format", "json"))
    by_id = {s["shard_id"]: s for s in d["shards"]}
    s4 = by_id["shardId-000000000004"]
    assert s4["parent_shard_id"] == "shardId-000000000002", s4
    assert s4["adjacent_parent_shard_id"] == "shardId-000000000003", s4
    assert by_id["shardId-000000000000"]["state"] == "closed", by_id
    assert by_id["shardId-000000000000"]["end_seq"].isdigit()
    opens = [s for s in d["shards"] if s["state"] == "open"]
    assert len(opens) == 3 and all(s["end_seq"] is None for s in opens), opens
    text = ok("stream", "describe", "cli-rs").decode()
    assert re.search(r"^shardId-000000000004\s+closed\s+shardId-000000000002\s+"
                     r"shardId-000000000003\s", text, re.M), text
    # errors: a closed shard, out-of-range count, a bad hash key (usage: exit 2)
    assert "closed" in fails("stream", "split", "cli-rs", "0", code=1)
    fails("stream", "scale", "cli-rs", "7", code=1)
    fails("stream", "merge", "cli-rs", "0", "1", code=1)
    fails("stream", "split", "cli-rs", "5", "--at", "-3", code=2)
    fails("stream", "split", "cli-rs", code=2)
    fails("stream", "scale", "nosuch", "2", code=1)
def test_stream_retention_and_tags():
    make_stream("cli-set", shards=1, retention="1h")
    ok("stream", "retention", "cli-set", "48h")
    d = json.loads(ok("stream", "describe", "cli-set", "--format", "json"))
    assert d["retention_ms"] == 48 * 3600 * 1000, d
    usage_error("stream", "retention", "cli-set", "soon")
    usage_error("stream", "retention", "cli-set")
    fails("stream", "retention", "cli-set", "400d")  # over 365 days: the server refuses
    fails("stream", "retention", "cli-nope", "2h")
    # the new retention reaches the live shard log: shortened, the records expire
    put_lines("cli-set", [b"one", b"two"], "--key", "k")
    assert len(get_json("cli-set", "--from", "trim-horizon")) == 2
    ok("stream", "retention", "cli-set", "1s")
    wait_until("records to expire under the new retention",
               lambda: get_json("cli-set", "--from", "trim-horizon") == [], timeout=20)
    ok("stream", "retention", "cli-set", "48h")

    assert ok("stream", "tags", "cli-set") == b""
    ok("stream", "tag", "cli-set", "team=payments", "env=dev", "empty=")
    ok("stream", "tag", "cli-set", "env=prod")
    assert ok("stream", "tags", "cli-set").decode().splitlines() == [
        "team=payments", "env=prod", "empty="]
    assert json.loads(ok("stream", "tags", "cli-set", "--format", "json")) == {
        "team": "payments", "env": "prod", "empty": ""}
    ok("stream", "untag", "cli-set", "env", "not-there")
    assert ok("stream", "tags", "cli-set").decode().splitlines() == ["team=payments", "empty="]
    usage_error("stream", "tag", "cli-set", "novalue")
    usage_error("stream", "tag", "cli-set")
    fails("stream", "tag", "cli-set", "k" * 129 + "=v")
    many = ["k%d=v" % i for i in range(49)]
    fails("stream", "tag", "cli-set", *many)  # 2 + 49 > 50: all or nothing
    assert len(ok("stream", "tags", "cli-set").decode().splitlines()) == 2
    ok("stream", "delete", "cli-set")


# ---- put ----

def test_put_key():
    make_stream("cli-key")
    lines = [b"fixed-key record %d" % i for i in range(300)]
    t0 = int(time.time() * 1000)
    put_lines("cli-key", lines, "--key", "the-key")
    recs = get_json("cli-key")
    t1 = int(time.time() * 1000)
    assert len(recs) == len(lines), len(recs)
    # One key: one shard (the Kinesis MD5 rule), in the order written.
    shard = sp.shard_of_key(b"the-key", SHARDS)
    assert {r["shard"] for r in recs} == {"shardId-%012d" % shard}, {r["shard"] for r in recs}
    assert [check_record_shape(r, "cli-key", t0, t1) for r in recs] == lines
    assert all(r["key"] == "the-key" for r in recs)
    seqs = [int(r["seq"]) for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs[:10]


def test_put_key_field():
    make_stream("cli-kf")
    lines = []
    for i in range(200):
        lines.append(json.dumps({"user": "user-%d" % (i % 17), "n": i}).encode())
    lines.append(json.dumps({"user": 42, "n": "numeric key"}).encode())
    lines.append(json.dumps({"user": {"b": 1, "a": [1, 2]}, "n": "object key"}).encode())
    put_lines("cli-kf", lines, "--key-field", "user")
    recs = get_json("cli-kf")
    assert len(recs) == len(lines)
    by_data = {}
    for r in recs:
        by_data[base64.b64decode(r["data"])] = r
    assert set(by_data) == set(lines)
    for line in lines:
        r = by_data[line]
        v = json.loads(line)["user"]
        # A string field is the key as is; anything else is its compact JSON.
        want = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        assert r["key"] == want, (r["key"], want)
        assert shard_num(r) == sp.shard_of_key(want.encode(), SHARDS), (r, want)
    # Per key, the records come back in the order they were written.
    for k in {r["key"] for r in recs}:
        ns = [json.loads(base64.b64decode(r["data"]))["n"] for r in recs if r["key"] == k]
        ints = [n for n in ns if isinstance(n, int)]
        assert ints == sorted(ints), (k, ns)

    # A line without the field, or not JSON at all: one error line, exit 1.
    err = fails("put", "cli-kf", "--key-field", "user", input=b'{"other": 1}\n', code=1)
    assert "line 1" in err and "user" in err, err
    err = fails("put", "cli-kf", "--key-field", "user", input=b'{"user":"a"}\nnot json\n', code=1)
    assert "line 2" in err, err


def test_put_default_keys():
    make_stream("cli-dk")
    lines = [b"line-number-keyed %d" % i for i in range(1, 501)]
    put_lines("cli-dk", lines)
    recs = get_json("cli-dk")
    assert len(recs) == len(lines)
    for r in recs:
        data = base64.b64decode(r["data"])
        n = lines.index(data) + 1
        assert r["key"] == str(n), (r["key"], n)
        assert shard_num(r) == sp.shard_of_key(str(n).encode(), SHARDS), r
    assert {shard_num(r) for r in recs} == set(range(SHARDS))  # 500 keys reach every shard


def test_put_large_streamed():
    make_stream("cli-big")
    n = 200000

    def gen(i):
        return b"big-%07d-%s" % (i, b"x" * (i % 50))
    p = subprocess.Popen([cli_path(), "--server", addr, "put", "cli-big", "--batch", "1000"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # stdout and stderr drain on threads while this thread writes the lines in chunks, so the
    # CLI sees a pipe that fills as it reads (never the whole input at once).
    outs = {}
    readers = [threading.Thread(target=lambda f=f: outs.__setitem__(f, getattr(p, f).read()))
               for f in ("stdout", "stderr")]
    for t in readers:
        t.start()
    try:
        chunk = []
        for i in range(n):
            chunk.append(gen(i) + b"\n")
            if len(chunk) == 5000:
                p.stdin.write(b"".join(chunk))
                chunk = []
        p.stdin.write(b"".join(chunk))
        p.stdin.close()
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for t in readers:
            t.join(30)
    out, err = outs.get("stdout", b""), outs.get("stderr", b"")
    assert p.returncode == 0, (p.returncode, err)
    assert out.decode() == "%d records acknowledged\n" % n, out
    raw = ok("get", "cli-big", "--format", "raw", timeout=120).split(b"\n")
    assert raw[-1] == b"", raw[-1][:100]
    raw = raw[:-1]
    assert len(raw) == n, len(raw)
    assert sorted(raw) == [gen(i) for i in range(n)]


# ---- get ----

def test_get_formats_and_shards():
    make_stream("cli-get")
    lines = [b"get-%d" % i for i in range(1, 401)]
    lines.append(b"")  # an empty record
    lines.append("ünïcødé ✓".encode())
    t0 = int(time.time() * 1000)
    put_lines("cli-get", lines)
    t1 = int(time.time() * 1000)
    recs = get_json("cli-get")
    assert sorted(check_record_shape(r, "cli-get", t0, t1) for r in recs) == sorted(lines)
    # Shards come in shard order within each read round; per shard, seq strictly increases.
    per_shard = {}
    for r in recs:
        per_shard.setdefault(r["shard"], []).append(int(r["seq"]))
    assert len(per_shard) == SHARDS, per_shard.keys()
    for s, seqs in per_shard.items():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (s, seqs[:10])

    raw = ok("get", "cli-get", "--format", "raw")
    assert raw.endswith(b"\n")
    assert sorted(raw[:-1].split(b"\n")) == sorted(lines)
    assert ok("get", "cli-get") == raw  # raw is the default

    # --shard by number and by shardId-...: the same records, all of that shard.
    for k in range(SHARDS):
        a = get_json("cli-get", "--shard", str(k))
        b = get_json("cli-get", "--shard", "shardId-%012d" % k)
        assert a == b, k
        assert a and all(shard_num(r) == k for r in a), k
        assert [r["seq"] for r in a] == [str(s) for s in per_shard["shardId-%012d" % k]]
    fails("get", "cli-get", "--shard", "99", code=1)

    # --max
    assert len(get_json("cli-get", "--max", "7")) == 7
    assert len(get_json("cli-get", "--shard", "1", "--max", "3")) == 3
    assert len(ok("get", "cli-get", "--max", "1").splitlines()) == 1


def test_get_from():
    make_stream("cli-from", shards=2)
    first = [b"first-%d" % i for i in range(100)]
    put_lines("cli-from", first)
    assert sorted(base64.b64decode(r["data"]) for r in get_json("cli-from", "--from",
                                                                  "trim-horizon")) == sorted(first)
    assert ok("get", "cli-from", "--from", "latest") == b""

    # seq:N on one shard: the records from N on.
    s0 = get_json("cli-from", "--shard", "0")
    assert len(s0) >= 4, len(s0)
    mid = s0[len(s0) // 2]
    tail = get_json("cli-from", "--shard", "0", "--from", "seq:" + mid["seq"])
    assert tail == s0[len(s0) // 2:], (len(tail), len(s0))
    beyond = int(s0[-1]["seq"]) + 1
    assert get_json("cli-from", "--shard", "0", "--from", "seq:%d" % beyond) == []

    # time:ISO: strictly after the first batch's arrival times, before the second's.
    last_ts = max(r["ts"] for r in get_json("cli-from"))
    cut = last_ts + 1
    wait_until("the clock to pass the cut", lambda: time.time() * 1000 > cut + 20, timeout=5,
               interval=0.01)
    second = [b"second-%d" % i for i in range(50)]
    put_lines("cli-from", second)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut // 1000)) + ".%03dZ" % (cut % 1000)
    got = get_json("cli-from", "--from", "time:" + iso)
    assert sorted(base64.b64decode(r["data"]) for r in got) == sorted(second), \
        (iso, len(got))
    assert all(r["ts"] >= cut for r in got)
    # A time before everything gives everything; one in the future gives nothing.
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3000))
    assert len(get_json("cli-from", "--from", "time:" + old)) == len(first) + len(second)
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert get_json("cli-from", "--from", "time:" + future) == []


class FollowOutput:
    """The JSON lines of a running `sluice get --follow --format json`."""

    def __init__(self, p):
        self.p, self.buf = p, b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise AssertionError("no line from get --follow within %ss" % timeout)
            b = os.read(self.p.stdout.fileno(), 65536)
            if not b:
                raise AssertionError("get --follow ended: %r" % self.p.stderr.read())
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def interrupt(self):
        assert self.p.poll() is None, "get --follow exited on its own"
        self.p.send_signal(signal.SIGINT)
        rc = self.p.wait(15)
        assert rc == 0, (rc, self.p.stderr.read())

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


def reads_waited():
    """sluice_reads_waited_total from /metrics: READs the server parked (long poll)."""
    status, body = sp.http_get(srv.http_port(), "/metrics")
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith("sluice_reads_waited_total "):
            return int(line.split()[1])
    raise AssertionError("no sluice_reads_waited_total in /metrics")


def follow(stream, *args):
    return FollowOutput(subprocess.Popen(
        [cli_path(), "--server", addr, "get", stream, "--follow", "--format", "json"] +
        list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def test_get_follow():
    make_stream("cli-follow", shards=2)
    put_lines("cli-follow", [b"old-record"])
    f = follow("cli-follow")
    try:
        assert base64.b64decode(f.line(15)["data"]) == b"old-record"
        time.sleep(0.3)  # it is now polling at the tip
        put_lines("cli-follow", [b"new-record"])
        r = f.line(15)
        assert base64.b64decode(r["data"]) == b"new-record", r
        # a reshard: the parents end, their children are followed from their first record
        ok("stream", "scale", "cli-follow", "3")
        put_lines("cli-follow", [b"after-scale-%d" % i for i in range(30)])
        got = sorted(base64.b64decode(f.line(15)["data"]) for _ in range(30))
        assert got == sorted(b"after-scale-%d" % i for i in range(30)), got
        f.interrupt()
    finally:
        f.close()


def test_get_follow_one_shard_long_polls():
    """One shard left to follow: its reads wait on the server (long poll) instead of sleeping
    between polls; records still arrive one by one, and SIGINT still ends it with status 0."""
    make_stream("cli-follow1", shards=1)
    waited = reads_waited()
    f = follow("cli-follow1", "--shard", "0", "--from", "latest")
    try:
        sp.wait_until(lambda: reads_waited() > waited, 15, "get --follow to park a read")
        for i in range(5):
            put_lines("cli-follow1", [b"live-%d" % i])
            r = f.line(15)
            assert base64.b64decode(r["data"]) == b"live-%d" % i, r
        f.interrupt()
    finally:
        f.close()


# ---- consumers ----

def consumer_json(name):
    return json.loads(ok("consumer", "describe", name, "--format", "json"))


def delivered(name):
    return sum(s["delivered"] for s in consumer_json(name)["shards"])


def test_consumer_lifecycle():
    make_stream("cli-cons")
    n = 1000
    put_lines("cli-cons", [b"c-%d" % i for i in range(n)])
    plugin = plugin_path("echo_ok")
    ok("consumer", "create", "cli-c1", "--stream", "cli-cons", "--handler", "plugin:" + plugin,
       "--start", "trim-horizon", "--batch-size", "64", "--timeout", "30s")
    assert "cli-c1" in ok("consumer", "list").decode().splitlines()
    assert "cli-c1" in json.loads(ok("consumer", "list", "--format", "json"))

    d = consumer_json("cli-c1")
    assert d["name"] == "cli-c1" and d["stream"] == "cli-cons", d
    assert d["handler_kind"] == "plugin" and d["handler_target"] == plugin, d
    assert d["batch_size"] == 64 and d["timeout_ms"] == 30000, d
    assert d["start"] == "trim-horizon", d
    assert len(d["shards"]) == SHARDS, d
    assert [s["shard"] for s in d["shards"]] == ["shardId-%012d" % i for i in range(SHARDS)]

    wait_until("all %d records delivered" % n, lambda: delivered("cli-c1") == n)

    def caught_up():
        d = consumer_json("cli-c1")
        return all(s["lag_records"] == 0 and s["state"] == "IDLE" for s in d["shards"]) and d
    d = wait_until("lag 0 on every shard", caught_up)
    for s in d["shards"]:
        assert s["batches_failed"] == 0 and s["retries"] == 0, s
        assert int(s["checkpoint_seq"]) >= 1, s

    text = ok("consumer", "describe", "cli-c1").decode()
    assert re.search(r"^Consumer:\s+cli-c1$", text, re.M), text
    assert re.search(r"^Handler:\s+plugin:" + re.escape(plugin) + "$", text, re.M), text
    assert re.search(r"^Batch size:\s+64$", text, re.M), text

    # reset to trim-horizon: everything is delivered again.
    ok("consumer", "reset", "cli-c1", "--to", "trim-horizon")
    wait_until("redelivery after reset", lambda: delivered("cli-c1") >= 2 * n)
    # reset one shard to latest: its checkpoint moves to its last record.
    ok("consumer", "reset", "cli-c1", "--to", "latest", "--shard", "shardId-000000000001")
    last1 = int(get_json("cli-cons", "--shard", "1")[-1]["seq"])
    wait_until("shard 1 at latest",
               lambda: int(consumer_json("cli-c1")["shards"][1]["checkpoint_seq"]) == last1)
    usage_error("consumer", "reset", "cli-c1", "--to", "nowhere")
    usage_error("consumer", "reset", "cli-c1")
    fails("consumer", "reset", "cli-none", "--to", "latest", code=1)

    ok("consumer", "delete", "cli-c1")
    assert "cli-c1" not in ok("consumer", "list").decode().splitlines()
    fails("consumer", "describe", "cli-c1", code=1)
    fails("consumer", "delete", "cli-c1", code=1)


# ---- errors ----

def test_errors_unknown_stream():
    fails("get", "no-such-stream", code=1)
    fails("stream", "describe", "no-such-stream", code=1)
    fails("stream", "delete", "no-such-stream", code=1)
    rc, out, err = sluice("put", "no-such-stream", input=b"a\nb\n")
    assert rc == 1, (rc, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sluice:"), err
    fails("consumer", "create", "cli-orphan", "--stream", "no-such-stream", "--handler",
          "plugin:" + plugin_path("echo_ok"), code=1)
    fails("consumer", "describe", "no-such-consumer", code=1)
    # Nothing listening there: still one line, exit 1.
    rc, out, err = sluice("--server", "127.0.0.1:1", "stream", "list", server=False)
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("sluice:"), (rc, err)


def test_usage_errors():
    usage_error(server=False)  # no command at all
    usage_error("frobnicate")
    usage_error("stream")
    usage_error("stream", "explode", "x")
    usage_error("stream", "create", "x")  # --shards is required
    usage_error("stream", "create", "x", "--shards", "0")
    usage_error("stream", "create", "x", "--shards", "two")
    usage_error("stream", "list", "--format", "yaml")
    usage_error("stream", "describe")
    usage_error("put")
    usage_error("put", "s", "--key", "a", "--key-field", "b")
    usage_error("put", "s", "--batch", "0")
    usage_error("get")
    usage_error("get", "s", "--format", "xml")
    usage_error("get", "s", "--max", "0")
    usage_error("get", "s", "--from", "yesterday")
    usage_error("get", "s", "--from", "seq:abc")
    usage_error("get", "s", "--shard", "shardId-x")
    usage_error("get", "s", "--bogus")
    usage_error("get", "s", "--max")  # missing value
    usage_error("consumer", "create", "c")  # --stream and --handler are required
    usage_error("consumer", "create", "c", "--stream", "s")
    usage_error("consumer", "create", "c", "--stream", "s", "--handler", "plugin:/x.so",
                "--batch-size", "lots")
    usage_error("consumer", "describe", "c", "--format", "xml")
    usage_error("consumer", "list", "extra")
    # --help is not an error.
    rc, out, err = sluice("--help", server=False)
    assert rc == 0 and out.startswith(b"usage: sluice"), (rc, out[:100])
    rc, out, err = sluice("get", "--help", server=False)
    assert rc == 0 and b"usage: sluice get" in out, (rc, out[:100])


def main():
    try:
        setup()
        sp.run_tests([(k, v) for k, v in globals().items()
                      if k.startswith("test_") and callable(v)], time_limit=280)
    finally:
        if srv:
            srv.cleanup()


if __name__ == "__main__":
    main()
