#!/usr/bin/env python3
"""Optional authentication: with --auth-token-file, every request but AUTH needs a connection
that sent the right token. A missing or wrong token gets `unauthorized` (-5015) and is counted in
sluice_auth_failures_total; the right token works. The comparison is constant-time in the token's
content (server.c token_equal), which a test cannot measure reliably; here: near misses (a prefix,
one byte longer, one byte changed) all fail. The sluice CLI with --auth-token-file works, without
it fails with one clear line."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_util as fu  # noqa: E402
import sluiceproto as sp  # noqa: E402

TOKEN = "s3cret-token-0123456789abcdef"
srv = None
tmp = None
failures = {"n": 0}  # the requests this test expects to be counted as auth failures


def auth_body(token):
    return sp.str16(token)


def expect_unauthorized(c, opcode, body=b""):
    try:
        c.call(opcode, body)
    except sp.SluiceError as e:
        assert e.status == sp.CODE["unauthorized"] == -5015, e
        failures["n"] += 1
        return e.message
    raise AssertionError("opcode 0x%02x succeeded without a valid token" % opcode)


def auth_failures():
    status, body = sp.http_get(srv.http_port(), "/metrics")
    assert status == 200
    return fu.parse_metrics(body.decode())["sluice_auth_failures_total"]


def test_missing_token_refused():
    c = srv.client()
    msg = expect_unauthorized(c, sp.OP_PING)
    assert "AUTH" in msg, msg
    expect_unauthorized(c, sp.OP_LIST)
    expect_unauthorized(c, sp.OP_CREATE, sp.str8("nope") + b"\x01\0\0\0" + b"\0" * 8)
    expect_unauthorized(c, sp.OP_PRODUCE, c.produce_body("auth", [("k", b"v")]))
    c.close()


def test_wrong_tokens_refused():
    c = srv.client()
    for bad in ["", "x", TOKEN[:-1], TOKEN + "x", TOKEN[:-1] + "X", TOKEN.upper(),
                "\0" * len(TOKEN)]:
        expect_unauthorized(c, sp.OP_AUTH, auth_body(bad))
        expect_unauthorized(c, sp.OP_PING)  # still not authenticated
    c.close()


def test_right_token_works():
    c = srv.client()
    c.call(sp.OP_AUTH, auth_body(TOKEN))
    c.ping()
    c.create_stream("auth", 2)
    (st, sh, seq), = c.produce("auth", [("k", b"v")])
    assert st == 0
    assert c.read("auth", sh, sp.POS_AT_SEQ, seq)["records"][0]["data"] == b"v"
    c.close()


def test_failures_counted():
    assert auth_failures() == failures["n"], (auth_failures(), failures["n"])


def cli(*args):
    argv = [os.path.join(sp.build_dir(), "tools", "cli", "sluice"),
            "--server", "127.0.0.1:%d" % srv.port] + list(args)
    env = dict(os.environ)
    env.pop("SLUICE_AUTH_TOKEN", None)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                          env=env)


def test_cli_with_and_without_token():
    if not os.path.exists(os.path.join(sp.build_dir(), "tools", "cli", "sluice")):
        print("  (the sluice CLI is not built: skipped)")
        return
    tok = os.path.join(tmp, "cli.token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    p = cli("--auth-token-file", tok, "stream", "list")
    assert p.returncode == 0, p.stderr
    assert b"auth" in p.stdout.split(), p.stdout
    before = auth_failures()
    p = cli("stream", "list")
    err = p.stderr.decode().strip()
    assert p.returncode != 0 and p.stdout == b"", (p.returncode, p.stdout)
    assert len(err.splitlines()) == 1 and err.startswith("sluice: "), err
    assert "unauthorized" in err or "token" in err, err
    wrong = os.path.join(tmp, "wrong.token")
    with open(wrong, "w") as f:
        f.write("wrong\n")
    p = cli("--auth-token-file", wrong, "stream", "list")
    err2 = p.stderr.decode().strip()
    assert p.returncode != 0 and len(err2.splitlines()) == 1, err2
    assert auth_failures() > before
    print("  cli without token: %s" % err)


def test_empty_token_file_refused_at_start():
    empty = os.path.join(tmp, "empty.token")
    open(empty, "w").close()
    s = sp.Server(args=["--auth-token-file", empty])
    try:
        rc, _ = s.start_expect_failure()
        assert rc != 0 and "is empty" in s.log_tail(3), (rc, s.log_tail(3))
    finally:
        s.cleanup()


def test_token_longer_than_the_limit_refused_at_start():
    """The server keeps at most 511 bytes of token: a longer one is refused, not cut."""
    at_limit = os.path.join(tmp, "511.token")
    with open(at_limit, "w") as f:
        f.write("t" * 511 + "\n")
    s = sp.Server(args=["--auth-token-file", at_limit])
    try:
        s.start()
        c = s.client()
        c.call(sp.OP_AUTH, auth_body("t" * 511))
        c.ping()
        c.close()
    finally:
        s.cleanup()
    too_long = os.path.join(tmp, "512.token")
    with open(too_long, "w") as f:
        f.write("t" * 512 + "\n")
    s = sp.Server(args=["--auth-token-file", too_long])
    try:
        rc, _ = s.start_expect_failure()
        assert rc != 0 and "longer than 511 bytes" in s.log_tail(3), (rc, s.log_tail(3))
    finally:
        s.cleanup()


if __name__ == "__main__":
    tmp = tempfile.mkdtemp(prefix="sluice-auth-")
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    try:
        srv = sp.Server(args=["--auth-token-file", token_file]).start()
        sp.run_tests(sp.collect(globals()), time_limit=60)
    finally:
        if srv:
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
