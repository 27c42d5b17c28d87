"""A small, independent Python implementation of sluice's native protocol, for tests.

It follows docs/protocol.md, not the C code, so the tests also check that the two agree.
"""
import os
import socket
import struct
import subprocess
import tempfile
import time

OP_PING, OP_AUTH = 0x01, 0x02
OP_CREATE, OP_DELETE, OP_LIST, OP_DESCRIBE, OP_LIST_SHARDS = 0x10, 0x11, 0x12, 0x13, 0x14
OP_PRODUCE, OP_READ = 0x20, 0x21
POS_TRIM_HORIZON, POS_LATEST, POS_AT_SEQ, POS_AFTER_SEQ, POS_AT_TIMESTAMP = 0, 1, 2, 3, 4

ERR = {
    -5001: "corrupt", -5002: "stream_not_found", -5003: "stream_exists",
    -5004: "invalid_argument", -5005: "record_too_large", -5006: "throttled",
    -5007: "protocol", -5008: "unsupported_version", -5009: "bad_opcode",
    -5010: "shard_not_found", -5011: "unavailable", -5012: "internal",
    -5013: "invalid_name", -5014: "invalid_key", -5015: "unauthorized",
    -5018: "shutting_down",
}


class SluiceError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{ERR.get(status, status)}: {message}")
        self.status = status
        self.name = ERR.get(status, str(status))
        self.message = message


def frame(opcode, request_id, body=b""):
    return struct.pack("<IBBHI", 8 + len(body), 1, opcode, 0, request_id) + body


def str8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<B", len(b)) + b


def str16(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<H", len(b)) + b


def record_in(key, data, hash_key=None):
    k = key.encode() if isinstance(key, str) else key
    d = data.encode() if isinstance(data, str) else data
    out = struct.pack("<H", len(k)) + k
    if hash_key is None:
        out += b"\x00"
    else:
        out += b"\x01" + hash_key.to_bytes(16, "big")
    return out + struct.pack("<I", len(d)) + d


class Client:
    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, opcode, body=b""):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(frame(opcode, rid, body))
        return rid

    def recv_frame(self):
        while True:
            if len(self.buf) >= 4:
                (length,) = struct.unpack_from("<I", self.buf)
                if len(self.buf) >= 4 + length:
                    f = self.buf[: 4 + length]
                    self.buf = self.buf[4 + length:]
                    _, ver, op, flags, rid = struct.unpack_from("<IBBHI", f)
                    assert ver == 1 and flags & 1, (ver, flags)
                    return op, rid, f[12:]
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def call(self, opcode, body=b""):
        rid = self.send(opcode, body)
        op, got, resp = self.recv_frame()
        assert got == rid and op == opcode, (got, rid, op, opcode)
        return self.check(resp)

    @staticmethod
    def check(resp):
        (status,) = struct.unpack_from("<i", resp)
        if status < 0:
            (n,) = struct.unpack_from("<H", resp, 4)
            raise SluiceError(status, resp[6:6 + n].decode(errors="replace"))
        return resp[4:]

    def create_stream(self, name, shards, retention_ms=0):
        self.call(OP_CREATE, str8(name) + struct.pack("<IQ", shards, retention_ms))

    def delete_stream(self, name):
        self.call(OP_DELETE, str8(name))

    def list_streams(self):
        r = self.call(OP_LIST)
        (n,) = struct.unpack_from("<I", r)
        off, names = 4, []
        for _ in range(n):
            ln = r[off]
            names.append(r[off + 1: off + 1 + ln].decode())
            off += 1 + ln
        return names

    def list_shards(self, name):
        r = self.call(OP_LIST_SHARDS, str8(name))
        (n,) = struct.unpack_from("<I", r)
        shards, off = [], 4
        for _ in range(n):
            sid, parent, adj = struct.unpack_from("<Iii", r, off)
            off += 12
            start = int.from_bytes(r[off:off + 16], "big")
            end = int.from_bytes(r[off + 16:off + 32], "big")
            off += 32
            start_seq, end_seq, next_seq = struct.unpack_from("<QQQ", r, off)
            off += 24
            shards.append(dict(id=sid, parent=parent, adjacent=adj, start=start, end=end,
                               start_seq=start_seq, end_seq=end_seq, next_seq=next_seq))
        return shards

    def produce_body(self, stream, records):
        body = str8(stream) + struct.pack("<I", len(records))
        return body + b"".join(record_in(*r) for r in records)

    @staticmethod
    def parse_produce(resp):
        (n,) = struct.unpack_from("<I", resp)
        return [struct.unpack_from("<iIQ", resp, 4 + 16 * i) for i in range(n)]

    def produce(self, stream, records):
        """records: [(key, data[, hash_key])]; returns [(status, shard, seq)]."""
        return self.parse_produce(self.call(OP_PRODUCE, self.produce_body(stream, records)))

    def read(self, stream, shard, pos_type, pos_value=0, max_records=10000, max_bytes=1 << 24):
        r = self.call(OP_READ, str8(stream) + struct.pack("<IBQII", shard, pos_type, pos_value,
                                                          max_records, max_bytes))
        sid, next_seq, tip, behind, n = struct.unpack_from("<IQQQI", r)
        off, recs = 32, []
        for _ in range(n):
            seq, ts, klen = struct.unpack_from("<QqH", r, off)
            off += 18
            key = r[off:off + klen]
            off += klen
            flags = r[off]
            off += 1
            hk = None
            if flags & 1:
                hk = int.from_bytes(r[off:off + 16], "big")
                off += 16
            (dlen,) = struct.unpack_from("<I", r, off)
            off += 4
            recs.append(dict(seq=seq, ts=ts, key=key, hash_key=hk, data=r[off:off + dlen]))
            off += dlen
        return dict(shard=sid, next_seq=next_seq, tip=tip, millis_behind=behind, records=recs)

    def read_all(self, stream, shard, pos_type=POS_TRIM_HORIZON, pos_value=0):
        out = []
        res = self.read(stream, shard, pos_type, pos_value)
        while True:
            out += res["records"]
            if res["next_seq"] >= res["tip"] or not res["records"]:
                return out
            res = self.read(stream, shard, POS_AT_SEQ, res["next_seq"])


def build_dir():
    return os.environ.get("SLUICE_BUILD_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build")


class Server:
    """A sluiced on ephemeral loopback ports with its own data folder."""

    def __init__(self, data_dir=None, args=(), threads=2):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sluice-it-")
        self.args = list(args)
        self.threads = threads
        self.proc = None
        self.port = None

    def start(self):
        exe = os.path.join(build_dir(), "src", "server", "sluiced")
        self.log = open(os.path.join(self.data_dir, "..", os.path.basename(self.data_dir) + ".log"), "ab")
        self.proc = subprocess.Popen(
            [exe, "--data-dir", self.data_dir, "--listen", "127.0.0.1:0", "--http-listen",
             "127.0.0.1:0", "--threads", str(self.threads)] + self.args,
            stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("sluiced did not start: " + line)
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def client(self):
        return Client(self.port)

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(timeout)
            self.proc = None
            return rc
        return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        if self.own_dir:
            subprocess.run(["rm", "-rf", self.data_dir])
