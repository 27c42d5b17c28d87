#!/usr/bin/env python3
"""The Kinesis API through the AWS CLI (HTTP/1.1, botocore), against a real sluiced.

Create a stream, put records and batches, read them with every iterator type, retention and tags,
resharding validation, error types, delete; records put over the native protocol are read with
the CLI and the other way round. The CLI signs with SigV4, which sluice accepts and ignores by
default. Exits 77 (skipped) when no `aws` is installed (Debian 12: package awscli; tools/deps.sh).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sluiceproto as sp  # noqa: E402


def aws_binary():
    # Debian's awscli (v2) first: a user's PATH may hold an older v1 shim.
    for p in ("/usr/bin/aws", shutil.which("aws")):
        if p and os.access(p, os.X_OK):
            return p
    return None


AWS = aws_binary()


class Cli:
    def __init__(self, port):
        self.endpoint = "http://127.0.0.1:%d" % port
        self.home = tempfile.mkdtemp(prefix="sluice-awscli-")
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="secret",
                        AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="", HOME=self.home,
                        AWS_CONFIG_FILE=os.path.join(self.home, "config"),
                        AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.home, "credentials"),
                        AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
        v = subprocess.run([AWS, "--version"], capture_output=True, text=True).stdout
        self.v2 = v.startswith("aws-cli/2")

    def run(self, *args):
        cmd = [AWS, "--endpoint-url", self.endpoint, "--output", "json", "kinesis"] + list(args)
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)

    def ok(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else None

    def err(self, error_type, *args):
        p = self.run(*args)
        assert p.returncode != 0, (args, "succeeded, expected", error_type)
        assert "(%s)" % error_type in p.stderr, (args, error_type, p.stderr)
        return p.stderr

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


def records_of(cli, stream, shard, it_type, *extra):
    it = cli.ok("get-shard-iterator", "--stream-name", stream, "--shard-id", shard,
                "--shard-iterator-type", it_type, *extra)["ShardIterator"]
    out = []
    for _ in range(50):
        r = cli.ok("get-records", "--shard-iterator", it)
        assert isinstance(r["MillisBehindLatest"], int)
        out += r["Records"]
        it = r.get("NextShardIterator")
        if not r["Records"] or not it:
            break
    return out


def data_of(rec):
    return base64.b64decode(rec["Data"]).decode()


def test_cli_end_to_end():
    with sp.Server() as srv:
        cli = Cli(srv.http_port())
        try:
            run_cli(cli, srv)
        finally:
            cli.cleanup()


def run_cli(cli, srv):
    S = "cli1"
    cli.ok("create-stream", "--stream-name", S, "--shard-count", "2")
    cli.err("ResourceInUseException", "create-stream", "--stream-name", S, "--shard-count", "1")
    assert S in cli.ok("list-streams")["StreamNames"]
    d = cli.ok("describe-stream", "--stream-name", S)["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE" and len(d["Shards"]) == 2, d
    s = cli.ok("describe-stream-summary", "--stream-name", S)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 2 and s["RetentionPeriodHours"] == 24, s
    shards = cli.ok("list-shards", "--stream-name", S)["Shards"]
    assert [x["ShardId"] for x in shards] == ["shardId-000000000000", "shardId-000000000001"]

    # put: one record (raw text in v2 needs --cli-binary-format), then a batch from a file
    fmt = ["--cli-binary-format", "raw-in-base64-out"] if cli.v2 else []
    one = cli.ok("put-record", "--stream-name", S, "--partition-key", "pk", "--data", "hello",
                 "--explicit-hash-key", "0", *fmt)
    assert one["ShardId"] == "shardId-000000000000", one
    recs = [{"Data": base64.b64encode(("cli-%d" % i).encode()).decode(),
             "PartitionKey": "k%d" % i} for i in range(200)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(recs, f)
        batch_file = f.name
    try:
        pr = cli.ok("put-records", "--stream-name", S, "--records", "file://" + batch_file)
    finally:
        os.unlink(batch_file)
    assert pr["FailedRecordCount"] == 0 and len(pr["Records"]) == 200, pr
    put = {0: [("pk", "hello", one["SequenceNumber"])], 1: []}
    for i, r in enumerate(pr["Records"]):
        put[int(r["ShardId"][8:])].append(("k%d" % i, "cli-%d" % i, r["SequenceNumber"]))

    # every iterator type
    for shard in (0, 1):
        sid = "shardId-%012d" % shard
        got = records_of(cli, S, sid, "TRIM_HORIZON")
        assert [(r["PartitionKey"], data_of(r), r["SequenceNumber"]) for r in got] == put[shard]
    sid0, p0 = "shardId-000000000000", put[0]
    got = records_of(cli, S, sid0, "AT_SEQUENCE_NUMBER", "--starting-sequence-number", p0[3][2])
    assert got[0]["SequenceNumber"] == p0[3][2] and len(got) == len(p0) - 3
    got = records_of(cli, S, sid0, "AFTER_SEQUENCE_NUMBER", "--starting-sequence-number",
                     p0[3][2])
    assert got[0]["SequenceNumber"] == p0[4][2]
    got = records_of(cli, S, sid0, "AT_TIMESTAMP", "--timestamp", str(int(time.time()) - 3600))
    assert len(got) == len(p0)
    latest = cli.ok("get-shard-iterator", "--stream-name", S, "--shard-id", sid0,
                    "--shard-iterator-type", "LATEST")["ShardIterator"]
    assert cli.ok("get-records", "--shard-iterator", latest)["Records"] == []
    cli.ok("put-record", "--stream-name", S, "--partition-key", "pk", "--data", "late",
           "--explicit-hash-key", "5", *fmt)
    late = cli.ok("get-records", "--shard-iterator", latest)["Records"]
    assert [data_of(r) for r in late] == ["late"], late

    # cross-protocol: native writes, CLI reads; CLI writes, native reads
    c = srv.client()
    res = c.produce(S, [("nat", "from-native", 0)])
    assert res[0][0] == 0 and res[0][1] == 0, res
    got = records_of(cli, S, sid0, "AT_SEQUENCE_NUMBER", "--starting-sequence-number",
                     str(res[0][2]))
    assert data_of(got[0]) == "from-native" and got[0]["PartitionKey"] == "nat"
    native = c.read_all(S, 1)
    assert [(r["key"].decode(), r["data"].decode(), str(r["seq"])) for r in native] == put[1]

    # retention and tags (and the native view of them)
    cli.ok("increase-stream-retention-period", "--stream-name", S, "--retention-period-hours",
           "72")
    assert c.describe_stream(S)["retention_ms"] == 72 * 3600 * 1000
    cli.err("InvalidArgumentException", "decrease-stream-retention-period", "--stream-name", S,
            "--retention-period-hours", "100")
    cli.ok("decrease-stream-retention-period", "--stream-name", S, "--retention-period-hours",
           "24")
    cli.ok("add-tags-to-stream", "--stream-name", S, "--tags", "team=data,env=ci")
    tags = cli.ok("list-tags-for-stream", "--stream-name", S)["Tags"]
    assert tags == [{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "ci"}], tags
    cli.ok("remove-tags-from-stream", "--stream-name", S, "--tag-keys", "team")
    assert cli.ok("list-tags-for-stream", "--stream-name", S)["Tags"] == [
        {"Key": "env", "Value": "ci"}]
    assert cli.ok("describe-limits")["OpenShardCount"] >= 2

    # resharding: validation and mapping
    cli.err("InvalidArgumentException", "split-shard", "--stream-name", S, "--shard-to-split",
            sid0, "--new-starting-hash-key", "0")
    cli.err("InvalidArgumentException", "update-shard-count", "--stream-name", S,
            "--target-shard-count", "9", "--scaling-type", "UNIFORM_SCALING")
    cli.err("ResourceNotFoundException", "merge-shards", "--stream-name", S, "--shard-to-merge",
            sid0, "--adjacent-shard-to-merge", "shardId-000000000009")
    # resharding for real: split shard 0, merge its children, scale 2 -> 3; a record put after
    # each lands in an open shard, and the closed ones read to their end
    cli.ok("split-shard", "--stream-name", S, "--shard-to-split", sid0,
           "--new-starting-hash-key", str(1 << 126))
    cli.err("InvalidArgumentException", "split-shard", "--stream-name", S, "--shard-to-split",
            sid0, "--new-starting-hash-key", str(1 << 125))
    after_split = cli.ok("put-record", "--stream-name", S, "--partition-key", "pk",
                         "--data", "after-split", "--explicit-hash-key", "5", *fmt)
    assert after_split["ShardId"] == "shardId-000000000002", after_split
    assert int(after_split["SequenceNumber"]) > int(p0[-1][2])
    cli.ok("merge-shards", "--stream-name", S, "--shard-to-merge", "shardId-000000000002",
           "--adjacent-shard-to-merge", "shardId-000000000003")
    u = cli.ok("update-shard-count", "--stream-name", S, "--target-shard-count", "3",
               "--scaling-type", "UNIFORM_SCALING")
    assert u["CurrentShardCount"] == 2 and u["TargetShardCount"] == 3, u
    shards = cli.ok("list-shards", "--stream-name", S)["Shards"]
    opened = [x for x in shards if "EndingSequenceNumber" not in x["SequenceNumberRange"]]
    assert len(opened) == 3, shards
    by_id = {x["ShardId"]: x for x in shards}
    assert by_id["shardId-000000000004"]["ParentShardId"] == "shardId-000000000002"
    assert by_id["shardId-000000000004"]["AdjacentParentShardId"] == "shardId-000000000003"
    # the closed parent: every record, then no next iterator
    it = cli.ok("get-shard-iterator", "--stream-name", S, "--shard-id", sid0,
                "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    seen = []
    for _ in range(20):
        r = cli.ok("get-records", "--shard-iterator", it)
        seen += r["Records"]
        it = r.get("NextShardIterator")
        if not it:
            break
    assert it is None, "a closed shard read to its end has no NextShardIterator"
    assert len(seen) == len(p0) + 2, (len(seen), len(p0))  # + "late" and "from-native"
    got = records_of(cli, S, "shardId-000000000002", "TRIM_HORIZON")
    assert [data_of(r) for r in got] == ["after-split"], got
    lim = cli.ok("describe-limits")
    assert lim["OpenShardCount"] >= 3, lim

    # errors
    cli.err("ResourceNotFoundException", "describe-stream", "--stream-name", "nope")
    cli.err("ResourceNotFoundException", "put-record", "--stream-name", "nope",
            "--partition-key", "k", "--data", "eA==")
    cli.err("InvalidArgumentException", "get-records", "--shard-iterator", "AAAA")
    cli.err("ValidationException", "create-stream", "--stream-name", "bad name",
            "--shard-count", "1")

    cli.ok("delete-stream", "--stream-name", S)
    cli.err("ResourceNotFoundException", "describe-stream-summary", "--stream-name", S)


def test_cli_signs_with_the_auth_token():
    root = tempfile.mkdtemp(prefix="sluice-cli-token-")
    token = os.path.join(root, "token")
    with open(token, "w") as f:
        f.write("cli-token-1\n")
    try:
        with sp.Server(args=["--auth-token-file", token]) as srv:
            cli = Cli(srv.http_port())
            try:
                cli.env["AWS_SECRET_ACCESS_KEY"] = "cli-token-1"
                cli.ok("create-stream", "--stream-name", "tok", "--shard-count", "1")
                assert cli.ok("list-streams")["StreamNames"] == ["tok"]
                cli.env["AWS_SECRET_ACCESS_KEY"] = "not-the-token"
                cli.err("InvalidSignatureException", "list-streams")
            finally:
                cli.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if not AWS:
        print("skipped: no aws CLI installed (Debian: apt-get install awscli)")
        sys.exit(77)
    sp.run_tests(sp.collect(globals()), time_limit=280)
