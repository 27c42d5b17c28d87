#!/usr/bin/env python3
"""Backpressure: with --max-inflight-bytes 1MiB, a client that pipelines large PRODUCE requests
and never reads its responses ends up blocked in send (the server stops reading from it), the
server's memory stays bounded, another client is served promptly meanwhile, and once the slow
client reads, every request it sent is acknowledged. Pipelined READs with large answers must not
grow the server's memory either."""
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

STREAM = "bp"
SHARDS = 2
OFFER_MAX = 200 << 20  # bytes a slow client may offer at most
OFFER_SECONDS = 20  # ... and for at most this long
BLOCKED_SECONDS = 3.0  # no send progress for this long = blocked
RSS_LIMIT_KIB = 300 * 1024
PING_LIMIT_S = 2.0

srv = None
stats = {}


def slow_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Small buffers: the kernel holds less on our side, so backpressure shows sooner.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
    s.connect(("127.0.0.1", srv.port))
    s.setblocking(False)
    return s


def pump_until_blocked(s, make_request):
    """Send requests without reading until send makes no progress for BLOCKED_SECONDS.
    Returns (pending bytes of the request in progress, request count, bytes offered, blocked)."""
    t0 = time.monotonic()
    offered = 0
    nreq = 0
    pending = b""
    last_progress = time.monotonic()
    max_rss = 0
    while offered < OFFER_MAX and time.monotonic() - t0 < OFFER_SECONDS:
        if not pending:
            nreq += 1
            pending = make_request(nreq)
            offered += len(pending)
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                n = s.send(pending)
            except BlockingIOError:
                n = 0
            if n:
                pending = pending[n:]
                last_progress = time.monotonic()
        max_rss = max(max_rss, srv.rss_kib())
        if time.monotonic() - last_progress >= BLOCKED_SECONDS:
            stats["max_rss_while_pumping"] = max_rss
            return pending, nreq, offered, True
    stats["max_rss_while_pumping"] = max_rss
    return pending, nreq, offered, False


def drain(s, pending, nreq, check_body, limit_s=90):
    """Finish sending, then read nreq responses; check_body(rid, body) for each."""
    buf = b""
    got = set()
    t0 = time.monotonic()
    while len(got) < nreq:
        assert time.monotonic() - t0 < limit_s, ("drain: %d of %d responses in %ss"
                                                  % (len(got), nreq, limit_s))
        r, w, _ = select.select([s], [s] if pending else [], [], 1.0)
        if w and pending:
            try:
                pending = pending[s.send(pending):]
            except BlockingIOError:
                pass
        if r:
            chunk = s.recv(1 << 20)
            assert chunk, "server closed the slow connection (%d of %d answered)" % (len(got), nreq)
            buf += chunk
            while len(buf) >= 4:
                (length,) = struct.unpack_from("<I", buf)
                if len(buf) < 4 + length:
                    break
                _, ver, op, flags, rid = struct.unpack_from("<IBBHI", buf)
                body = buf[12:4 + length]
                buf = buf[4 + length:]
                assert ver == 1 and flags & 1, (ver, flags)
                assert rid not in got, ("response twice", rid)
                assert 1 <= rid <= nreq, rid
                got.add(rid)
                check_body(rid, op, body)
    assert not pending
    return got


def other_client_is_served():
    t0 = time.monotonic()
    c = sp.Client(srv.port, timeout=PING_LIMIT_S + 1)
    c.ping()
    ping_s = time.monotonic() - t0
    assert ping_s < PING_LIMIT_S, "PING took %.2fs while a slow client was blocked" % ping_s
    t1 = time.monotonic()
    res = c.produce("side", [("side-key", b"side-data")])
    assert res[0][0] == 0, res
    r = c.read("side", res[0][1], sp.POS_AT_SEQ, res[0][2], max_records=1)["records"]
    assert r and r[0]["data"] == b"side-data"
    op_s = time.monotonic() - t1
    assert op_s < PING_LIMIT_S, "produce+read took %.2fs while a slow client was blocked" % op_s
    c.close()
    return ping_s


def test_setup():
    c = srv.client()
    c.create_stream(STREAM, SHARDS)
    c.create_stream("side", 1)
    c.close()
    stats["rss_start"] = srv.rss_kib()


records_per_request = {}
TINY = 4000  # tiny records per request: each costs 8 bytes in, 16 bytes out
BIG = 256 << 10  # plus two big records of this many bytes
big_data = os.urandom(BIG)


def make_produce(rid):
    recs = [("big-%d" % (rid % 7), big_data), ("big2-%d" % (rid % 5), big_data)]
    recs += [(chr(0x61 + (rid + i) % 26), b"") for i in range(TINY)]
    records_per_request[rid] = len(recs)
    body = sp.str8(STREAM)
    body += struct.pack("<I", len(recs)) + b"".join(sp.record_in(k, d) for k, d in recs)
    return sp.frame(sp.OP_PRODUCE, rid, body)


def test_pipelined_produce_blocks_and_recovers():
    s = slow_socket()
    pending, nreq, offered, blocked = pump_until_blocked(s, make_produce)
    stats["produce_requests"] = nreq
    stats["produce_offered_mib"] = offered / (1 << 20)
    assert blocked, ("a client pipelining PRODUCEs without reading never blocked: %.0f MiB "
                     "offered in %ss" % (offered / (1 << 20), OFFER_SECONDS))
    rss = srv.rss_kib()
    stats["rss_blocked"] = rss
    assert rss < RSS_LIMIT_KIB, "sluiced RSS %d KiB while a client is blocked" % rss
    assert stats["max_rss_while_pumping"] < RSS_LIMIT_KIB, stats
    stats["ping_s"] = other_client_is_served()
    acked = {}

    def check(rid, op, body):
        assert op == sp.OP_PRODUCE, op
        res = sp.Client.parse_produce(sp.Client.check(body))
        assert len(res) == records_per_request[rid], (rid, len(res))
        for st, shard, seq in res:
            assert st == 0, (rid, sp.ERR.get(st, st))
            assert (shard, seq) not in acked, ("seq acknowledged twice", shard, seq)
            acked[(shard, seq)] = rid

    drain(s, pending, nreq, check)
    s.close()
    c = srv.client()
    stored = set()
    for sh in range(SHARDS):
        for r in c.read_all(STREAM, sh):
            stored.add((sh, r["seq"]))
    assert stored == set(acked), ("stored != acknowledged", len(stored), len(acked))
    stats["produce_records"] = len(acked)
    c.close()


READS = 300  # pipelined READs, each answered ~4 MiB: 1.2 GiB if the server buffered them all
read_blobs = [os.urandom(1 << 20) for _ in range(4)]


def test_pipelined_reads_stay_bounded():
    """Each READ request is 35 bytes and its answer 4 MiB: a few hundred arrive in one recv.
    The server must stop taking them at the in-flight limit, not build 1.2 GiB of answers."""
    c = srv.client()
    c.create_stream("bpread", 1)
    for blob in read_blobs:
        assert c.produce("bpread", [("r", blob)])[0][0] == 0
    c.close()
    s = slow_socket()
    s.setblocking(True)
    s.settimeout(10)
    body = sp.str8("bpread") + struct.pack("<IBQII", 0, sp.POS_TRIM_HORIZON, 0, 10000, 8 << 20)
    s.sendall(b"".join(sp.frame(sp.OP_READ, rid, body) for rid in range(1, READS + 1)))
    s.setblocking(False)
    max_rss = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        max_rss = max(max_rss, srv.rss_kib())
        time.sleep(0.05)
    stats["rss_max_pipelined_reads"] = max_rss
    assert max_rss < RSS_LIMIT_KIB, ("sluiced RSS %d KiB with %d READs pipelined by a client "
                                     "that does not read (in-flight limit 1 MiB)" % (max_rss, READS))
    other_client_is_served()

    def check(rid, op, body):
        assert op == sp.OP_READ, op
        res = sp.Client.parse_read(sp.Client.check(body))
        assert [r["data"] for r in res["records"]] == read_blobs, rid

    drain(s, b"", READS, check)
    s.close()
    assert srv.alive()


def test_server_healthy_after():
    assert srv.alive()
    c = srv.client()
    c.ping()
    c.close()
    stats["rss_end"] = srv.rss_kib()
    print("  " + ", ".join("%s=%s" % (k, round(v, 2) if isinstance(v, float) else v)
                           for k, v in stats.items()))
    rc = srv.stop()
    assert rc == 0, "sluiced exited %s after SIGTERM" % rc


if __name__ == "__main__":
    try:
        srv = sp.Server(args=["--max-inflight-bytes", "1MiB"]).start()
        sp.run_tests(sp.collect(globals()), time_limit=170)
    finally:
        if srv:
            srv.cleanup()
