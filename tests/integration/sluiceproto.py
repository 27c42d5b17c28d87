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
OP_STREAM_SPLIT, OP_STREAM_MERGE, OP_STREAM_SCALE = 0x19, 0x1A, 0x1B
OP_PRODUCE, OP_READ = 0x20, 0x21
READ_FLAG_SHARD_ENDED = 0x01
OP_CONSUMER_CREATE, OP_CONSUMER_DELETE, OP_CONSUMER_LIST = 0x30, 0x31, 0x32
OP_CONSUMER_DESCRIBE, OP_CONSUMER_RESET, OP_CONSUMER_ATTACH = 0x33, 0x34, 0x35
OP_CONSUMER_BATCH, OP_CONSUMER_ACK = 0x36, 0x37  # BATCH: push frames only
OP_FIREHOSE_CREATE, OP_FIREHOSE_DELETE, OP_FIREHOSE_LIST = 0x40, 0x41, 0x42
OP_FIREHOSE_DESCRIBE, OP_FIREHOSE_FLUSH = 0x43, 0x44
FIREHOSE_COMPRESSION = {"none": 0, "zstd": 1}
FIREHOSE_FORMAT = {"jsonl": 0, "raw": 1}
FIREHOSE_STATES = {0: "IDLE", 1: "FLUSHING", 2: "RETRYING", 3: "FINISHED", 4: "WAITING_PARENTS"}
HANDLER_EXEC, HANDLER_PLUGIN, HANDLER_REMOTE = 0, 1, 2
HANDLER_KIND = {"exec": HANDLER_EXEC, "plugin": HANDLER_PLUGIN, "remote": HANDLER_REMOTE}
CONSUMER_STATES = {0: "IDLE", 1: "DELIVERING", 2: "RETRYING", 3: "FINISHED", 4: "WAITING_REMOTE",
                   5: "WAITING_PARENTS"}
ACK_OK, ACK_FAILED_FROM, ACK_ERROR = 0, 1, 2
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
    -5021: "resource_in_use",
    -5029: "seq_order",
    -5030: "archive_gap",
    -5031: "not_restorable",
    -5032: "layout_mismatch",
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

    # ---- resharding (docs/protocol.md, "Resharding") ----

    def split_shard(self, stream, shard, new_start_hash_key):
        r = self.call(OP_STREAM_SPLIT, str8(stream) + struct.pack("<I", shard) +
                      new_start_hash_key.to_bytes(16, "big"))
        assert len(r) == 8, ("STREAM_SPLIT response size", len(r))
        return list(struct.unpack("<II", r))

    def merge_shards(self, stream, shard, adjacent):
        r = self.call(OP_STREAM_MERGE, str8(stream) + struct.pack("<II", shard, adjacent))
        assert len(r) == 4, ("STREAM_MERGE response size", len(r))
        return struct.unpack("<I", r)[0]

    def scale_stream(self, stream, target):
        r = self.call(OP_STREAM_SCALE, str8(stream) + struct.pack("<I", target))
        assert len(r) == 4, ("STREAM_SCALE response size", len(r))
        return struct.unpack("<I", r)[0]

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

    @staticmethod
    def read_body(stream, shard, pos_type, pos_value=0, max_records=10000, max_bytes=1 << 24,
                  wait_ms=None):
        body = str8(stream) + struct.pack("<IBQII", shard, pos_type, pos_value, max_records,
                                          max_bytes)
        if wait_ms is not None:  # the optional trailing field (long poll)
            body += struct.pack("<I", wait_ms)
        return body

    def read(self, stream, shard, pos_type, pos_value=0, max_records=10000, max_bytes=1 << 24,
             wait_ms=None):
        r = self.call(OP_READ, self.read_body(stream, shard, pos_type, pos_value, max_records,
                                              max_bytes, wait_ms))
        return self.parse_read(r)

    @staticmethod
    def parse_read(r):
        sid, next_seq, tip, behind, n = struct.unpack_from("<IQQQI", r)
        off, recs = 32, []
        for _ in range(n):
            rec, off = parse_record_frame(r, off)
            recs.append(rec)
        flags = r[off]
        off += 1
        assert flags & ~READ_FLAG_SHARD_ENDED == 0, ("unknown READ flags", flags)
        assert off == len(r), ("trailing bytes in READ response", off, len(r))
        return dict(shard=sid, next_seq=next_seq, tip=tip, millis_behind=behind, records=recs,
                    ended=bool(flags & READ_FLAG_SHARD_ENDED))

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

    # ---- consumers (docs/protocol.md, "Consumers"; consumer_config / consumer_shard_status) ----

    @staticmethod
    def consumer_config_body(name, stream, handler, batch_size=100, batch_window_ms=0,
                             start="latest", max_retries=-1, max_record_age_s=-1,
                             bisect_on_error=False, on_failure="", parallelism=1,
                             timeout_ms=60000, flags=None):
        """handler: "exec:CMD", "plugin:PATH", "remote", or (kind, target) to send anything.
        start: "trim-horizon", "latest", ("time", unix_ms), or (type, value) raw."""
        if isinstance(handler, tuple):
            kind, target = handler
        elif handler == "remote":
            kind, target = HANDLER_REMOTE, ""
        else:
            prefix, sep, target = handler.partition(":")
            if not sep or prefix not in ("exec", "plugin"):
                raise ValueError("handler spec must be exec:CMD, plugin:PATH or remote")
            kind = HANDLER_KIND[prefix]
        if start == "trim-horizon":
            st, sv = POS_TRIM_HORIZON, 0
        elif start == "latest":
            st, sv = POS_LATEST, 0
        elif isinstance(start, tuple) and start[0] == "time":
            st, sv = POS_AT_TIMESTAMP, start[1]
        else:
            st, sv = start
        if flags is None:
            flags = 1 if bisect_on_error else 0
        return (str8(name) + str8(stream) + struct.pack("<B", kind) + str16(target)
                + struct.pack("<IIBQiqB", batch_size, batch_window_ms, st, sv, max_retries,
                              max_record_age_s, flags)
                + str8(on_failure) + struct.pack("<II", parallelism, timeout_ms))

    def create_consumer(self, name, stream, handler, **opts):
        self.call(OP_CONSUMER_CREATE, self.consumer_config_body(name, stream, handler, **opts))

    def delete_consumer(self, name):
        self.call(OP_CONSUMER_DELETE, str8(name))

    def list_consumers(self):
        r = self.call(OP_CONSUMER_LIST)
        (n,) = struct.unpack_from("<I", r)
        off, names = 4, []
        for _ in range(n):
            ln = r[off]
            names.append(r[off + 1: off + 1 + ln].decode())
            off += 1 + ln
        assert off == len(r), ("trailing bytes in CONSUMER_LIST response", off, len(r))
        return names

    @staticmethod
    def parse_consumer_config(r, off=0):
        def s8(o):
            n = r[o]
            return r[o + 1:o + 1 + n].decode(), o + 1 + n

        def s16(o):
            (n,) = struct.unpack_from("<H", r, o)
            return r[o + 2:o + 2 + n].decode(errors="replace"), o + 2 + n
        c = {}
        c["name"], off = s8(off)
        c["stream"], off = s8(off)
        c["handler_kind"] = r[off]
        off += 1
        c["handler_target"], off = s16(off)
        (c["batch_size"], c["batch_window_ms"], c["start_type"], c["start_value"],
         c["max_retries"], c["max_record_age_s"], flags) = struct.unpack_from("<IIBQiqB", r, off)
        off += 4 + 4 + 1 + 8 + 4 + 8 + 1
        c["bisect_on_error"] = bool(flags & 1)
        c["flags"] = flags
        c["on_failure"], off = s8(off)
        c["parallelism"], c["timeout_ms"] = struct.unpack_from("<II", r, off)
        off += 8
        return c, off

    def describe_consumer(self, name):
        """The config (a dict) plus created_ms and shards: [dict per consumer_shard_status]."""
        r = self.call(OP_CONSUMER_DESCRIBE, str8(name))
        d, off = self.parse_consumer_config(r)
        d["created_ms"], n = struct.unpack_from("<qI", r, off)
        off += 12
        d["shards"] = []
        for _ in range(n):
            st = {}
            (st["id"], st["checkpoint"], st["lag_records"], st["lag_ms"], state,
             st["delivered"], st["batches_failed"], st["retries"], st["sent_to_on_failure"],
             st["expired"], elen) = struct.unpack_from("<IQQQBQQQQQH", r, off)
            off += 4 + 8 * 3 + 1 + 8 * 5 + 2
            st["state_code"] = state
            st["state"] = CONSUMER_STATES.get(state, "UNKNOWN(%d)" % state)
            st["last_error"] = r[off:off + elen].decode(errors="replace")
            off += elen
            d["shards"].append(st)
        assert off == len(r), ("trailing bytes in CONSUMER_DESCRIBE response", off, len(r))
        return d

    def reset_consumer(self, name, shard_id=-1, pos_type=POS_TRIM_HORIZON, pos_value=0):
        self.call(OP_CONSUMER_RESET, str8(name) + struct.pack("<qBQ", shard_id, pos_type,
                                                                 pos_value))

    # ---- firehoses (src/proto/codec.h: firehose_config / firehose_shard_status) ----

    @staticmethod
    def firehose_config_body(name, stream, dest, endpoint="", region="", credentials_file="",
                             profile="", buffer_bytes=5 << 20, buffer_interval_ms=60000,
                             compression="zstd", zstd_level=3, format="jsonl",
                             max_retry_duration_ms=-1, on_failure="", start="trim-horizon"):
        """compression: "zstd"/"none" or a raw u8; format: "jsonl"/"raw" or a raw u8.
        start: "trim-horizon", "latest", ("time", unix_ms), or (type, value) raw."""
        comp = FIREHOSE_COMPRESSION[compression] if isinstance(compression, str) else compression
        fmt = FIREHOSE_FORMAT[format] if isinstance(format, str) else format
        if start == "trim-horizon":
            st, sv = POS_TRIM_HORIZON, 0
        elif start == "latest":
            st, sv = POS_LATEST, 0
        elif isinstance(start, tuple) and start[0] == "time":
            st, sv = POS_AT_TIMESTAMP, start[1]
        else:
            st, sv = start
        return (str8(name) + str8(stream) + str16(dest) + str16(endpoint) + str8(region)
                + str16(credentials_file) + str8(profile)
                + struct.pack("<QIBiBq", buffer_bytes, buffer_interval_ms, comp, zstd_level, fmt,
                              max_retry_duration_ms)
                + str8(on_failure) + struct.pack("<BQ", st, sv))

    def create_firehose(self, name, stream, dest, **opts):
        self.call(OP_FIREHOSE_CREATE, self.firehose_config_body(name, stream, dest, **opts))

    def delete_firehose(self, name):
        self.call(OP_FIREHOSE_DELETE, str8(name))

    def flush_firehose(self, name):
        self.call(OP_FIREHOSE_FLUSH, str8(name))

    def list_firehoses(self):
        r = self.call(OP_FIREHOSE_LIST)
        (n,) = struct.unpack_from("<I", r)
        off, names = 4, []
        for _ in range(n):
            ln = r[off]
            names.append(r[off + 1: off + 1 + ln].decode())
            off += 1 + ln
        assert off == len(r), ("trailing bytes in FIREHOSE_LIST response", off, len(r))
        return names

    @staticmethod
    def parse_firehose_config(r, off=0):
        def s8(o):
            n = r[o]
            return r[o + 1:o + 1 + n].decode(), o + 1 + n

        def s16(o):
            (n,) = struct.unpack_from("<H", r, o)
            return r[o + 2:o + 2 + n].decode(errors="replace"), o + 2 + n
        c = {}
        c["name"], off = s8(off)
        c["stream"], off = s8(off)
        c["dest"], off = s16(off)
        c["endpoint"], off = s16(off)
        c["region"], off = s8(off)
        c["credentials_file"], off = s16(off)
        c["profile"], off = s8(off)
        (c["buffer_bytes"], c["buffer_interval_ms"], c["compression"], c["zstd_level"],
         c["format"], c["max_retry_duration_ms"]) = struct.unpack_from("<QIBiBq", r, off)
        off += 8 + 4 + 1 + 4 + 1 + 8
        c["on_failure"], off = s8(off)
        c["start_type"], c["start_value"] = struct.unpack_from("<BQ", r, off)
        off += 9
        return c, off

    def describe_firehose(self, name):
        """The config (a dict) plus created_ms and shards: [dict per firehose_shard_status]."""
        r = self.call(OP_FIREHOSE_DESCRIBE, str8(name))
        d, off = self.parse_firehose_config(r)
        d["created_ms"], n = struct.unpack_from("<qI", r, off)
        off += 12
        d["shards"] = []
        for _ in range(n):
            st = {}
            (st["id"], st["checkpoint"], st["buffered_records"], st["buffered_bytes"],
             st["last_flush_ms"], klen) = struct.unpack_from("<IQQQqH", r, off)
            off += 4 + 8 * 4 + 2
            st["last_object_key"] = r[off:off + klen].decode(errors="replace")
            off += klen
            (st["objects_written"], st["records_archived"], st["bytes_written"],
             st["upload_failures"], st["sent_to_on_failure"], st["expired"], state,
             elen) = struct.unpack_from("<QQQQQQBH", r, off)
            off += 8 * 6 + 1 + 2
            st["state_code"] = state
            st["state"] = FIREHOSE_STATES.get(state, "UNKNOWN(%d)" % state)
            st["last_error"] = r[off:off + elen].decode(errors="replace")
            off += elen
            st["lag_ms"], st["background"] = struct.unpack_from("<QB", r, off)
            off += 9
            d["shards"].append(st)
        assert off == len(r), ("trailing bytes in FIREHOSE_DESCRIBE response", off, len(r))
        return d


RECORD_MAGIC = 0x31524C53  # "SLR1": a READ answer's records are the log's frames


def parse_record_frame(r, off):
    """One record frame (src/log/record_format.h) from r at off; returns (record, new offset).
    Checks the structure as libsluice does (the checksum is sluiced's to verify)."""
    flen, magic, seq, ts, klen, flags, zero, dlen = struct.unpack_from("<IIQqHBBI", r, off)
    assert magic == RECORD_MAGIC and zero == 0 and flags & ~1 == 0, ("bad record frame", off)
    p = off + 32
    hk = None
    if flags & 1:
        hk = int.from_bytes(r[p:p + 16], "big")
        p += 16
    key = r[p:p + klen]
    p += klen
    data = r[p:p + dlen]
    p += dlen + 8
    assert flen == p - off and p <= len(r), ("record frame length", flen, p - off, len(r))
    return dict(seq=seq, ts=ts, key=key, hash_key=hk, data=data), p


def parse_records_out(r, off, n):
    """n record_outs from r at off; returns (records, new offset)."""
    recs = []
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
    return recs, off


class RemoteConsumer:
    """A connection attached to a remote consumer (CONSUMER_ATTACH), receiving CONSUMER_BATCH
    push frames and answering them with CONSUMER_ACK requests. Responses (to the ATTACH and to
    ACKs) and pushes arrive interleaved; pushes are queued until next_batch() takes them."""

    def __init__(self, port, name, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.name = name
        self.buf = b""
        self.next_id = 1
        self.pushes = []     # parsed batches not yet taken
        self.responses = {}  # request id -> (opcode, body)
        self.attach_id = self._send(OP_CONSUMER_ATTACH, str8(name))
        op, body = self._wait_response(self.attach_id, timeout)
        assert op == OP_CONSUMER_ATTACH, op
        Client.check(body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, opcode, body):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(frame(opcode, rid, body))
        return rid

    def _read_frames(self, timeout):
        """Read what arrives within timeout (at least one frame if any comes); sort it."""
        deadline = time.monotonic() + timeout
        while True:
            got = False
            while len(self.buf) >= 4:
                (length,) = struct.unpack_from("<I", self.buf)
                if len(self.buf) < 4 + length:
                    break
                f = self.buf[:4 + length]
                self.buf = self.buf[4 + length:]
                _, ver, op, flags, rid = struct.unpack_from("<IBBHI", f)
                assert ver == 1, ver
                assert flags in (FLAG_RESPONSE, FLAG_PUSH), ("frame flags", flags)
                if flags == FLAG_PUSH:
                    assert op == OP_CONSUMER_BATCH, ("unknown push opcode", op)
                    self.pushes.append(self.parse_batch(rid, f[12:]))
                else:
                    self.responses[rid] = (op, f[12:])
                got = True
            if got:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            if not chunk:
                raise ConnectionError("server closed the attached connection")
            self.buf += chunk

    @staticmethod
    def parse_batch(delivery_id, r):
        off = 0
        n = r[off]
        consumer = r[off + 1:off + 1 + n].decode()
        off += 1 + n
        n = r[off]
        stream = r[off + 1:off + 1 + n].decode()
        off += 1 + n
        shard, attempt, count = struct.unpack_from("<III", r, off)
        off += 12
        assert 1 <= count <= 10000, count
        recs, off = parse_records_out(r, off, count)
        assert off == len(r), ("trailing bytes in CONSUMER_BATCH", off, len(r))
        return dict(delivery_id=delivery_id, consumer=consumer, stream=stream, shard=shard,
                    attempt=attempt, records=recs)

    def _wait_response(self, rid, timeout):
        deadline = time.monotonic() + timeout
        while rid not in self.responses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no response to request %d within %ss" % (rid, timeout))
            self._read_frames(left)
        return self.responses.pop(rid)

    def next_batch(self, timeout=5.0):
        """The next pushed batch (dict), or None when none came within timeout."""
        deadline = time.monotonic() + timeout
        while not self.pushes:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_frames(left):
                if not self.pushes:
                    return None
        return self.pushes.pop(0)

    def ack(self, delivery_id, status=ACK_OK, failed_from=0, message="", timeout=10):
        """Send CONSUMER_ACK and wait for its answer; raises SluiceError on an error status."""
        rid = self._send(OP_CONSUMER_ACK, struct.pack("<IBI", delivery_id, status, failed_from)
                         + str16(message))
        op, body = self._wait_response(rid, timeout)
        assert op == OP_CONSUMER_ACK, op
        Client.check(body)


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def plugin_path(name):
    """A test plugin built from tests/plugins/NAME.c."""
    return os.path.join(build_dir(), "tests", "plugins", name + ".so")


def source_dir():
    return os.environ.get("SLUICE_SOURCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")


def http_get(port, path, timeout=10):
    """A plain HTTP/1.0 GET on 127.0.0.1; returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def fsync_override(args):
    """args with --fsync set from SLUICE_IT_FSYNC when that is set: meson runs some tests a
    second time under another policy (under never, a loop appends to shards it does not own)."""
    policy = os.environ.get("SLUICE_IT_FSYNC")
    if not policy:
        return list(args)
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--fsync":
            skip = True
        elif not a.startswith("--fsync="):
            out.append(a)
    return out + ["--fsync", policy]


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

    def __init__(self, data_dir=None, args=(), threads=2, log_path=None, env=None):
        Server.instances.append(self)
        self.env = dict(env or {})  # extra environment variables for sluiced (and its handlers)
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
                "--http-listen", "127.0.0.1:0", "--threads", str(self.threads)] + \
            fsync_override(self.args)

    def _spawn(self):
        log = open(self.log_path, "ab")
        try:
            env = None
            if self.env:
                env = dict(os.environ)
                env.update(self.env)
            return subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, env=env)
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

    def http_port(self, timeout=10):
        """The /metrics port of the running server, from its log line
        'http (/healthz, /metrics) on 127.0.0.1:PORT' (the last one: restarts append)."""
        def find():
            try:
                with open(self.log_path, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                return None
            ports = [ln.rsplit(":", 1)[1].strip() for ln in text.splitlines()
                     if "http (/healthz, /metrics) on " in ln]
            return int(ports[-1]) if ports else None
        return wait_until(find, timeout, "the http listening line in " + self.log_path)

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
