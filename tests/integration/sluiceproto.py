"""A small, independent Python implementation of sluice's native protocol, for tests.

It follows docs/protocol.md, not the C code, so the tests also check that the two agree.
"""
import hashlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

OP_PING, OP_AUTH = 0x01, 0x02
OP_CREATE, OP_DELETE, OP_LIST, OP_DESCRIBE, OP_LIST_SHARDS = 0x10, 0x11, 0x12, 0x13, 0x14
OP_PRODUCE, OP_READ = 0x20, 0x21
FLAG_RESPONSE, FLAG_PUSH = 0x0001, 0x0002  # frame header flags
POS_TRIM_HORIZON, POS_LATEST, POS_AT_SEQ, POS_AFTER_SEQ, POS_AT_TIMESTAMP = 0, 1, 2, 3, 4

ERR = {
    -5001: "corrupt", -5002: "stream_not_found", -5003: "stream_exists",
    -5004: "invalid_argument", -5005: "record_too_large", -5006: "throttled",
    -5007: "protocol", -5008: "unsupported_version", -5009: "bad_opcode",
    -5010: "shard_not_found", -5011: "unavailable", -5012: "internal",
    -5013: "invalid_name", -5014: "invalid_key", -5015: "unauthorized",
    -5016: "timeout", -5017: "disconnected", -5018: "shutting_down", -5019: "shard_closed",
    -5020: "limit_exceeded",
}
CODE = {v: k for k, v in ERR.items()}


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
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no response from the server within the socket timeout")
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

    def ping(self):
        self.call(OP_PING)

    def describe_stream(self, name):
        r = self.call(OP_DESCRIBE, str8(name))
        ln = r[0]
        d = dict(name=r[1:1 + ln].decode())
        off = 1 + ln
        d["retention_ms"], d["created_ms"], d["status"], n = struct.unpack_from("<QqBI", r, off)
        off += 21
        d["shards"] = []
        for _ in range(n):
            sid, parent, adj = struct.unpack_from("<Iii", r, off)
            start = int.from_bytes(r[off + 12:off + 28], "big")
            end = int.from_bytes(r[off + 28:off + 44], "big")
            start_seq, end_seq, next_seq = struct.unpack_from("<QQQ", r, off + 44)
            off += 68
            d["shards"].append(dict(id=sid, parent=parent, adjacent=adj, start=start, end=end,
                                    start_seq=start_seq, end_seq=end_seq, next_seq=next_seq))
        assert off == len(r), ("trailing bytes in DESCRIBE_STREAM response", off, len(r))
        return d

    def produce_body(self, stream, records):
        body = str8(stream) + struct.pack("<I", len(records))
        return body + b"".join(record_in(*r) for r in records)

    @staticmethod
    def parse_produce(resp):
        (n,) = struct.unpack_from("<I", resp)
        assert len(resp) == 4 + 16 * n, ("PRODUCE response size", len(resp), n)
        return [struct.unpack_from("<iIQ", resp, 4 + 16 * i) for i in range(n)]

    def produce(self, stream, records):
        """records: [(key, data[, hash_key])]; returns [(status, shard, seq)]."""
        return self.parse_produce(self.call(OP_PRODUCE, self.produce_body(stream, records)))

    def read(self, stream, shard, pos_type, pos_value=0, max_records=10000, max_bytes=1 << 24):
        r = self.call(OP_READ, str8(stream) + struct.pack("<IBQII", shard, pos_type, pos_value,
                                                          max_records, max_bytes))
        return self.parse_read(r)

    @staticmethod
    def parse_read(r):
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
        assert off == len(r), ("trailing bytes in READ response", off, len(r))
        return dict(shard=sid, next_seq=next_seq, tip=tip, millis_behind=behind, records=recs)

    def read_all(self, stream, shard, pos_type=POS_TRIM_HORIZON, pos_value=0, max_reads=100000):
        """Every record from the position up to the tip, following next_seq."""
        out = []
        res = self.read(stream, shard, pos_type, pos_value)
        for _ in range(max_reads):
            out += res["records"]
            if res["next_seq"] >= res["tip"] or not res["records"]:
                return out
            res = self.read(stream, shard, POS_AT_SEQ, res["next_seq"])
        raise AssertionError("read_all: no end after %d reads" % max_reads)


def build_dir():
    return os.environ.get("SLUICE_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")


def sluiced_path():
    return os.path.join(build_dir(), "src", "server", "sluiced")


# ---- the Kinesis routing rule, computed independently of the server ----

HASH_SPACE = 1 << 128


def hash_of_key(key):
    """MD5 of the partition key's bytes as a big-endian 128-bit unsigned integer."""
    k = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.md5(k).digest(), "big")


def shard_starts(n):
    """Shard i of n owns [floor(i*2^128/n), floor((i+1)*2^128/n) - 1]."""
    return [i * HASH_SPACE // n for i in range(n)]


def shard_of_hash(h, n):
    starts = shard_starts(n)
    lo, hi = 0, n - 1
    while lo < hi:  # largest i with starts[i] <= h
        mid = (lo + hi + 1) // 2
        if starts[mid] <= h:
            lo = mid
        else:
            hi = mid - 1
    return lo


def shard_of_key(key, n):
    return shard_of_hash(hash_of_key(key), n)


class Server:
    """A sluiced on ephemeral loopback ports with its own data folder.

    Without data_dir, a temporary folder holds data/ and the log, and goes away on exit. With
    data_dir, the caller owns that folder; the log goes next to it (DATA.log)."""

    instances = []  # every Server made, so a failed run can show their logs

    def __init__(self, data_dir=None, args=(), threads=2, log_path=None):
        Server.instances.append(self)
        self.own_dir = data_dir is None
        if self.own_dir:
            self.root = tempfile.mkdtemp(prefix="sluice-it-")
            self.data_dir = os.path.join(self.root, "data")
        else:
            self.root = None
            self.data_dir = data_dir
        self.log_path = log_path or (self.data_dir.rstrip("/") + ".log")
        self.args = list(args)
        self.threads = threads
        self.proc = None
        self.port = None
        self.pid = None

    def command(self):
        return [sluiced_path(), "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
                "--http-listen", "127.0.0.1:0", "--threads", str(self.threads)] + self.args

    def _spawn(self):
        log = open(self.log_path, "ab")
        try:
            return subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.read().splitlines(True)[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def start(self, timeout=30):
        proc = self._spawn()
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                proc.kill()
                proc.wait()
                raise RuntimeError("sluiced printed no 'listening' line within %ss\n%s"
                                   % (timeout, self.log_tail()))
            b = os.read(proc.stdout.fileno(), 1)
            if not b:
                break
            line += b
        text = line.decode(errors="replace")
        if not text.startswith("listening "):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise RuntimeError("sluiced did not start (exit %s): %r\n%s"
                               % (proc.returncode, text, self.log_tail()))
        self.proc = proc
        self.pid = proc.pid
        self.port = int(text.strip().rsplit(":", 1)[1])
        return self

    def start_expect_failure(self, timeout=15):
        """Run sluiced and expect it to exit without listening. Returns (exit code, stdout)."""
        proc = self._spawn()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("sluiced did not exit within %ss (it should have refused)"
                                 % timeout)
        return proc.returncode, out.decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def client(self, timeout=30):
        return Client(self.port, timeout=timeout)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (None if it was not running)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("sluiced did not exit within %ss of SIGTERM" % timeout)
            self.proc = None
            return rc
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL (only our own child, by its PID) and reap it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.kill()
        if self.own_dir and self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


# ---- a minimal test runner: every test_* function, a 'N passed, N failed' line ----

def run_tests(tests, time_limit=None):
    """tests: [(name, fn)]. Runs each, prints a line per test and a summary; exits 1 on any
    failure. A SIGALRM after time_limit seconds fails the run (a hung test must not hang CI)."""
    if time_limit:
        def on_alarm(sig, frm):
            raise TimeoutError("test run exceeded %ss" % time_limit)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(time_limit))
    passed = failed = 0
    t_all = time.monotonic()
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - report everything, keep going
            failed += 1
            print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, e), flush=True)
            traceback.print_exc()
            if isinstance(e, (KeyboardInterrupt, TimeoutError)) and "exceeded" in str(e):
                break
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
    if time_limit:
        signal.alarm(0)
    if failed:
        seen = set()
        for srv in Server.instances:
            if srv.log_path in seen:
                continue
            seen.add(srv.log_path)
            print("--- %s (tail)\n%s" % (srv.log_path, srv.log_tail(40)), flush=True)
    print("%d passed, %d failed (%.1fs)" % (passed, failed, time.monotonic() - t_all), flush=True)
    sys.exit(1 if failed else 0)


def collect(namespace):
    return [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
