#!/usr/bin/env python3
"""READ with wait_ms (long poll) against a real sluiced: a parked read is answered as soon as a
record is acknowledged (LATEST is pinned to the tip it found), times out with an empty answer,
answers at once when records are already there, is answered when its stream is deleted, is
bounded (wait_ms over the limit is rejected), stays in order with pipelined requests on the same
connection, is let go when its client disconnects, and does not hold up a clean shutdown."""
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

WAIT_MAX_MS = 30000  # SL_PROTO_READ_WAIT_MS_MAX

srv = None
cli = None


def setup():
    global srv, cli
    srv = sp.Server(args=["--fsync", "group"]).start()
    cli = srv.client()
    cli.create_stream("lp", 1)


def produce_later(delay_s, stream, records):
    """Produce from another connection after delay_s; returns the thread and its result box."""
    box = {}

    def run():
        time.sleep(delay_s)
        c = srv.client()
        try:
            box["res"] = c.produce(stream, records)
            box["t"] = time.monotonic()
        finally:
            c.close()

    th = threading.Thread(target=run)
    th.start()
    return th, box


def test_wakes_on_append():
    th, box = produce_later(0.3, "lp", [(b"k", b"hello")])
    t0 = time.monotonic()
    r = cli.read("lp", 0, sp.POS_LATEST, wait_ms=10000)
    took = time.monotonic() - t0
    th.join()
    assert [x["data"] for x in r["records"]] == [b"hello"], r
    assert box["res"][0][0] == 0, box
    # Answered when the record was acknowledged, not at the end of the 10 s wait.
    assert 0.25 <= took < 5, took
    assert r["next_seq"] == r["tip"], r


def test_times_out_empty():
    tip = cli.read("lp", 0, sp.POS_LATEST)["next_seq"]
    t0 = time.monotonic()
    r = cli.read("lp", 0, sp.POS_AT_SEQ, tip, wait_ms=300)
    took = time.monotonic() - t0
    assert r["records"] == [] and r["next_seq"] == tip, r
    assert 0.28 <= took < 3, took


def test_records_there_answer_at_once():
    cli.produce("lp", [(b"k", b"a"), (b"k", b"b")])
    t0 = time.monotonic()
    r = cli.read("lp", 0, sp.POS_TRIM_HORIZON, wait_ms=20000)
    assert time.monotonic() - t0 < 2
    assert len(r["records"]) >= 3, r


def test_limits():
    for bad in (WAIT_MAX_MS + 1, 0xFFFFFFFF):
        try:
            cli.read("lp", 0, sp.POS_LATEST, wait_ms=bad)
        except sp.SluiceError as e:
            assert e.name == "invalid_argument", e
        else:
            raise AssertionError("wait_ms %d accepted" % bad)
    # A partial trailing field is a malformed request: the connection is closed.
    c = srv.client()
    body = c.read_body("lp", 0, sp.POS_LATEST) + b"\x01\x00"
    try:
        c.call(sp.OP_READ, body)
    except sp.SluiceError as e:
        assert e.name == "protocol", e
    except (ConnectionError, OSError):
        pass
    c.close()
    # wait_ms 0 and absent behave alike: an empty answer at once.
    t0 = time.monotonic()
    assert cli.read("lp", 0, sp.POS_LATEST, wait_ms=0)["records"] == []
    assert time.monotonic() - t0 < 2


def test_pipelined_answers_in_order():
    """A parked read does not let later requests on the same connection answer first."""
    c = srv.client()
    tip = c.read("lp", 0, sp.POS_LATEST)["next_seq"]
    rid1 = c.send(sp.OP_READ, c.read_body("lp", 0, sp.POS_AT_SEQ, tip, wait_ms=400))
    rid2 = c.send(sp.OP_PING)
    op, got, resp = c.recv_frame()
    # Whatever the server's order, each answer must carry its own request id.
    answers = {got: (op, resp)}
    op, got, resp = c.recv_frame()
    answers[got] = (op, resp)
    assert set(answers) == {rid1, rid2}, answers.keys()
    assert answers[rid1][0] == sp.OP_READ and answers[rid2][0] == sp.OP_PING
    assert c.parse_read(c.check(answers[rid1][1]))["records"] == []
    c.close()


def test_many_parked_then_one_append_wakes_all():
    n = 50
    clients = [srv.client() for _ in range(n)]
    tip = cli.read("lp", 0, sp.POS_LATEST)["next_seq"]
    for c in clients:
        c.send(sp.OP_READ, c.read_body("lp", 0, sp.POS_AT_SEQ, tip, wait_ms=15000))
    time.sleep(0.2)
    t0 = time.monotonic()
    cli.produce("lp", [(b"k", b"wake")])
    for c in clients:
        op, _, resp = c.recv_frame()
        r = c.parse_read(c.check(resp))
        assert [x["data"] for x in r["records"]] == [b"wake"], r
        c.close()
    assert time.monotonic() - t0 < 5


def test_deleted_stream_answers_parked():
    cli.create_stream("lp-doomed", 1)
    c = srv.client()
    c.send(sp.OP_READ, c.read_body("lp-doomed", 0, sp.POS_LATEST, wait_ms=20000))
    time.sleep(0.2)
    t0 = time.monotonic()
    cli.delete_stream("lp-doomed")
    op, _, resp = c.recv_frame()
    took = time.monotonic() - t0
    (status,) = struct.unpack_from("<i", resp)
    # Either the deletion error, or an empty answer if the read ran just before: never a hang.
    if status < 0:
        assert sp.SluiceError(status, "").name == "stream_not_found", status
    assert took < 5, took
    c.close()


def test_appends_by_another_loop_wake_parked_reads():
    """Under --fsync never the loop that receives a PRODUCE appends to shards the other loop
    owns (src/server/produce.c); the owner, which holds the parked reads, must still answer them
    with those records. 8 shards over 2 loops: whichever loop takes the producer, 4 shards are
    the other's."""
    import fault_util as fu
    never = sp.Server(args=["--fsync", "never"]).start()
    try:
        shards = 8
        c0 = never.client()
        c0.create_stream("lpx", shards)
        keys = {}
        i = 0
        while len(keys) < shards:
            k = "key-%d" % i
            keys.setdefault(sp.shard_of_key(k, shards), k)
            i += 1
        readers = []
        for sh in range(shards):
            c = never.client()
            c.send(sp.OP_READ, c.read_body("lpx", sh, sp.POS_LATEST, wait_ms=20000))
            readers.append(c)
        time.sleep(0.3)
        t0 = time.monotonic()
        res = c0.produce("lpx", [(keys[sh].encode(), b"wake-%d" % sh) for sh in range(shards)])
        assert [st for st, _, _ in res] == [0] * shards, res
        for sh, c in enumerate(readers):
            op, _, resp = c.recv_frame()
            r = c.parse_read(c.check(resp))
            assert [x["data"] for x in r["records"]] == [b"wake-%d" % sh], (sh, r)
            c.close()
        assert time.monotonic() - t0 < 5, "a parked read waited out its wait_ms"
        # Many more, pipelined on one connection: every one stored once, in order per shard.
        sent = {sh: [] for sh in range(shards)}
        for b in range(50):
            batch = [(keys[sh].encode(), b"%d-%d" % (b, sh)) for sh in range(shards)]
            c0.send(sp.OP_PRODUCE, c0.produce_body("lpx", batch))
            for sh in range(shards):
                sent[sh].append(b"%d-%d" % (b, sh))
        for _ in range(50):
            op, _, resp = c0.recv_frame()
            c0.check(resp)
        for sh in range(shards):
            got = [x["data"] for x in c0.read_all("lpx", sh)]
            assert got == [b"wake-%d" % sh] + sent[sh], (sh, got[:5])
        m = fu.parse_metrics(sp.http_get(never.http_port(), "/metrics")[1].decode())
        assert m.get("sluice_parts_appended_here_total", 0) > 0, "no direct append happened"
        c0.close()
        assert never.stop() == 0
    finally:
        never.cleanup()


def parked_reads():
    body = sp.http_get(srv.http_port(), "/metrics")[1].decode()
    m = re.search(r"^sluice_reads_parked (\d+)$", body, re.M)
    assert m, "no sluice_reads_parked on /metrics"
    return int(m.group(1))


def test_closed_connection_releases_parked_reads():
    # Reads parked for 30 s by clients that then go away are let go at once: they must not
    # hold their parked slots (and the connections) until wait_ms runs out.
    n = 20
    clients = [srv.client() for _ in range(n)]
    for c in clients:
        c.send(sp.OP_READ, c.read_body("lp", 0, sp.POS_LATEST, wait_ms=WAIT_MAX_MS))
    deadline = time.monotonic() + 5
    while parked_reads() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert parked_reads() == n, parked_reads()
    for c in clients:
        c.close()
    t0 = time.monotonic()
    while parked_reads() > 0 and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert parked_reads() == 0, ("parked reads of closed connections", parked_reads())
    assert time.monotonic() - t0 < 5, "released only after %.1f s" % (time.monotonic() - t0)
    # The server still answers parked reads of live clients as before.
    assert cli.read("lp", 0, sp.POS_LATEST, wait_ms=0)["records"] == []


def test_shutdown_not_held_by_parked_read():
    c = srv.client()
    c.send(sp.OP_READ, c.read_body("lp", 0, sp.POS_LATEST, wait_ms=WAIT_MAX_MS))
    time.sleep(0.2)
    t0 = time.monotonic()
    assert srv.stop() == 0, "sluiced exit code after SIGTERM"
    assert time.monotonic() - t0 < 10, "a parked read held up the shutdown"
    c.close()


if __name__ == "__main__":
    try:
        setup()
        sp.run_tests(sp.collect(globals()), time_limit=120)
    finally:
        if srv:
            srv.cleanup()
