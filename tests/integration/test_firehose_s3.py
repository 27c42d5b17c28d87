#!/usr/bin/env python3
"""Firehose to s3:// (s3rver on loopback), end to end, with the S3 server going away and back.

s3rver (tests/node_modules, installed by tools/test) runs on a free 127.0.0.1 port with its own
folder and bucket; sluiced runs with AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER in its
environment. The objects are listed and fetched with an independent client - curl's own SigV4
(`curl --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER`), ListObjectsV2 parsed with
xml.etree - then decompressed with `zstd -dc` and checked like the file:// test does
(firehose_util.verify_archive: exactly once, contiguous ranges, keys as documented).

  - produce, FIREHOSE_FLUSH, everything arrives under s3://BUCKET/PREFIX/;
  - credentials from a credentials file + profile (wrong ones: 403, counted, not retried into
    success; right ones: stored);
  - s3rver stopped (SIGTERM to its PID) while records keep coming: describe shows
    upload_failures > 0 and the error; s3rver restarted on the same port and folder: everything
    arrives, exactly once.
Exits 77 (skipped) when node, s3rver, curl or zstd is missing.
"""
import collections
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import firehose_util as fu  # noqa: E402
import sluiceproto as sp  # noqa: E402

MIB = 1 << 20
BUCKET = "sluice-fh"
PREFIX = "arch/v1"
STREAM = "fh3"
KEY_ID = SECRET = "S3RVER"
# Any namespace: AWS answers in http://s3.amazonaws.com/doc/2006-03-01/, s3rver in
# http://doc.s3.amazonaws.com/2006-03-01/.
S3NS = "{*}"
# curl 7.x's SigV4 does not add x-amz-content-sha256, which S3 requires; GETs have an empty body.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3rver:
    """s3rver on 127.0.0.1:port with data in folder; stopped by its PID."""

    def __init__(self, node, script, folder, port):
        self.node, self.script, self.folder, self.port = node, script, folder, port
        self.proc = None
        major = int(subprocess.run([node, "--version"], capture_output=True, text=True)
                    .stdout.strip().lstrip("v").split(".")[0] or 0)
        # s3rver 3 encrypts ListObjectsV2 continuation tokens with DES (OpenSSL 3's legacy provider).
        self.legacy = ["--openssl-legacy-provider"] if major >= 17 else []
        self.log_path = folder.rstrip("/") + ".log"

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.node] + self.legacy + [self.script, "-d", self.folder, "-a", "127.0.0.1",
                                             "-p", str(self.port), "--configure-bucket", BUCKET],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("s3rver did not start:\n" + open(self.log_path, errors="replace").read()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def curl(s3, path, query=""):
    url = s3.endpoint + "/" + BUCKET + "/" + urllib.parse.quote(path, safe="/-_.~")
    if query:
        url += "?" + query
    p = subprocess.run(["curl", "-sS", "-f", "--max-time", "30", "--aws-sigv4",
                        "aws:amz:us-east-1:s3", "--user", "%s:%s" % (KEY_ID, SECRET),
                        "-H", "x-amz-content-sha256: " + EMPTY_SHA256, url],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("curl %s: %s" % (url, p.stderr.decode(errors="replace")))
    return p.stdout


def list_objects(s3, prefix):
    """ListObjectsV2, every page: {key: size}."""
    out, token = {}, None
    for _ in range(1000):
        q = {"list-type": "2", "prefix": prefix, "max-keys": "50"}
        if token:
            q["continuation-token"] = token
        query = "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="-_.~"))
                         for k, v in sorted(q.items()))
        root = ET.fromstring(curl(s3, "", query))
        for c in root.findall(S3NS + "Contents"):
            out[c.find(S3NS + "Key").text] = int(c.find(S3NS + "Size").text)
        if root.findtext(S3NS + "IsTruncated") != "true":
            return out
        token = root.findtext(S3NS + "NextContinuationToken")
    raise AssertionError("ListObjectsV2 did not end")


def fetch_objects(s3, prefix):
    listed = list_objects(s3, prefix + "/")
    objs = {}
    for key, size in listed.items():
        if "/_meta/" in key:  # the stream layout (for restore), not an archive object
            continue
        blob = curl(s3, key)
        assert len(blob) == size, (key, len(blob), size)
        objs[key] = blob
    return objs


def verify(s3, c, name, produced, prefix=PREFIX):
    objs = fetch_objects(s3, prefix)
    contents = fu.stream_contents(c, STREAM, 2)
    ranges = fu.verify_archive(objs, STREAM, contents, produced, prefix=prefix)
    d = c.describe_firehose(name)
    for st in d["shards"]:
        full = ranges[st["id"]][-1][2]
        # The key as stored, or relative to the destination's prefix.
        assert st["last_object_key"] in (full, full[len(prefix) + 1:]), (st["last_object_key"], full)
    return objs, d


def test_s3_archive_and_outage():
    rng = random.Random(7)
    node = shutil.which("node")
    script = os.path.join(sp.source_dir(), "tests", "node_modules", ".bin", "s3rver")
    work = tempfile.mkdtemp(prefix="sluice-fh-s3-")
    s3 = S3rver(node, script, os.path.join(work, "s3data"), free_port())
    srv = sp.Server(env={"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
    try:
        s3.start()
        srv.start()
        c = srv.client()
        c.create_stream(STREAM, 2)
        sp.wait_until(lambda: c.describe_stream(STREAM)["status"] == 0, 10, "stream active")
        c.create_firehose("fh-s3", STREAM, "s3://%s/%s" % (BUCKET, PREFIX), endpoint=s3.endpoint,
                          region="us-east-1", buffer_bytes=MIB, buffer_interval_ms=900000,
                          max_retry_duration_ms=-1)
        d = c.describe_firehose("fh-s3")
        assert (d["dest"], d["endpoint"], d["region"], d["credentials_file"], d["profile"]) == \
            ("s3://%s/%s" % (BUCKET, PREFIX), s3.endpoint, "us-east-1", "", ""), d

        # Credentials from a file and profile: a wrong key id is refused (403) ...
        creds = os.path.join(work, "credentials")
        with open(creds, "w") as f:
            f.write("[default]\naws_access_key_id = NOPE\naws_secret_access_key = NOPE\n\n"
                    "[wrong]\naws_access_key_id = WRONGKEY\naws_secret_access_key = x\n\n"
                    "[fh]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (KEY_ID, SECRET))
        c.create_firehose("fh-badcred", STREAM, "s3://%s/bad" % BUCKET, endpoint=s3.endpoint,
                          credentials_file=creds, profile="wrong", buffer_bytes=MIB,
                          buffer_interval_ms=900000)
        c.create_firehose("fh-filecred", STREAM, "s3://%s/filecred" % BUCKET,
                          endpoint=s3.endpoint, credentials_file=creds, profile="fh",
                          buffer_bytes=MIB, buffer_interval_ms=900000, compression="none")
        d = c.describe_firehose("fh-filecred")
        assert (d["credentials_file"], d["profile"], d["compression"]) == (creds, "fh", 0), d

        recs = fu.make_records(rng, 3000)
        fu.produce_all(c, STREAM, recs)
        produced = collections.Counter((k.encode(), v) for k, v in recs)
        tips = fu.shard_tips(c, STREAM, 2)
        for n in ("fh-s3", "fh-badcred", "fh-filecred"):
            c.flush_firehose(n)
        fu.wait_archived(c, "fh-s3", tips, 20)
        fu.wait_archived(c, "fh-filecred", tips, 20)
        verify(s3, c, "fh-s3", produced)
        verify(s3, c, "fh-filecred", produced, prefix="filecred")

        def refused():
            d = c.describe_firehose("fh-badcred")
            return all(st["upload_failures"] > 0 for st in d["shards"]) and d
        d = sp.wait_until(refused, 15, "fh-badcred to fail")
        for st in d["shards"]:
            assert "403" in st["last_error"] or "InvalidAccessKeyId" in st["last_error"], st
            assert st["records_archived"] == 0 and st["objects_written"] == 0, st
        assert not list_objects(s3, "bad/"), "objects stored with wrong credentials"
        c.delete_firehose("fh-badcred")
        c.delete_firehose("fh-filecred")

        # Outage: s3rver goes away while records keep coming.
        s3.stop()
        more = fu.make_records(rng, 2000, start=100000)
        fu.produce_all(c, STREAM, more)
        produced.update((k.encode(), v) for k, v in more)
        tips = fu.shard_tips(c, STREAM, 2)
        c.flush_firehose("fh-s3")

        def failing():
            d = c.describe_firehose("fh-s3")
            return all(st["upload_failures"] >= 2 for st in d["shards"]) and d
        d = sp.wait_until(failing, 20, "uploads to fail while s3rver is down", interval=0.1)
        for st in d["shards"]:
            assert st["last_error"], st
            assert st["checkpoint"] < tips[st["id"]], ("checkpoint moved during the outage", st)
        print("  during the outage: %s" % [(st["upload_failures"], st["state"], st["last_error"])
                                            for st in d["shards"]])
        more2 = fu.make_records(rng, 500, start=200000)
        fu.produce_all(c, STREAM, more2)
        produced.update((k.encode(), v) for k, v in more2)
        tips = fu.shard_tips(c, STREAM, 2)
        s3.start()
        t0 = time.monotonic()
        c.flush_firehose("fh-s3")
        fu.wait_archived(c, "fh-s3", tips, 40, "everything to arrive after s3rver came back")
        print("  recovered %.1fs after s3rver restarted" % (time.monotonic() - t0))
        objs, d = verify(s3, c, "fh-s3", produced)
        for st in d["shards"]:
            assert st["upload_failures"] >= 2 and st["checkpoint"] == tips[st["id"]], st
        print("  objects: %d, bytes %d" % (len(objs), sum(len(b) for b in objs.values())))

        # The layout is stored next to the objects, and `sluice restore` rebuilds the stream
        # from S3 (under another name, on the same server): same layout, seqs, keys, ts, bytes.
        assert "%s/_meta/%s.json" % (PREFIX, STREAM) in list_objects(s3, PREFIX + "/_meta/")
        cli = os.path.join(sp.build_dir(), "tools", "cli", "sluice")
        if os.access(cli, os.X_OK):
            env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
            p = subprocess.run([cli, "--server", "127.0.0.1:%d" % srv.port, "restore", "--from",
                                "s3://%s/%s" % (BUCKET, PREFIX), "--endpoint", s3.endpoint,
                                "--region", "us-east-1", "--stream", STREAM, "--into",
                                "restored"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            err = p.stderr.decode(errors="replace")
            assert p.returncode == 0 and "0 gaps" in err, (p.returncode, err)
            want, got = fu.stream_contents(c, STREAM, 2), fu.stream_contents(c, "restored", 2)
            for sh in (0, 1):
                assert [(r["seq"], r["ts"], r["key"], r["data"]) for r in got[sh]] == \
                    [(r["seq"], r["ts"], r["key"], r["data"]) for r in want[sh]], sh
            print("  restored from s3: %s" % err.strip().splitlines()[-1])
    finally:
        srv.cleanup()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    missing = [what for what, ok in (
        ("node", shutil.which("node")),
        ("s3rver (tools/test installs it into tests/node_modules)",
         os.path.exists(os.path.join(sp.source_dir(), "tests", "node_modules", ".bin", "s3rver"))),
        ("curl", shutil.which("curl")), ("zstd", fu.zstd_available())) if not ok]
    if missing:
        print("skip: missing " + ", ".join(missing))
        sys.exit(77)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        os.environ.pop(k, None)
    sp.run_tests(sp.collect(globals()), time_limit=200)
