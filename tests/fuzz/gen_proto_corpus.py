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


def frame(op, body, request_id=None, response=False):
    rid = rng.randrange(1 << 32) if request_id is None else request_id
    return (u32(8 + len(body)) + u8(VERSION) + u8(op) + u16(RESPONSE if response else 0)
            + u32(rid) + body)


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
    yield frame(OP['READ'], ok(head + b''.join(record_out() for _ in range(n))), response=True)
    op = rng.choice(list(OP.values()))
    msg = rng.choice([b'', b'stream not found', b'invalid partition key: use 1-256 bytes of UTF-8',
                      'caf\u00e9 \u20ac'.encode()])
    yield frame(op, i32(rng.choice(ERRORS)) + str16(msg), response=True)


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
