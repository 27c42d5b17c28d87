#!/usr/bin/env python3
"""Bad input gets the documented answer (docs/protocol.md, "Bad input"): a frame that cannot be
parsed closes the connection without a response; a well-framed but invalid request gets an
error response and the connection lives on; bad records fail alone. After all of it, the server
is alive and serves a new client normally."""
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

MAX_RECORD = 1024  # --max-record-bytes 1KiB
STREAM = "bad"
srv = None


def raw(timeout=5):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def expect_closed_silently(s, what, timeout=5):
    """The server closes the connection, sending nothing."""
    s.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            raise AssertionError("%s: connection still open after %ss" % (what, timeout))
        if not chunk:
            break
        got += chunk
    else:
        raise AssertionError("%s: connection still open after %ss" % (what, timeout))
    s.close()
    assert got == b"", "%s: expected no response before the close, got %r" % (what, got[:64])


def expect_error_then_open(c, opcode, body, name, what):
    rid = c.send(opcode, body)
    op, got, resp = c.recv_frame()
    assert got == rid and op == opcode, (what, got, rid, op, opcode)
    try:
        sp.Client.check(resp)
    except sp.SluiceError as e:
        assert e.name == name, "%s: expected %s, got %s (%s)" % (what, name, e.name, e.message)
    else:
        raise AssertionError("%s: expected %s, got success" % (what, name))
    c.ping()  # the connection lives on


def assert_server_ok():
    assert srv.alive(), "sluiced died:\n" + srv.log_tail()
    c = srv.client(timeout=5)
    c.ping()
    c.close()


def test_setup():
    c = srv.client()
    c.create_stream(STREAM, 2)
    c.close()


def test_length_too_small():
    for length in (0, 1, 7):
        s = raw()
        s.sendall(struct.pack("<IBBHI", length, 1, sp.OP_PING, 0, 1))
        expect_closed_silently(s, "length %d" % length)
    assert_server_ok()


def test_length_too_large():
    for length in ((64 << 20) + 1, 0xFFFFFFFF):
        s = raw()
        s.sendall(struct.pack("<IBBHI", length, 1, sp.OP_PRODUCE, 0, 1) + b"x" * 100)
        expect_closed_silently(s, "length %d" % length)
    assert_server_ok()


def test_bad_version():
    for version in (0, 2, 255):
        s = raw()
        s.sendall(struct.pack("<IBBHI", 8, version, sp.OP_PING, 0, 1))
        expect_closed_silently(s, "version %d" % version)
    assert_server_ok()


def test_unknown_flag_bits():
    # bit 0 RESPONSE and bit 1 PUSH are defined (never both); any other bit: closed unanswered
    for flags in (0x0004, 0x8000, 0x0003):
        s = raw()
        s.sendall(struct.pack("<IBBHI", 8, 1, sp.OP_PING, flags, 1))
        expect_closed_silently(s, "flags 0x%04x" % flags)
    assert_server_ok()


def test_response_or_push_frame_from_client():
    """A RESPONSE (bit 0) or PUSH (bit 1) frame sent to the server: answered `protocol`, then
    the connection is closed."""
    for flags in (0x0001, 0x0002):
        s = raw()
        s.sendall(struct.pack("<IBBHI", 8, 1, sp.OP_PING, flags, 42))
        s.settimeout(5)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError("flags 0x%04x: connection still open after 5s" % flags)
            if not chunk:
                break
            data += chunk
        s.close()
        assert len(data) >= 16, (flags, data)
        length, ver, op, fl, rid, status = struct.unpack_from("<IBBHIi", data)
        assert (ver, op, fl, rid) == (1, sp.OP_PING, 1, 42), (flags, ver, op, fl, rid)
        assert sp.ERR.get(status) == "protocol", (flags, status)
        assert len(data) == 4 + length, "flags 0x%04x: more than one frame before the close" % flags
    assert_server_ok()


def test_garbage_bytes():
    rnd = random.Random(3)
    blobs = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
             b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
             bytes(rnd.randrange(256) for _ in range(4096))]
    for i, blob in enumerate(blobs):
        s = raw()
        try:
            s.sendall(blob)
        except OSError:
            pass  # the server may close while we send: fine
        # A random prefix may parse as a plausible frame header and wait for a body: then
        # closing our side must not upset the server either.
        s.settimeout(3)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
    assert_server_ok()


def test_truncated_frame_then_close():
    c = srv.client()
    body = c.produce_body(STREAM, [("k", b"x" * 500)])
    f = sp.frame(sp.OP_PRODUCE, 1, body)
    for cut in (3, 11, 12, 40, len(f) - 1):
        s = raw()
        s.sendall(f[:cut])
        time.sleep(0.02)
        s.close()
    # and one that is reset (RST) instead of closed
    s = raw()
    s.sendall(f[:40])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(0.1)
    assert_server_ok()
    # nothing of it was stored
    for sh in range(2):
        assert all(r["data"] != b"x" * 500 for r in c.read_all(STREAM, sh)), "partial frame stored"
    c.close()


def test_one_byte_at_a_time():
    c = srv.client()
    reqs = [sp.frame(sp.OP_PING, 7),
            sp.frame(sp.OP_PRODUCE, 8, c.produce_body(STREAM, [("slow", b"drip"), ("w", b"")])),
            sp.frame(sp.OP_LIST, 9)]
    data = b"".join(reqs)
    t0 = time.monotonic()
    for b in data:
        c.sock.sendall(bytes([b]))
        time.sleep(0.001)
    got = {}
    for _ in range(3):
        op, rid, body = c.recv_frame()
        got[rid] = (op, body)
    assert set(got) == {7, 8, 9}, got.keys()
    assert got[7][0] == sp.OP_PING and sp.Client.check(got[7][1]) == b""
    res = sp.Client.parse_produce(sp.Client.check(got[8][1]))
    assert [r[0] for r in res] == [0, 0], res
    assert got[9][0] == sp.OP_LIST
    assert time.monotonic() - t0 < 30
    c.close()


def test_unknown_opcode():
    c = srv.client()
    for opcode in (0x00, 0x03, 0x6F, 0x7F, 0xFF):
        expect_error_then_open(c, opcode, b"some body", "bad_opcode", "opcode 0x%02x" % opcode)
    c.close()


def test_malformed_bodies():
    c = srv.client()
    cases = [
        (sp.OP_CREATE, sp.str8("x") + b"\x01\x00", "protocol", "truncated CREATE"),
        (sp.OP_CREATE, sp.str8("x") + struct.pack("<IQ", 1, 0) + b"!", "protocol",
         "CREATE with trailing byte"),
        (sp.OP_LIST, b"\x00", "protocol", "LIST_STREAMS with a body"),
        (sp.OP_DESCRIBE, b"\x05ab", "protocol", "str8 longer than the body"),
        (sp.OP_PING, b"", None, None),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQI", 0, 0, 0, 10), "protocol",
         "truncated READ"),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQII", 0, 9, 0, 10, 100),
         "invalid_argument", "READ with position type 9"),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQII", 0, 0, 0, 0, 100),
         "invalid_argument", "READ of 0 records"),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQII", 0, 0, 0, 10001, 100),
         "invalid_argument", "READ of 10001 records"),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQII", 0, 0, 0, 10, 0),
         "invalid_argument", "READ of 0 bytes"),
        (sp.OP_READ, sp.str8(STREAM) + struct.pack("<IBQII", 5, 0, 0, 10, 100),
         "shard_not_found", "READ of shard 5"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 0), "invalid_argument",
         "PRODUCE of 0 records"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 10001) + sp.record_in("k", b"") * 10001,
         "protocol", "PRODUCE of 10001 records"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 3) + sp.record_in("k", b"v") * 2,
         "protocol", "PRODUCE count larger than its records"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 1) + sp.record_in("k", b"v") + b"\x00",
         "protocol", "PRODUCE with trailing byte"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 1) + struct.pack("<H", 1) + b"k\x02"
         + struct.pack("<I", 1) + b"v", "protocol", "record with unknown flag bit"),
        (sp.OP_PRODUCE, sp.str8(STREAM) + struct.pack("<I", 1) + struct.pack("<H", 1) + b"k\x00"
         + struct.pack("<I", 100) + b"v", "protocol", "record data_len past the body"),
        (sp.OP_PRODUCE, sp.str8("a/b") + struct.pack("<I", 1) + sp.record_in("k", b"v"),
         "invalid_name", "PRODUCE to an invalid name"),
        (sp.OP_PRODUCE, sp.str8("nosuch") + struct.pack("<I", 1) + sp.record_in("k", b"v"),
         "stream_not_found", "PRODUCE to an unknown stream"),
    ]
    for opcode, body, name, what in cases:
        if name is None:
            c.call(opcode, body)
            continue
        expect_error_then_open(c, opcode, body, name, what)
    # none of the rejected PRODUCEs stored anything ("v" data only came from them)
    for sh in range(2):
        assert all(r["data"] != b"v" for r in c.read_all(STREAM, sh)), "rejected request stored"
    c.close()
    assert_server_ok()


def test_oversized_record_fails_alone():
    c = srv.client()
    batch = [("a", b"1" * 10), ("b", b"2" * (MAX_RECORD + 1)), ("c", b"3" * MAX_RECORD),
             ("d", b"4" * (200 * 1024)), ("e", b"")]
    res = c.produce(STREAM, batch)
    statuses = [sp.ERR.get(s, s) if s else 0 for s, _, _ in res]
    assert statuses == [0, "record_too_large", 0, "record_too_large", 0], statuses
    for (k, d), (st, shard, seq) in zip(batch, res):
        recs = c.read(STREAM, shard, sp.POS_AT_SEQ, seq, max_records=1)["records"] if st == 0 else []
        if st == 0:
            assert recs and recs[0]["seq"] == seq and recs[0]["data"] == d, (k, recs)
        else:
            assert (shard, seq) == (0, 0), ("failed record carries shard/seq", shard, seq)
    stored = [r["data"] for sh in range(2) for r in c.read_all(STREAM, sh)]
    assert b"2" * (MAX_RECORD + 1) not in stored and b"4" * (200 * 1024) not in stored
    c.close()


def test_invalid_keys_fail_alone():
    c = srv.client()
    bad_keys = [b"", b"k" * 257, b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"ab\xe2\x82", b"\x80abc", "é".encode() * 128 + b"x"]
    good_keys = [b"k" * 256, b"\x00", "é".encode() * 128, "🙂".encode(), b"\xf4\x8f\xbf\xbf"]
    batch = []
    want = []
    for i, k in enumerate(bad_keys + good_keys):
        batch.append((b"ok-before" if i % 2 else b"x", b"filler-%d" % i))
        want.append(0)
        batch.append((k, b"key-%d" % i))
        want.append("invalid_key" if i < len(bad_keys) else 0)
    res = c.produce(STREAM, batch)
    got = [sp.ERR.get(s, s) if s else 0 for s, _, _ in res]
    assert got == want, list(zip([b[0] for b in batch], got, want))
    for (k, d), (st, shard, seq) in zip(batch, res):
        if st == 0:
            assert shard == sp.shard_of_key(k, 2), ("routing", k, shard)
            r = c.read(STREAM, shard, sp.POS_AT_SEQ, seq, max_records=1)["records"]
            assert r[0]["key"] == k and r[0]["data"] == d, (k, r)
    c.close()


def test_server_still_serves_after_everything():
    assert srv.alive(), "sluiced died:\n" + srv.log_tail()
    c = srv.client(timeout=5)
    c.create_stream("after", 3)
    res = c.produce("after", [("k%d" % i, b"v%d" % i) for i in range(100)])
    assert all(r[0] == 0 for r in res)
    n = sum(len(c.read_all("after", sh)) for sh in range(3))
    assert n == 100, n
    c.close()
    assert srv.stop() == 0, "exit code after SIGTERM"


if __name__ == "__main__":
    try:
        srv = sp.Server(args=["--max-record-bytes", "1KiB"]).start()
        sp.run_tests(sp.collect(globals()), time_limit=150)
    finally:
        if srv:
            srv.cleanup()
