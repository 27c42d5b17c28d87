#!/usr/bin/env python3
"""The Kinesis API through the real AWS SDK for JavaScript v3 (HTTP/2), against a real sluiced.

sdk_test.js covers every operation and the error types; this side writes records over the native
protocol first (the SDK must read them) and afterwards reads every record the SDK put over the
native protocol (same shard, sequence number, key and data). Exits 77 (skipped) when node or
tests/node_modules/@aws-sdk/client-kinesis is missing (tools/test installs it).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sluiceproto as sp  # noqa: E402

NODE_MODULES = os.path.join(sp.source_dir(), "tests", "node_modules")


def run_sdk(srv, native_stream):
    out = tempfile.mktemp(prefix="sluice-sdk-", suffix=".json")
    env = dict(os.environ, SLUICE_NODE_MODULES=NODE_MODULES, NODE_NO_WARNINGS="1")
    endpoint = "http://127.0.0.1:%d" % srv.http_port()
    p = subprocess.run(["node", os.path.join(HERE, "sdk_test.js"), endpoint, native_stream, out],
                       env=env, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        raise AssertionError("sdk_test.js failed (%d):\n%s\n%s" % (p.returncode, p.stdout,
                                                                  p.stderr))
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result


def test_sdk_every_operation_and_cross_protocol():
    with sp.Server() as srv:
        c = srv.client()
        c.create_stream("native1", 2)
        res = c.produce("native1", [("n%d" % i, "native-%d" % i) for i in range(3)])
        assert all(st == 0 for st, _, _ in res), res
        result = run_sdk(srv, "native1")
        # Every expectError in sdk_test.js ran (none skipped by an early return).
        with open(os.path.join(HERE, "sdk_test.js")) as f:
            want_checks = f.read().count("await expectError(")
        assert result["checks"] == want_checks, (result["checks"], want_checks)
        put = result["records"]
        assert len(put) == 502, len(put)
        for shard in (0, 1):
            want = [p for p in put if p["shard"] == shard]
            got = c.read_all(result["stream"], shard)
            assert [r["seq"] for r in got] == [int(p["seq"]) for p in want], shard
            assert [r["data"].decode() for r in got] == [p["data"] for p in want]
            assert [r["key"].decode() for r in got] == [p["key"] for p in want]
        print("sdk checks: %d error cases, resharding %s" % (result["checks"],
                                                           result["reshard"]["split"]))


def test_sdk_resharding():
    """SplitShard, MergeShards, UpdateShardCount through the SDK (sdk_reshard_test.js), then the
    records of every shard read natively agree with what the SDK read."""
    with sp.Server() as srv:
        out = tempfile.mktemp(prefix="sluice-sdk-rs-", suffix=".json")
        env = dict(os.environ, SLUICE_NODE_MODULES=NODE_MODULES, NODE_NO_WARNINGS="1")
        p = subprocess.run(["node", os.path.join(HERE, "sdk_reshard_test.js"),
                            "http://127.0.0.1:%d" % srv.http_port(), out],
                           env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, (p.stdout, p.stderr)
        with open(out) as f:
            result = json.load(f)
        os.unlink(out)
        # 2 + split (2) + merge (1) + scale 2 -> 4 (splits and merges: more than 2)
        assert result["shards"] > 7, result
        assert result["records"] == 4 * 64, result
        print("resharding through the SDK: %d shards, %d records, read in order %s"
              % (result["shards"], result["records"], ", ".join(result["order"])))


SIGNED_JS = r"""
const K = require(require('path').join(process.env.SLUICE_NODE_MODULES, '@aws-sdk/client-kinesis'));
const [endpoint, secret] = process.argv.slice(1);
const c = new K.KinesisClient({ endpoint, region: 'eu-west-1', maxAttempts: 1,
  credentials: { accessKeyId: 'AKIDSDK', secretAccessKey: secret } });
c.send(new K.CreateStreamCommand({ StreamName: 'signed', ShardCount: 1 }))
  .then(() => c.send(new K.ListStreamsCommand({})))
  .then((r) => { console.log('OK ' + r.StreamNames.join(',')); c.destroy(); })
  .catch((e) => { console.log('ERR ' + e.name); c.destroy(); });
"""


def test_sdk_signatures_are_verified_over_http2():
    root = tempfile.mkdtemp(prefix="sluice-sdk-keys-")
    keys = os.path.join(root, "keys")
    with open(keys, "w") as f:
        f.write("AKIDSDK sdk-secret\n")
    env = dict(os.environ, SLUICE_NODE_MODULES=NODE_MODULES, NODE_NO_WARNINGS="1")
    try:
        with sp.Server(args=["--http-access-keys", keys]) as srv:
            endpoint = "http://127.0.0.1:%d" % srv.http_port()
            outs = []
            for secret in ("sdk-secret", "wrong-secret"):
                p = subprocess.run(["node", "-e", SIGNED_JS, endpoint, secret], env=env,
                                   capture_output=True, text=True, timeout=60)
                outs.append(p.stdout.strip())
            assert outs == ["OK signed", "ERR InvalidSignatureException"], outs
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if not shutil.which("node") or not os.path.isdir(
            os.path.join(NODE_MODULES, "@aws-sdk", "client-kinesis")):
        print("skipped: node or tests/node_modules/@aws-sdk/client-kinesis missing "
              "(tools/test installs it)")
        sys.exit(77)
    sp.run_tests(sp.collect(globals()), time_limit=280)
