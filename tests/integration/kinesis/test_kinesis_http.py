#!/usr/bin/env python3
"""The gateway's HTTP behaviour with a hand-driven client (stdlib only): request ids, error
shapes and types, body and head limits, Expect: 100-continue, keep-alive and pipelining, the
connection limit, /healthz and /metrics on the same port, HTTP/2 prior knowledge (curl, when it
has HTTP/2), the server's auth token, and records crossing between the native protocol and the
Kinesis API in both directions."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sluiceproto as sp  # noqa: E402

TARGET = "Kinesis_20131202."


def sigv4(headers, body, key, secret, amz_date=None, region="us-east-1"):
    """An independent SigV4 signer (AWS' documented algorithm, stdlib only): returns the
    X-Amz-Date and Authorization headers for a POST / with these headers and body."""
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    h = {k.lower(): v.strip() for k, v in headers.items()}
    h["x-amz-date"] = amz_date
    names = sorted(h)
    canonical = "\n".join(["POST", "/", "", "".join("%s:%s\n" % (n, h[n]) for n in names),
                           ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/kinesis/aws4_request" % (amz_date[:8], region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "kinesis", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return ["X-Amz-Date: " + amz_date,
            "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
            % (key, scope, ";".join(names), sig)]


def raw_request(op, body, extra_headers=(), method="POST", path="/", sign=None):
    """sign: (access key id, secret[, X-Amz-Date]) to add a SigV4 signature."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1",
            "Content-Type: application/x-amz-json-1.1", "Content-Length: %d" % len(data)]
    if op:
        head.append("X-Amz-Target: " + TARGET + op)
    if sign:
        signed = {"Host": "127.0.0.1", "Content-Type": "application/x-amz-json-1.1"}
        if op:
            signed["X-Amz-Target"] = TARGET + op
        head += sigv4(signed, data, *sign)
    head += list(extra_headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class Conn:
    """One HTTP/1.1 connection; responses are parsed off a buffer, so pipelined answers that
    arrive in one read are not lost."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a whole response: %r" % self.buf)
        self.buf += chunk

    def read_response(self):
        """(status, headers dict (lower-case names), body bytes)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (ln.split(":", 1) for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        self.buf = rest
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def call(self, op, body, extra_headers=(), sign=None):
        self.sock.sendall(raw_request(op, body, extra_headers, sign=sign))
        return self.response()

    def response(self):
        status, headers, body = self.read_response()
        return status, headers, json.loads(body) if body else None

    def closed_by_peer(self):
        try:
            return self.sock.recv(10) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def expect_error(conn, op, body, error_type, status=400):
    st, h, out = conn.call(op, body)
    assert st == status, (op, st, out)
    assert out["__type"] == error_type, (op, out)
    assert out["message"], out
    assert h.get("x-amzn-requestid"), h
    assert h["content-type"] == "application/x-amz-json-1.1", h
    return out


def test_request_ids_and_error_types():
    with sp.Server() as srv:
        k = Conn(srv.http_port())
        st, h, out = k.call("CreateStream", {"StreamName": "h1", "ShardCount": 1})
        assert st == 200 and out is None, (st, out)
        rid = h["x-amzn-requestid"]
        st, h2, _ = k.call("ListStreams", {})
        assert st == 200 and h2["x-amzn-requestid"] != rid
        expect_error(k, "NoSuchOperation", {}, "UnknownOperationException")
        expect_error(k, "ListStreams", b"{not json", "SerializationException")
        expect_error(k, "ListStreams", b"[1,2]", "SerializationException")
        expect_error(k, "DescribeStream", {}, "ValidationException")
        expect_error(k, "DescribeStream", {"StreamName": 7}, "SerializationException")
        m = expect_error(k, "DescribeStream", {"StreamName": "a/b"}, "ValidationException")
        assert "streamName" in m["message"] and "[a-zA-Z0-9_.-]+" in m["message"], m
        m = expect_error(k, "DescribeStream", {"StreamName": "nope"}, "ResourceNotFoundException")
        assert m["message"] == "Stream nope under account 000000000000 not found.", m
        expect_error(k, "CreateStream", {"StreamName": "h1", "ShardCount": 1},
                     "ResourceInUseException")
        expect_error(k, "PutRecord", {"StreamName": "h1", "Data": "not base64!",
                                      "PartitionKey": "k"}, "SerializationException")
        expect_error(k, "PutRecord", {"StreamName": "h1", "Data": "eA==", "PartitionKey": ""},
                     "ValidationException")
        expect_error(k, "PutRecords", {"StreamName": "h1", "Records": "x"},
                     "SerializationException")
        expect_error(k, "GetRecords", {"ShardIterator": "x" * 600}, "ValidationException")
        expect_error(k, "GetRecords", {"ShardIterator": "AAAA", "Limit": 10001},
                     "ValidationException")
        expect_error(k, "ListShards", {"StreamName": "h1", "ShardFilter": {"Type": "NOPE"}},
                     "ValidationException")
        expect_error(k, "UpdateShardCount", {"StreamName": "h1", "TargetShardCount": 2,
                                             "ScalingType": "WHATEVER"}, "ValidationException")
        # missing target header
        k.sock.sendall(raw_request(None, {}))
        st, h, out = k.response()
        assert st == 400 and out["__type"] == "UnknownOperationException", out
        k.close()


def test_overlapping_reshards_get_resource_in_use():
    """Reshards of one stream sent at the same moment on separate connections: each answers 200
    (it ran, or found the stream at its target already) or 400 ResourceInUseException (another
    one was running), never an internal failure; the stream ends at the target each time."""
    with sp.Server() as srv:
        port = srv.http_port()
        k = Conn(port)
        st, _, out = k.call("CreateStream", {"StreamName": "busy", "ShardCount": 8})
        assert st == 200, out
        conns = [Conn(port) for _ in range(4)]
        in_use = 0
        for rnd in range(12):
            target = 16 if rnd % 2 == 0 else 8
            body = {"StreamName": "busy", "TargetShardCount": target,
                    "ScalingType": "UNIFORM_SCALING"}
            for c in conns:  # all requests on the wire before any answer is read
                c.sock.sendall(raw_request("UpdateShardCount", body))
            for c in conns:
                st, h, out = c.response()
                if st == 400:
                    assert out["__type"] == "ResourceInUseException", out
                    assert "busy" in out["message"] and "UPDATING" in out["message"], out
                    assert h.get("x-amzn-requestid"), h
                    in_use += 1
                else:
                    assert st == 200, (st, out)
                    assert out["TargetShardCount"] == target, out
            st, _, out = k.call("DescribeStreamSummary", {"StreamName": "busy"})
            assert st == 200 and out["StreamDescriptionSummary"]["OpenShardCount"] == target, out
            if in_use and rnd >= 3:
                break
        assert in_use > 0, "no two of %d rounds of 4 simultaneous reshards overlapped" % (rnd + 1)
        for c in conns + [k]:
            c.close()


def test_list_shards_time_filters_follow_the_reshards():
    """ListShards' ShardFilter types against the shards' creation and closing times: a stream of
    2 shards whose shard 0 is split later, listed as of before and after the split, with and
    without pagination."""
    with sp.Server() as srv:
        k = Conn(srv.http_port())

        def listed(flt, page=None):
            ids, body = [], {"StreamName": "tf", "ShardFilter": flt}
            if page:
                body["MaxResults"] = page
            while True:
                st, _, out = k.call("ListShards", body)
                assert st == 200, out
                ids += [int(x["ShardId"].split("-")[1]) for x in out["Shards"]]
                if "NextToken" not in out:
                    return ids
                body = {"NextToken": out["NextToken"], "MaxResults": page or 100}

        st, _, out = k.call("CreateStream", {"StreamName": "tf", "ShardCount": 2})
        assert st == 200, out
        time.sleep(0.05)
        before = time.time()
        time.sleep(0.05)
        st, _, out = k.call("SplitShard", {"StreamName": "tf",
                                           "ShardToSplit": "shardId-000000000000",
                                           "NewStartingHashKey": str(2 ** 126)})
        assert st == 200, out
        time.sleep(0.05)
        after = time.time()
        assert listed({"Type": "AT_LATEST"}) == [1, 2, 3]
        assert listed({"Type": "FROM_TRIM_HORIZON"}) == [0, 1, 2, 3]
        assert listed({"Type": "AT_TRIM_HORIZON"}) == [0, 1]  # the stream is younger than that
        assert listed({"Type": "AT_TIMESTAMP", "Timestamp": before}) == [0, 1]
        assert listed({"Type": "AT_TIMESTAMP", "Timestamp": after}) == [1, 2, 3]
        assert listed({"Type": "FROM_TIMESTAMP", "Timestamp": before}) == [0, 1, 2, 3]
        assert listed({"Type": "FROM_TIMESTAMP", "Timestamp": after}) == [1, 2, 3]
        assert listed({"Type": "AT_TIMESTAMP", "Timestamp": after}, page=1) == [1, 2, 3]
        assert listed({"Type": "AT_TIMESTAMP", "Timestamp": before}, page=1) == [0, 1]
        k.close()


def test_health_metrics_and_methods_on_the_same_port():
    with sp.Server() as srv:
        port = srv.http_port()
        st, body = sp.http_get(port, "/healthz")
        assert st == 200 and body.strip() == b"ok", (st, body)
        st, body = sp.http_get(port, "/metrics")
        assert st == 200 and b"sluice_uptime_seconds" in body
        st, _ = sp.http_get(port, "/nope")
        assert st == 404
        k = Conn(port)
        k.sock.sendall(raw_request("ListStreams", {}, method="PUT"))
        st, _, out = k.read_response()
        assert st == 405, st
        k.close()


def test_limits_expect_continue_keepalive_pipelining():
    with sp.Server() as srv:
        port = srv.http_port()
        k = Conn(port)
        k.call("CreateStream", {"StreamName": "lim", "ShardCount": 1})
        # Expect: 100-continue: the interim answer comes before the body is sent
        body = json.dumps({"StreamName": "lim", "Records": [
            {"Data": base64.b64encode(b"x" * 1000).decode(), "PartitionKey": "p%d" % i}
            for i in range(100)]}).encode()
        req = raw_request("PutRecords", body, ["Expect: 100-continue"])
        head, data = req.split(b"\r\n\r\n", 1)
        k.sock.sendall(head + b"\r\n\r\n")
        interim = k.sock.recv(64)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        k.sock.sendall(data)
        st, _, out = k.response()
        assert st == 200 and out["FailedRecordCount"] == 0, out
        # keep-alive + pipelining: three requests in one write, three answers in order
        k.sock.sendall(raw_request("DescribeStreamSummary", {"StreamName": "lim"}) +
                       raw_request("DescribeStreamSummary", {"StreamName": "nope"}) +
                       raw_request("ListStreams", {}))
        answers = [k.response() for _ in range(3)]
        assert answers[0][0] == 200, answers[0]
        assert answers[0][2]["StreamDescriptionSummary"]["StreamName"] == "lim"
        answers = [(st, out) for st, _, out in answers[1:]]
        assert answers[0][0] == 400 and answers[0][1]["__type"] == "ResourceNotFoundException"
        assert answers[1][0] == 200 and "lim" in answers[1][1]["StreamNames"]
        k.close()
        # a body over 10 MiB is refused from its Content-Length, before it is sent
        k = Conn(port)
        k.sock.sendall(("POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: %sPutRecords\r\n"
                        "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                        % (TARGET, 11 << 20)).encode())
        st, _, body = k.read_response()
        assert st == 413, st
        assert k.closed_by_peer(), "connection closed after 413"
        k.close()
        # a head over 64 KiB: 431, connection closed
        k = Conn(port)
        k.sock.sendall(b"POST / HTTP/1.1\r\nX-Big: " + b"a" * (70 << 10) + b"\r\n\r\n")
        st, _, _ = k.read_response()
        assert st == 431, st
        assert k.closed_by_peer()
        k.close()
        # garbage instead of HTTP: 400, connection closed; the server carries on
        k = Conn(port)
        k.sock.sendall(b"\x16\x03\x01 definitely not http\r\n\r\n")
        st, _, _ = k.read_response()
        assert st == 400, st
        assert k.closed_by_peer()
        k.close()
        assert sp.http_get(port, "/healthz")[0] == 200


def test_connection_limit():
    with sp.Server(args=["--http-max-connections", "2"]) as srv:
        port = srv.http_port()
        a, b = Conn(port), Conn(port)
        assert a.call("ListStreams", {})[0] == 200
        assert b.call("ListStreams", {})[0] == 200
        c = Conn(port)
        try:
            c.sock.sendall(raw_request("ListStreams", {}))
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed even before the request went out
        assert c.closed_by_peer(), "a third connection is closed at once"
        c.close()
        a.close()
        def slot_free():
            try:
                return sp.http_get(port, "/healthz")[0] == 200
            except (OSError, IndexError, ValueError):  # still full: closed at accept
                return False
        sp.wait_until(slot_free, 10, "a free slot")
        b.close()


def test_http2_prior_knowledge_with_curl():
    curl = shutil.which("curl")
    if not curl or "HTTP2" not in subprocess.run([curl, "-V"], capture_output=True,
                                                 text=True).stdout:
        print("  (curl without HTTP/2: covered by the SDK test)")
        return
    with sp.Server() as srv:
        url = "http://127.0.0.1:%d/" % srv.http_port()
        base = [curl, "-s", "--http2-prior-knowledge", "-D", "-", "-H",
                "Content-Type: application/x-amz-json-1.1"]
        p = subprocess.run(base + ["-H", "X-Amz-Target: %sCreateStream" % TARGET, "-d",
                                   '{"StreamName":"h2s","ShardCount":1}', url],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.startswith("HTTP/2 200"), p.stdout
        assert "x-amzn-requestid:" in p.stdout.lower()
        p = subprocess.run(base + ["-H", "X-Amz-Target: %sDescribeStream" % TARGET, "-d",
                                   '{"StreamName":"nope"}', url],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.startswith("HTTP/2 400") and "ResourceNotFoundException" in p.stdout
        p = subprocess.run([curl, "-s", "--http2-prior-knowledge", url + "healthz"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.strip() == "ok", p.stdout


def test_cross_protocol_and_auth_token():
    root = tempfile.mkdtemp(prefix="sluice-kin-auth-")
    token = os.path.join(root, "token")
    with open(token, "w") as f:
        f.write("s3cret-token\n")
    try:
        with sp.Server(args=["--auth-token-file", token]) as srv:
            c = srv.client()
            c.call(sp.OP_AUTH, sp.str16("s3cret-token"))
            c.create_stream("x1", 1)
            res = c.produce("x1", [("nk", b"\x00\xffbinary"), ("nk", "second")])
            k = Conn(srv.http_port())
            tok = ("ANYKEYID", "s3cret-token")  # the token is every access key's secret
            st, _, it = k.call("GetShardIterator", {"StreamName": "x1",
                                                    "ShardId": "shardId-000000000000",
                                                    "ShardIteratorType": "TRIM_HORIZON"},
                               sign=tok)
            assert st == 200, it
            st, _, out = k.call("GetRecords", {"ShardIterator": it["ShardIterator"]}, sign=tok)
            assert st == 200, out
            got = [(r["PartitionKey"], base64.b64decode(r["Data"]), r["SequenceNumber"])
                   for r in out["Records"]]
            assert got == [("nk", b"\x00\xffbinary", str(res[0][2])),
                           ("nk", b"second", str(res[1][2]))], got
            ts = out["Records"][0]["ApproximateArrivalTimestamp"]
            assert isinstance(ts, float) and abs(ts - time.time()) < 60, ts
            st, _, out = k.call("PutRecords", {"StreamName": "x1", "Records": [
                {"Data": base64.b64encode(b"from-http-%d" % i).decode(),
                 "PartitionKey": "hk"} for i in range(3)]}, sign=tok)
            assert st == 200 and out["FailedRecordCount"] == 0, out
            native = c.read_all("x1", 0)
            assert [r["data"] for r in native[2:]] == [b"from-http-%d" % i for i in range(3)]
            assert [str(r["seq"]) for r in native[2:]] == [
                r["SequenceNumber"] for r in out["Records"]]
            k.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_shard_limits_when_switched_on():
    with sp.Server(args=["--kinesis-shard-limits", "on"]) as srv:
        k = Conn(srv.http_port())
        k.call("CreateStream", {"StreamName": "lim1", "ShardCount": 1})
        batch = {"StreamName": "lim1", "Records": [
            {"Data": base64.b64encode(b"r%d" % i).decode(), "PartitionKey": "p%d" % i}
            for i in range(500)]}
        ok = 0
        for _ in range(2):  # 1,000 records: one second's budget of the shard
            st, _, out = k.call("PutRecords", batch)
            assert st == 200 and out["FailedRecordCount"] == 0, out
            ok += 500
        st, _, out = k.call("PutRecords", batch)
        assert st == 200 and out["FailedRecordCount"] >= 400, out["FailedRecordCount"]
        failed = [r for r in out["Records"] if "ErrorCode" in r]
        assert failed[0]["ErrorCode"] == "ProvisionedThroughputExceededException", failed[0]
        assert "Rate exceeded for shard shardId-000000000000" in failed[0]["ErrorMessage"]
        ok += 500 - out["FailedRecordCount"]
        # 1 MiB/s of data per shard: 600 KiB fits once, not twice within a second
        big = {"StreamName": "lim1", "PartitionKey": "p",
               "Data": base64.b64encode(b"x" * (600 << 10)).decode()}
        st, _, out = k.call("PutRecord", big)
        assert st == 200, out
        ok += 1
        st, _, out = k.call("PutRecord", big)
        assert st == 400 and out["__type"] == "ProvisionedThroughputExceededException", out
        # refused records were not stored
        assert len(srv.client().read_all("lim1", 0)) == ok
        # reads: 5 GetRecords per second per shard
        st, _, it = k.call("GetShardIterator", {"StreamName": "lim1",
                                                "ShardId": "shardId-000000000000",
                                                "ShardIteratorType": "LATEST"})
        statuses = [k.call("GetRecords", {"ShardIterator": it["ShardIterator"]})
                    for _ in range(10)]
        throttled = [out for st, _, out in statuses if st == 400]
        assert throttled and all(o["__type"] == "ProvisionedThroughputExceededException"
                                 for o in throttled), statuses
        time.sleep(1.1)  # the budget comes back
        st, _, out = k.call("PutRecords", batch)
        assert st == 200 and out["FailedRecordCount"] == 0, out["FailedRecordCount"]
        k.close()


def test_sigv4_verification():
    root = tempfile.mkdtemp(prefix="sluice-kin-keys-")
    keys = os.path.join(root, "keys")
    with open(keys, "w") as f:
        f.write("# team keys\nAKIDAPP1 secret-one\n\nAKIDAPP2   secret-two  # ops\n")
    try:
        with sp.Server(args=["--http-access-keys", keys]) as srv:
            k = Conn(srv.http_port())
            st, _, out = k.call("ListStreams", {})
            assert st == 403 and out["__type"] == "MissingAuthenticationTokenException", out
            for key, secret in (("AKIDAPP1", "secret-one"), ("AKIDAPP2", "secret-two")):
                st, h, out = k.call("CreateStream", {"StreamName": key, "ShardCount": 1},
                                    sign=(key, secret))
                assert st == 200, out
            st, _, out = k.call("ListStreams", {}, sign=("AKIDAPP1", "secret-two"))
            assert st == 400 and out["__type"] == "InvalidSignatureException", out
            st, _, out = k.call("ListStreams", {}, sign=("AKIDNOPE", "secret-one"))
            assert st == 400 and out["__type"] == "UnrecognizedClientException", out
            old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 20 * 60))
            st, _, out = k.call("ListStreams", {}, sign=("AKIDAPP1", "secret-one", old))
            assert st == 400 and out["__type"] == "InvalidSignatureException", out
            assert "expired" in out["message"], out
            # a signed body cannot be changed: same headers, other body
            good = raw_request("ListStreams", {"Limit": 1}, sign=("AKIDAPP1", "secret-one"))
            forged = good.replace(b'{"Limit": 1}', b'{"Limit": 2}')
            k.sock.sendall(forged)
            st, _, out = k.response()
            assert st == 400 and out["__type"] == "InvalidSignatureException", out
            st, _, out = k.call("ListStreams", {}, sign=("AKIDAPP2", "secret-two"))
            assert st == 200 and out["StreamNames"] == ["AKIDAPP1", "AKIDAPP2"], out
            assert sp.http_get(srv.http_port(), "/healthz")[0] == 200  # probes need no keys
            k.close()
        # a malformed keys file stops sluiced with one line naming it
        with open(keys, "w") as f:
            f.write("only-an-id\n")
        code, _ = sp.Server(args=["--http-access-keys", keys]).start_expect_failure()
        assert code != 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sp.run_tests(sp.collect(globals()), time_limit=280)
