#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_proto into tests/fuzz/corpus/proto/.

Each file is one selector byte (see the top of fuzz_proto.c) followed by valid protocol bytes:
mostly whole frames (selector 0), a dozen per kind of request and response, plus bare bodies for
the direct decoders. Output is deterministic (fixed seed; files named by content hash, as
libFuzzer names them), and files already there (past crashes) are kept.
Usage: tests/fuzz/gen_proto_corpus.py [OUTDIR]
"""
import hashlib
import os
import random
import struct
import sys

VERSION = 1
RESPONSE = 0x0001
OP = dict(PING=0x01, AUTH=0x02, CREATE_STREAM=0x10, DELETE_STREAM=0x11, LIST_STREAMS=0x12,
          DESCRIBE_STREAM=0x13, LIST_SHARDS=0x14, PRODUCE=0x20, READ=0x21)
# Consumer operations: a separate table and random stream (crng below), so that adding them left
# the seeds of the older operations byte-for-byte unchanged.
COP = dict(CONSUMER_CREATE=0x30, CONSUMER_DELETE=0x31, CONSUMER_LIST=0x32, CONSUMER_DESCRIBE=0x33,
           CONSUMER_RESET=0x34, CONSUMER_ATTACH=0x35, CONSUMER_BATCH=0x36, CONSUMER_ACK=0x37)
# Firehose operations: again their own table and random stream (frng below).
FOP = dict(FIREHOSE_CREATE=0x40, FIREHOSE_DELETE=0x41, FIREHOSE_LIST=0x42, FIREHOSE_DESCRIBE=0x43,
           FIREHOSE_FLUSH=0x44)
# Restore operations: their own table and random stream (rrng below).
ROP = dict(STREAM_CREATE_FROM_META=0x1C, RESTORE_APPEND=0x22, STREAM_META_GET=0x23)
PUSH = 0x0002
ERRORS = [-5002, -5003, -5004, -5005, -5006, -5007, -5009, -5013, -5014, -5015, -28]

rng = random.Random(20260101)


def u8(v): return struct.pack('<B', v)
def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v)
def i32(v): return struct.pack('<i', v)
def u64(v): return struct.pack('<Q', v)
def i64(v): return struct.pack('<q', v)
def str8(b): return u8(len(b)) + b
def str16(b): return u16(len(b)) + b


def frame(op, body, request_id=None, response=False, push=False):
    rid = rng.randrange(1 << 32) if request_id is None else request_id
    flags = (RESPONSE if response else 0) | (PUSH if push else 0)
    return u32(8 + len(body)) + u8(VERSION) + u8(op) + u16(flags) + u32(rid) + body


def name():
    chars = b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-'
    return bytes(rng.choice(chars) for _ in range(rng.choice([1, 2, 5, 8, 12, 128])))


KEYS = [b'k', b'user-42', b'\xc3\xa9t\xc3\xa9', b'\xe2\x82\xac', b'\xf0\x9f\x98\x80', b'x' * 256,
        b'\xf4\x8f\xbf\xbf', b'order/2026/01']


def key(): return rng.choice(KEYS)
def hash_key(): return bytes(rng.randrange(256) for _ in range(16))
def data(): return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 16, 40])))


def record_in():
    k, d = key(), data()
    if rng.random() < 0.3:
        return str16(k) + u8(1) + hash_key() + u32(len(d)) + d
    return str16(k) + u8(0) + u32(len(d)) + d


def record_out():
    k, d = key(), data()
    head = u64(rng.randrange(1 << 40)) + i64(1790000000000 + rng.randrange(10 ** 6)) + str16(k)
    if rng.random() < 0.3:
        return head + u8(1) + hash_key() + u32(len(d)) + d
    return head + u8(0) + u32(len(d)) + d


def record_frame():
    """A READ answer's record: the log's frame (src/log/record_format.h). The same random draws
    as record_out, so the seeds after it stay the same; the checksum is not computed (libsluice
    does not check it: sluiced did when it read the frame from disk)."""
    k, d = key(), data()
    seq, ts = rng.randrange(1 << 40), 1790000000000 + rng.randrange(10 ** 6)
    hk = hash_key() if rng.random() < 0.3 else b''
    flen = 32 + len(hk) + len(k) + len(d) + 8
    head = u32(flen) + u32(0x31524C53) + u64(seq) + i64(ts) + struct.pack('<H', len(k))
    return head + u8(1 if hk else 0) + u8(0) + u32(len(d)) + hk + k + d + u64(0)


def shard_desc(i, n):
    span = (1 << 128) // n
    start, end = i * span, ((i + 1) * span - 1 if i < n - 1 else (1 << 128) - 1)
    parent = rng.choice([-1, -1, max(i - 1, 0)])
    return (u32(i) + i32(parent) + i32(-1) + start.to_bytes(16, 'big') + end.to_bytes(16, 'big')
            + u64(rng.randrange(1000)) + u64(rng.choice([0, 5000])) + u64(rng.randrange(10 ** 6)))


def produce_body():
    n = rng.choice([1, 1, 2, 3, 5])
    return str8(name()) + u32(n) + b''.join(record_in() for _ in range(n))


def read_body():
    return (str8(name()) + u32(rng.randrange(8)) + u8(rng.randrange(5)) + u64(rng.randrange(1 << 40))
            + u32(rng.choice([1, 100, 10000])) + u32(rng.choice([1, 1 << 20])))


def create_body():
    return str8(name()) + u32(rng.choice([1, 2, 4, 4096])) + u64(rng.choice([86400000, 604800000]))


def requests():
    yield frame(OP['PING'], b'')
    yield frame(OP['LIST_STREAMS'], b'')
    yield frame(OP['AUTH'], str16(bytes(rng.randrange(33, 127) for _ in range(rng.choice([0, 8, 32])))))
    yield frame(OP['CREATE_STREAM'], create_body())
    for op in ('DELETE_STREAM', 'DESCRIBE_STREAM', 'LIST_SHARDS'):
        yield frame(OP[op], str8(name()))
    yield frame(OP['PRODUCE'], produce_body())
    yield frame(OP['READ'], read_body())


def ok(body=b''): return i32(0) + body


def responses():
    for op in ('PING', 'AUTH', 'CREATE_STREAM', 'DELETE_STREAM'):
        yield frame(OP[op], ok(), response=True)
    n = rng.randrange(4)
    yield frame(OP['LIST_STREAMS'], ok(u32(n) + b''.join(str8(name()) for _ in range(n))),
                response=True)
    n = rng.choice([1, 2, 4])
    shards = b''.join(shard_desc(i, n) for i in range(n))
    sd = str8(name()) + u64(86400000) + i64(1790000000000) + u8(rng.randrange(4)) + u32(n)
    yield frame(OP['DESCRIBE_STREAM'], ok(sd + shards), response=True)
    yield frame(OP['LIST_SHARDS'], ok(u32(n) + shards), response=True)
    n = rng.choice([1, 2, 3])
    results = b''.join(i32(rng.choice([0, 0, -5005, -5014])) + u32(rng.randrange(4))
                       + u64(rng.randrange(1 << 40)) for _ in range(n))
    yield frame(OP['PRODUCE'], ok(u32(n) + results), response=True)
    n = rng.choice([0, 1, 2, 3])
    head = u32(rng.randrange(4)) + u64(100) + u64(200) + u64(rng.randrange(10 ** 5)) + u32(n)
    yield frame(OP['READ'], ok(head + b''.join(record_frame() for _ in range(n)) + u8(0)),
                response=True)
    op = rng.choice(list(OP.values()))
    msg = rng.choice([b'', b'stream not found', b'invalid partition key: use 1-256 bytes of UTF-8',
                      'caf\u00e9 \u20ac'.encode()])
    yield frame(op, i32(rng.choice(ERRORS)) + str16(msg), response=True)


# ---- consumers (their own random stream; see COP) ----

crng = random.Random(20260301)


def with_rng(fn, other=None):
    """Run fn with the consumer (or other) random stream in place of the main one."""
    global rng
    saved, rng = rng, (other or crng)
    try:
        return fn()
    finally:
        rng = saved


def consumer_config():
    kind = rng.randrange(3)
    target = {0: b'python3 handle.py --x', 1: b'/opt/handlers/libh.so', 2: b''}[kind]
    start = rng.choice([0, 1, 4])
    return (str8(name()) + str8(name()) + u8(kind) + str16(target)
            + u32(rng.choice([1, 100, 10000])) + u32(rng.choice([0, 500, 300000]))
            + u8(start) + u64(1790000000000 if start == 4 else 0)
            + i32(rng.choice([-1, 0, 3, 10000])) + i64(rng.choice([-1, 60, 604800]))
            + u8(rng.randrange(2)) + str8(rng.choice([b'', name()]))
            + u32(rng.randrange(1, 11)) + u32(rng.choice([1, 60000, 900000])))


def consumer_shard_status(i):
    err = rng.choice([b'', b'handler exited with status 1', 'caf\u00e9'.encode()])
    return (u32(i) + u64(rng.randrange(1 << 40)) + u64(rng.randrange(1000)) + u64(rng.randrange(10 ** 6))
            + u8(rng.randrange(5)) + b''.join(u64(rng.randrange(10 ** 6)) for _ in range(5))
            + str16(err))


def consumer_reset_body():
    return (str8(name()) + i64(rng.choice([-1, 0, 3, 4095])) + u8(rng.randrange(5))
            + u64(rng.randrange(1 << 40)))


def consumer_ack_body():
    return (u32(rng.randrange(1 << 32)) + u8(rng.randrange(3)) + u32(rng.randrange(100))
            + str16(rng.choice([b'', b'record 3: bad JSON'])))


def consumer_batch_body():
    n = rng.choice([1, 2, 3])
    return (str8(name()) + str8(name()) + u32(rng.randrange(8)) + u32(rng.randrange(4)) + u32(n)
            + b''.join(record_out() for _ in range(n)))


def consumer_requests():
    yield frame(COP['CONSUMER_CREATE'], consumer_config())
    for op in ('CONSUMER_DELETE', 'CONSUMER_DESCRIBE', 'CONSUMER_ATTACH'):
        yield frame(COP[op], str8(name()))
    yield frame(COP['CONSUMER_LIST'], b'')
    yield frame(COP['CONSUMER_RESET'], consumer_reset_body())
    yield frame(COP['CONSUMER_ACK'], consumer_ack_body())


def consumer_responses():
    for op in ('CONSUMER_CREATE', 'CONSUMER_DELETE', 'CONSUMER_RESET', 'CONSUMER_ATTACH',
               'CONSUMER_ACK'):
        yield frame(COP[op], ok(), response=True)
    n = rng.randrange(4)
    yield frame(COP['CONSUMER_LIST'], ok(u32(n) + b''.join(str8(name()) for _ in range(n))),
                response=True)
    n = rng.choice([0, 1, 2, 4])
    body = (consumer_config() + i64(1790000000000) + u32(n)
            + b''.join(consumer_shard_status(i) for i in range(n)))
    yield frame(COP['CONSUMER_DESCRIBE'], ok(body), response=True)
    yield frame(COP['CONSUMER_DESCRIBE'], i32(-5002) + str16(b'no consumer of that name'),
                response=True)


def consumer_inputs():
    inputs = []
    for _ in range(12):
        inputs += [b'\x00' + f for f in consumer_requests()]
        inputs += [b'\x00' + f for f in consumer_responses()]
        inputs.append(b'\x00' + frame(COP['CONSUMER_BATCH'], consumer_batch_body(), push=True))
        inputs.append(b'\x42' + consumer_config())
        inputs.append(b'\x43' + consumer_reset_body())
        inputs.append(b'\x44' + consumer_ack_body())
        inputs.append(b'\x45' + consumer_batch_body())
        f = list(consumer_responses())[rng.randrange(8)]
        inputs.append(b'\x07' + f[5:6] + f[12:])
    # An attached connection: an ACK request, then pushes back to back, the last one cut short.
    for _ in range(4):
        pushes = [frame(COP['CONSUMER_BATCH'], consumer_batch_body(), push=True) for _ in range(3)]
        inputs.append(b'\x00' + frame(COP['CONSUMER_ACK'], consumer_ack_body()) + b''.join(pushes)
                      + pushes[0][:20])
    return inputs


# ---- firehoses (their own random stream; see FOP) ----

frng = random.Random(20260401)


def firehose_config():
    dest = rng.choice([b'file:///var/lib/sluice/objects', b's3://archive-bucket/sluice',
                       b's3://b/' + b'p' * 200])
    s3 = dest.startswith(b's3://')
    start = rng.choice([0, 1, 4])
    return (str8(name()) + str8(name()) + str16(dest)
            + str16(rng.choice([b'', b'http://127.0.0.1:9000']) if s3 else b'')
            + str8(rng.choice([b'', b'us-east-1', b'eu-west-1']) if s3 else b'')
            + str16(rng.choice([b'', b'/etc/sluice/aws-credentials']) if s3 else b'')
            + str8(rng.choice([b'', b'default', b'archiver']) if s3 else b'')
            + u64(rng.choice([1 << 20, 5 << 20, 128 << 20])) + u32(rng.choice([0, 60000, 900000]))
            + u8(rng.randrange(2)) + i32(rng.choice([1, 3, 19])) + u8(rng.randrange(2))
            + i64(rng.choice([-1, 0, 3600000])) + str8(rng.choice([b'', name()]))
            + u8(start) + u64(1790000000000 if start == 4 else 0))


def firehose_shard_status(i):
    key = rng.choice([b'', b'sluice/2026/11/28/01/orders-shardId-000000000003-'
                      b'00000000000000001041-00000000000000002040.jsonl.zst'])
    err = rng.choice([b'', b'PUT s3://b/k: HTTP 503 SlowDown: reduce your request rate'])
    return (u32(i) + u64(rng.randrange(1 << 40)) + u64(rng.randrange(1000))
            + u64(rng.randrange(1 << 24)) + i64(rng.choice([0, 1790000000000])) + str16(key)
            + b''.join(u64(rng.randrange(10 ** 6)) for _ in range(6)) + u8(rng.randrange(4))
            + str16(err) + u64(1500 * i) + u8(i % 2))  # lag_ms, background: no rng draw


def firehose_requests():
    yield frame(FOP['FIREHOSE_CREATE'], firehose_config())
    for op in ('FIREHOSE_DELETE', 'FIREHOSE_DESCRIBE', 'FIREHOSE_FLUSH'):
        yield frame(FOP[op], str8(name()))
    yield frame(FOP['FIREHOSE_LIST'], b'')


def firehose_responses():
    for op in ('FIREHOSE_CREATE', 'FIREHOSE_DELETE', 'FIREHOSE_FLUSH'):
        yield frame(FOP[op], ok(), response=True)
    n = rng.randrange(4)
    yield frame(FOP['FIREHOSE_LIST'], ok(u32(n) + b''.join(str8(name()) for _ in range(n))),
                response=True)
    n = rng.choice([0, 1, 2, 4])
    body = (firehose_config() + i64(1790000000000) + u32(n)
            + b''.join(firehose_shard_status(i) for i in range(n)))
    yield frame(FOP['FIREHOSE_DESCRIBE'], ok(body), response=True)
    yield frame(FOP['FIREHOSE_DESCRIBE'], i32(-5002) + str16(b'no firehose of that name'),
                response=True)


def firehose_inputs():
    inputs = []
    for _ in range(12):
        inputs += [b'\x00' + f for f in firehose_requests()]
        inputs += [b'\x00' + f for f in firehose_responses()]
        inputs.append(b'\x22' + firehose_config())
        f = list(firehose_responses())[rng.randrange(6)]
        inputs.append(b'\x07' + f[5:6] + f[12:])
    # Pipelined: a create, a describe and the start of a flush.
    for _ in range(4):
        fs = list(firehose_requests())
        inputs.append(b'\x00' + fs[0] + fs[2] + fs[3][:9])
    return inputs


# ---- restore (their own random stream; see ROP) ----

rrng = random.Random(20260501)


def restore_inputs():
    inputs = []
    for _ in range(12):
        n = rng.randrange(1, 6)
        seq = rng.randrange(1, 1000)
        recs = b''
        for _ in range(n):
            seq += rng.randrange(1, 3)
            recs += (u64(seq) + i64(1795827723250 + rng.randrange(1000)) +
                     str16(b'user-%d' % rng.randrange(100)) + str16(b'')[:0] +
                     u32(3) + b'abc')
        body = str8(name()) + u32(rng.randrange(4)) + u32(n) + recs
        inputs.append(b'\x00' + frame(ROP['RESTORE_APPEND'], body))
        doc = b'{"format":1,"name":"s","retention_ms":86400000,"created_ms":1,"status":"active"}'
        inputs.append(b'\x00' + frame(ROP['STREAM_CREATE_FROM_META'],
                                      str8(name()) + u32(len(doc)) + doc))
        inputs.append(b'\x00' + frame(ROP['STREAM_META_GET'], str8(name())))
        inputs.append(b'\x00' + frame(ROP['RESTORE_APPEND'], ok(u32(n) + u32(0) + u64(seq + 1)),
                                      response=True))
    return inputs


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                            'corpus', 'proto')
    os.makedirs(out, exist_ok=True)
    inputs = []
    for _ in range(12):  # a dozen of each kind
        inputs += [b'\x00' + f for f in requests()]
        inputs += [b'\x00' + f for f in responses()]
    # Pipelined frames, and a frame followed by the start of the next.
    for _ in range(4):
        fs = list(requests()) + list(responses())
        rng.shuffle(fs)
        inputs.append(b'\x00' + b''.join(fs[:3]))
        inputs.append(b'\x00' + fs[0] + fs[1][:7])
    # Bare headers and bodies for the direct decoders.
    for _ in range(12):
        inputs.append(b'\x01' + frame(rng.choice(list(OP.values())), b'')[:12])
        inputs.append(b'\x02' + str8(name()))
        inputs.append(b'\x03' + str16(b'token'))
        inputs.append(b'\x04' + create_body())
        inputs.append(b'\x05' + read_body())
        inputs.append(rng.choice([b'\x06', b'\x86']) + produce_body())
        f = list(responses())[rng.randrange(9)]
        inputs.append(b'\x07' + f[5:6] + f[12:])
    inputs += with_rng(consumer_inputs)
    inputs += with_rng(firehose_inputs, frng)
    inputs += with_rng(restore_inputs, rrng)
    written = 0
    for data_ in inputs:
        path = os.path.join(out, hashlib.sha1(data_).hexdigest())
        if not os.path.exists(path):
            with open(path, 'wb') as f:
                f.write(data_)
            written += 1
    print(f'{len(inputs)} inputs, {written} new files in {out}')


if __name__ == '__main__':
    main()
