#!/usr/bin/env python3
"""Runs tests/integration/s3/test_objstore_s3 against real HTTP servers on loopback.

  run_s3_test.py TEST_BINARY

Starts, each on a free 127.0.0.1 port:
  - s3rver (npm package, installed by tools/test into tests/node_modules), with its own data folder
    and the bucket "sluice-test". s3rver checks the access key id but not SigV4 signatures;
  - a stub S3 server (below, stdlib only) that does verify SigV4 signatures with its own,
    independent implementation, and plays failures: 503, SlowDown, a hanging answer, a multipart
    upload whose parts fail (recording the abort);
and passes their endpoints to the test in the environment, together with a port nothing listens on.
Exits 77 (skipped) when node or s3rver is missing.
"""
import hashlib
import hmac
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BUCKET = "sluice-test"
STUB_KEY = "STUBKEY"
STUB_SECRET = "stub/secret+KEY"
STUB_TOKEN = "stub-session-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_s3rver(src):
    path = os.path.join(src, "tests", "node_modules", ".bin", "s3rver")
    return path if os.path.exists(path) else None


def wait_port(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def xml_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>stub</RequestId></Error>' % (code, message)).encode()


class Stub(http.server.BaseHTTPRequestHandler):
    """Path-style S3: /BUCKET/KEY. The bucket picks the behaviour."""
    protocol_version = "HTTP/1.1"
    objects = {}
    aborts = []
    auth_seen = []
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def verify_sigv4(self, body):
        """An independent SigV4 check (AWS docs, 'Signature Calculations for the Authorization
        Header'); returns an error (status, code, message) or None."""
        auth = self.headers.get("Authorization", "")
        with Stub.lock:
            Stub.auth_seen.append(auth)
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/s3/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            return 403, "AccessDenied", "bad Authorization header: " + auth
        key, date, region, signed, sig = m.groups()
        if key != STUB_KEY:
            return 403, "InvalidAccessKeyId", "unknown key"
        signed_list = signed.split(";")
        for must in ("host", "x-amz-content-sha256", "x-amz-date"):
            if must not in signed_list:
                return 403, "AccessDenied", must + " not signed"
        if self.headers.get("x-amz-security-token") != STUB_TOKEN or \
                "x-amz-security-token" not in signed_list:
            return 403, "InvalidToken", "missing or unsigned session token"
        payload = self.headers.get("x-amz-content-sha256", "")
        if payload != sha256_hex(body):
            return 400, "XAmzContentSHA256Mismatch", "payload hash mismatch"
        amz_date = self.headers.get("x-amz-date", "")
        if not amz_date.startswith(date):
            return 403, "AccessDenied", "date mismatch"
        path, _, query = self.path.partition("?")
        pairs = []
        for part in query.split("&") if query else []:
            k, _, v = part.partition("=")
            pairs.append((urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~"),
                          urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")))
        cquery = "&".join("%s=%s" % kv for kv in sorted(pairs))
        cheaders = "".join("%s:%s\n" % (h, " ".join((self.headers.get(h) or "").split()))
                           for h in signed_list)
        creq = "\n".join([self.command, path, cquery, cheaders, signed, payload])
        scope = "%s/%s/s3/aws4_request" % (date, region)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, sha256_hex(creq.encode())])
        k = ("AWS4" + STUB_SECRET).encode()
        for part in (date, region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return 403, "SignatureDoesNotMatch", "signature mismatch"
        return None

    def handle_any(self):
        body = self.body()
        path, _, query = self.path.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        if path == "/__stub/aborts":
            with Stub.lock:
                return self.send(200, ("\n".join(Stub.aborts)).encode())
        if path == "/__stub/auth":
            with Stub.lock:
                return self.send(200, (Stub.auth_seen[-1] if Stub.auth_seen else "").encode())
        parts = path.lstrip("/").split("/", 1)
        bucket, key = parts[0], urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        if bucket == "fail503":
            return self.send(503, xml_error("ServiceUnavailable", "Please reduce your rate"))
        if bucket == "slowdown":
            return self.send(503, xml_error("SlowDown", "Please reduce your request rate."))
        if bucket == "hang":
            time.sleep(3)
            return self.send(200, b"late")
        if bucket == "failpart":
            if self.command == "POST" and "uploads" in q:
                return self.send(200, b'<?xml version="1.0"?><InitiateMultipartUploadResult>'
                                      b'<Bucket>failpart</Bucket><Key>k</Key>'
                                      b'<UploadId>UP+1/x=</UploadId></InitiateMultipartUploadResult>')
            if self.command == "PUT" and "partNumber" in q:
                return self.send(500, xml_error("InternalError", "part store failed"))
            if self.command == "DELETE" and "uploadId" in q:
                with Stub.lock:
                    Stub.aborts.append("%s %s" % (key, q["uploadId"][0]))
                return self.send(204)
            return self.send(400, xml_error("InvalidRequest", "unexpected"))
        if bucket != "sigv4":
            return self.send(404, xml_error("NoSuchBucket", "The specified bucket does not exist"))
        bad = self.verify_sigv4(body)
        if bad:
            return self.send(bad[0], xml_error(bad[1], bad[2]))
        if self.command == "PUT":
            with Stub.lock:
                Stub.objects[key] = body
            return self.send(200, headers={"ETag": '"%s"' % hashlib.md5(body).hexdigest()})
        if self.command == "GET" and key:
            with Stub.lock:
                obj = Stub.objects.get(key)
            if obj is None:
                return self.send(404, xml_error("NoSuchKey", "The specified key does not exist."))
            return self.send(200, obj)
        if self.command == "GET" and q.get("list-type") == ["2"]:
            # Two pages, the token full of characters that need encoding in a query.
            prefix = q.get("prefix", [""])[0]
            keys = sorted(k for k in Stub.objects if k.startswith(prefix))
            token = "tok+/= 1&x"
            if q.get("continuation-token") == [token]:
                page, more = keys[1:], False
            elif "continuation-token" in q:
                return self.send(400, xml_error("InvalidArgument", "bad token"))
            else:
                page, more = keys[:1], len(keys) > 1
            xml = ['<?xml version="1.0" encoding="UTF-8"?>'
                   '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                   '<Name>sigv4</Name><IsTruncated>%s</IsTruncated>' % ("true" if more else "false")]
            if more:
                xml.append("<NextContinuationToken>tok+/= 1&amp;x</NextContinuationToken>")
            for k in page:
                xml.append("<Contents><Key>%s</Key><Size>%d</Size></Contents>"
                           % (k.replace("&", "&amp;").replace("<", "&lt;"), len(Stub.objects[k])))
            xml.append("</ListBucketResult>")
            return self.send(200, "".join(xml).encode())
        if self.command == "DELETE":
            with Stub.lock:
                Stub.objects.pop(key, None)
            return self.send(204)
        return self.send(400, xml_error("InvalidRequest", "unexpected"))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    if len(sys.argv) != 2:
        print("usage: run_s3_test.py TEST_BINARY", file=sys.stderr)
        return 2
    src = os.environ.get("SLUICE_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    node = shutil.which("node")
    s3rver = find_s3rver(src)
    if not node or not s3rver:
        print("skip: node or s3rver missing (tools/test installs s3rver into tests/node_modules)",
              file=sys.stderr)
        return 77

    work = tempfile.mkdtemp(prefix="sl-s3-")
    port = free_port()
    log = open(os.path.join(work, "s3rver.log"), "wb")
    # s3rver 3 encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17)
    # keeps in its legacy provider.
    node_major = int(subprocess.run([node, "--version"], capture_output=True, text=True)
                     .stdout.strip().lstrip("v").split(".")[0] or 0)
    legacy = ["--openssl-legacy-provider"] if node_major >= 17 else []
    proc = subprocess.Popen([node] + legacy + [s3rver, "-d", os.path.join(work, "data"), "-a", "127.0.0.1",
                             "-p", str(port), "--configure-bucket", BUCKET],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    stub.daemon_threads = True
    stub.handle_error = lambda request, address: None  # clients that time out on purpose
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        if not wait_port(port, proc):
            log.flush()
            sys.stderr.write(open(os.path.join(work, "s3rver.log")).read())
            print("s3rver did not start", file=sys.stderr)
            return 1
        env = dict(os.environ)
        env.update({
            "S3_ENDPOINT": "http://127.0.0.1:%d" % port,
            "S3_BUCKET": BUCKET,
            "S3_ACCESS_KEY": "S3RVER",
            "S3_SECRET": "S3RVER",
            "S3_STUB_ENDPOINT": "http://127.0.0.1:%d" % stub.server_address[1],
            "S3_STUB_KEY": STUB_KEY,
            "S3_STUB_SECRET": STUB_SECRET,
            "S3_STUB_TOKEN": STUB_TOKEN,
            "S3_DEAD_ENDPOINT": "http://127.0.0.1:%d" % free_port(),
            "S3_WORK_DIR": work,
        })
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        return subprocess.call([sys.argv[1]], env=env)
    finally:
        stub.shutdown()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
