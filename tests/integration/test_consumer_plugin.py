#!/usr/bin/env python3
"""Consumers with plugin handlers, and consumer administration over the native protocol.

- a trim-horizon echo_ok consumer on a 4-shard stream delivers every record exactly once (no
  failures, so the delivered counters equal the records per shard), checkpoints reach the tip,
  lag returns to 0, and it keeps up with records produced while it runs;
- create with every option set -> describe answers them back; list; delete; duplicate create,
  unknown stream, unknown consumer, invalid options (the message names the field);
- a plugin that is refused (bad ABI) shows the file and the reason in last_error and delivers
  nothing;
- fail_on_marker: a FAIL record given up on at once (--max-retries 0) goes to the on-failure
  stream, the rest of the shard is delivered; an ERROR record (whole batch fails) is isolated by
  --bisect-on-error;
- --start latest sees only records produced after create, also across a restart (exec handler
  log, so exactly which records were seen is known).
"""
import base64
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

srv = sp.Server()
srv.start()


def test_trim_horizon_every_record_once():
    c = srv.client()
    c.create_stream("th", 4)
    res = c.produce("th", [("key-%d" % (i % 97), "rec-%d" % i) for i in range(400)])
    assert all(st == 0 for st, _, _ in res), res
    per_shard = {}
    for _, shard, _ in res:
        per_shard[shard] = per_shard.get(shard, 0) + 1
    assert len(per_shard) == 4, per_shard
    c.create_consumer("th-echo", "th", cu.plugin("echo_ok"), start="trim-horizon",
                      batch_size=17)
    d = cu.wait_caught_up(c, "th-echo", "th", 15)
    t = cu.tips(c, "th")
    for s in d["shards"]:
        assert s["delivered"] == per_shard[s["id"]], ("delivered", s, per_shard)
        assert s["checkpoint"] == t[s["id"]], (s, t)
        assert s["batches_failed"] == 0 and s["retries"] == 0 and s["expired"] == 0, s
        assert s["lag_records"] == 0, s
    # More records while it runs: it keeps up, lag and iterator age return to 0.
    for b in range(10):
        res = c.produce("th", [("key-%d" % i, "more-%d-%d" % (b, i)) for i in range(30)])
        for _, shard, _ in res:
            per_shard[shard] += 1
    d = cu.wait_caught_up(c, "th-echo", "th", 15)
    for s in d["shards"]:
        assert s["delivered"] == per_shard[s["id"]], ("delivered after more", s, per_shard)
    d = sp.wait_until(lambda: all(s["lag_ms"] == 0 and s["state"] == "IDLE"
                                  for s in c.describe_consumer("th-echo")["shards"])
                      and c.describe_consumer("th-echo"), 5, "lag_ms 0 and state IDLE")
    c.close()


def test_create_describe_list_delete():
    c = srv.client()
    c.create_stream("adm", 3)
    c.create_stream("adm-dlq", 1)
    t_ms = cu.now_ms() - 60000
    opts = dict(batch_size=7, batch_window_ms=250, start=("time", t_ms), max_retries=3,
                max_record_age_s=600, bisect_on_error=True, on_failure="adm-dlq",
                parallelism=3, timeout_ms=1234)
    c.create_consumer("adm-full", "adm", cu.plugin("echo_ok"), **opts)
    c.create_consumer("adm-min", "adm", "remote")
    c.create_consumer("adm-exec", "adm", "exec:cat >/dev/null", start="trim-horizon")
    d = c.describe_consumer("adm-full")
    want = dict(name="adm-full", stream="adm", handler_kind=sp.HANDLER_PLUGIN,
                handler_target=sp.plugin_path("echo_ok"), batch_size=7, batch_window_ms=250,
                start_type=sp.POS_AT_TIMESTAMP, start_value=t_ms, max_retries=3,
                max_record_age_s=600, bisect_on_error=True, on_failure="adm-dlq",
                parallelism=3, timeout_ms=1234)
    for k, v in want.items():
        assert d[k] == v, ("describe field", k, d[k], v)
    assert abs(d["created_ms"] - cu.now_ms()) < 60000, d["created_ms"]
    assert [s["id"] for s in d["shards"]] == [0, 1, 2], d["shards"]
    # Defaults.
    d = c.describe_consumer("adm-min")
    for k, v in dict(handler_kind=sp.HANDLER_REMOTE, handler_target="", batch_size=100,
                     batch_window_ms=0, start_type=sp.POS_LATEST, max_retries=-1,
                     max_record_age_s=-1, bisect_on_error=False, on_failure="",
                     parallelism=1, timeout_ms=60000).items():
        assert d[k] == v, ("default", k, d[k], v)
    assert c.describe_consumer("adm-exec")["handler_kind"] == sp.HANDLER_EXEC
    names = c.list_consumers()
    assert {"adm-full", "adm-min", "adm-exec"} <= set(names), names
    assert names == sorted(names), names
    # A consumer of that name exists already.
    try:
        c.create_consumer("adm-min", "adm", "remote")
        raise AssertionError("duplicate create succeeded")
    except sp.SluiceError as e:
        assert "adm-min" in e.message and "exist" in e.message, e
    # Unknown stream / consumer.
    for fn in (lambda: c.create_consumer("adm-x", "no-such-stream", "remote"),
               lambda: c.describe_consumer("no-such-consumer"),
               lambda: c.delete_consumer("no-such-consumer"),
               lambda: c.reset_consumer("no-such-consumer")):
        try:
            fn()
            raise AssertionError("call on a missing stream/consumer succeeded")
        except sp.SluiceError as e:
            assert e.name == "stream_not_found", e
    # Reset of a shard the stream does not have.
    try:
        c.reset_consumer("adm-min", 99)
        raise AssertionError("reset of shard 99 succeeded")
    except sp.SluiceError as e:
        assert e.name == "shard_not_found", e
    # Invalid options: invalid_argument, message naming the field.
    bad = [
        (dict(batch_size=0), "batch_size"), (dict(batch_size=10001), "batch_size"),
        (dict(parallelism=11), "parallelism"), (dict(parallelism=0), "parallelism"),
        (dict(timeout_ms=0), "timeout_ms"), (dict(timeout_ms=900001), "timeout_ms"),
        (dict(batch_window_ms=300001), "batch_window_ms"), (dict(max_retries=-2), "max_retries"),
        (dict(max_record_age_s=0), "max_record_age"),
        (dict(handler=(sp.HANDLER_EXEC, "")), "handler"),
        (dict(handler=(sp.HANDLER_PLUGIN, "")), "handler"),
        (dict(handler=(sp.HANDLER_REMOTE, "/bin/true")), "handler"),
        (dict(on_failure="adm"), "on_failure"),
        (dict(start=(sp.POS_LATEST, 5)), "start"),
    ]
    for opts, field in bad:
        opts = dict(opts)
        handler = opts.pop("handler", "remote")
        try:
            c.create_consumer("adm-bad", "adm", handler, **opts)
            raise AssertionError("create with %r succeeded" % (opts or handler,))
        except sp.SluiceError as e:
            assert e.name == "invalid_argument", (opts, handler, e)
            assert field in e.message, ("message does not name the field", field, e.message)
    # Unknown handler kind / start type: refused by the decoder.
    for kw in (dict(handler=(7, "x")), dict(handler="remote", start=(sp.POS_AT_SEQ, 1))):
        handler = kw.pop("handler")
        try:
            c.create_consumer("adm-bad", "adm", handler, **kw)
            raise AssertionError("create with %r succeeded" % (kw or handler,))
        except sp.SluiceError as e:
            assert e.name == "invalid_argument", e
    # Unknown flag bits: protocol.
    try:
        c.create_consumer("adm-bad", "adm", "remote", flags=0x02)
        raise AssertionError("unknown flag bits accepted")
    except sp.SluiceError as e:
        assert e.name == "protocol", e
    # Invalid names.
    for name, stream in (("bad name", "adm"), ("ok", "bad/stream")):
        try:
            c.create_consumer(name, stream, "remote")
            raise AssertionError("invalid name accepted")
        except sp.SluiceError as e:
            assert e.name == "invalid_name", e
    assert "adm-bad" not in c.list_consumers()
    # Delete: gone from list and describe, its checkpoints removed; the name can be reused.
    c.delete_consumer("adm-exec")
    assert "adm-exec" not in c.list_consumers()
    try:
        c.describe_consumer("adm-exec")
        raise AssertionError("describe after delete succeeded")
    except sp.SluiceError as e:
        assert e.name == "stream_not_found", e
    sp.wait_until(lambda: not os.path.exists(os.path.join(srv.data_dir, "checkpoints",
                                                          "adm-exec", "shardId-000000000000")),
                  5, "checkpoints of a deleted consumer to go")
    c.create_consumer("adm-exec", "adm", "remote")
    assert c.describe_consumer("adm-exec")["handler_kind"] == sp.HANDLER_REMOTE
    for n in ("adm-full", "adm-min", "adm-exec"):
        c.delete_consumer(n)
    c.close()


def test_refused_plugins_report_why():
    c = srv.client()
    c.create_stream("badp", 1)
    c.produce("badp", [("k", "x%d" % i) for i in range(5)])
    cases = {"bad_abi": "999", "init_fail": "init", "not_a_plugin": "sluice_handler_entry_v1"}
    for name in cases:
        c.create_consumer("badp-" + name.replace("_", "-"), "badp", cu.plugin(name),
                          start="trim-horizon")
    c.create_consumer("badp-missing", "badp", "plugin:/nonexistent/x.so", start="trim-horizon")
    cases["missing"] = "No such file"

    def errors():
        out = {}
        for name in cases:
            d = c.describe_consumer("badp-" + name.replace("_", "-"))
            if not d["shards"][0]["last_error"]:
                return None
            out[name] = d["shards"][0]
        return out
    got = sp.wait_until(errors, 5, "an error for every refused plugin")
    for name, reason in cases.items():
        s = got[name]
        path = "/nonexistent/x.so" if name == "missing" else sp.plugin_path(name)
        assert path in s["last_error"] and reason in s["last_error"], (name, s["last_error"])
        assert s["delivered"] == 0 and s["checkpoint"] == 0 and s["batches_failed"] > 0, s
        c.delete_consumer("badp-" + name.replace("_", "-"))
    c.close()


def test_fail_on_marker_plugin():
    c = srv.client()
    c.create_stream("mk", 2)
    c.create_stream("mk-dlq", 1)
    k0, k1 = cu.key_for_shard(0, 2), cu.key_for_shard(1, 2)
    # Shard 0: a FAIL record in the middle (partial failure); shard 1: an ERROR record (the
    # whole batch fails) that bisecting must isolate.
    recs = [(k0, "a%d" % i) for i in range(6)] + [(k0, "FAIL-1")] + \
        [(k0, "b%d" % i) for i in range(6)] + \
        [(k1, "c%d" % i) for i in range(5)] + [(k1, "ERROR")] + [(k1, "d%d" % i) for i in range(6)]
    res = c.produce("mk", recs)
    seq_of = {data: seq for (key, data), (st, sh, seq) in zip(recs, res)}
    c.create_consumer("mk-c", "mk", cu.plugin("fail_on_marker"), start="trim-horizon",
                      batch_size=16, max_retries=0, bisect_on_error=True, on_failure="mk-dlq")
    d = cu.wait_caught_up(c, "mk-c", "mk", 15)
    sm = cu.shard_map(d)
    dlq = cu.on_failure_records(c, "mk-dlq")
    got = sorted((o["data"], o["seq"]) for _, _, o in dlq)
    want = sorted((base64.b64encode(x.encode()).decode(), str(seq_of[x]))
                  for x in ("FAIL-1", "ERROR"))
    # With --bisect-on-error only the failing records themselves are given up on.
    assert got == want, ("on-failure stream holds", dlq, "want", want)
    for _, r, o in dlq:
        assert o["reason"] == "max_retries", o
        assert o["consumer"] == "mk-c" and o["stream"] == "mk", o
        # ENGINE BUG (reported to the lead): "attempts" is the retry count (0 here) rather
        # than the number of deliveries of a record that was delivered once and failed.
        assert o["attempts"] >= 1, ("a record delivered once and failed reports attempts",
                                     o["attempts"], o)
    assert sm[0]["delivered"] == 12 and sm[0]["sent_to_on_failure"] == 1, sm[0]
    assert sm[1]["delivered"] == 11 and sm[1]["sent_to_on_failure"] == 1, sm[1]
    assert sm[1]["retries"] > 0 and sm[1]["batches_failed"] > 0, sm[1]
    assert "ERROR" in sm[1]["last_error"] or "error" in sm[1]["last_error"].lower(), sm[1]
    c.delete_consumer("mk-c")
    c.close()


def test_latest_only_new_records_across_restart():
    root = tempfile.mkdtemp(prefix="sluice-latest-")
    data = os.path.join(root, "data")
    log = os.path.join(root, "handler.log")
    s2 = sp.Server(data_dir=data)
    try:
        s2.start()
        c = s2.client()
        c.create_stream("lt", 2)
        c.produce("lt", [("k%d" % i, "pre-%d" % i) for i in range(40)])
        c.create_consumer("lt-c", "lt", cu.exec_handler_fail(log), start="latest")
        d = c.describe_consumer("lt-c")
        t = cu.tips(c, "lt")
        for s in d["shards"]:
            assert s["checkpoint"] == t[s["id"]], ("latest starts at the tip", s, t)
        c.produce("lt", [("k%d" % i, "mid-%d" % i) for i in range(40)])
        c.close()
        s2.kill()  # right away: whatever was not delivered yet must come after the restart
        s2.start()
        c = s2.client()
        c.produce("lt", [("k%d" % i, "post-%d" % i) for i in range(40)])
        cu.wait_caught_up(c, "lt-c", "lt", 15)
        seen = {e["data"] for e in cu.read_jsonl(log)}
        want = {"mid-%d" % i for i in range(40)} | {"post-%d" % i for i in range(40)}
        assert not {x for x in seen if x.startswith("pre-")}, "LATEST saw older records"
        assert want <= seen, ("missed", sorted(want - seen)[:10])
        # A LATEST consumer created on a running stream and a restart before anything new.
        c.create_consumer("lt-d", "lt", cu.exec_handler_fail(log + ".d"), start="latest")
        c.close()
        assert s2.stop() == 0
        s2.start()
        c = s2.client()
        c.produce("lt", [("k%d" % i, "new-%d" % i) for i in range(20)])
        cu.wait_caught_up(c, "lt-d", "lt", 15)
        seen = [e["data"] for e in cu.read_jsonl(log + ".d")]
        assert sorted(seen) == sorted("new-%d" % i for i in range(20)), seen
        c.close()
    finally:
        s2.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_start_at_timestamp_and_batch_window():
    root = tempfile.mkdtemp(prefix="sluice-ts-")
    try:
        c = srv.client()
        c.create_stream("ts", 2)
        c.produce("ts", [("k%d" % i, "old-%d" % i) for i in range(20)])
        time.sleep(0.05)
        t = cu.now_ms()
        time.sleep(0.05)
        c.produce("ts", [("k%d" % i, "new-%d" % i) for i in range(20)])
        log = os.path.join(root, "ts.log")
        c.create_consumer("ts-c", "ts", cu.exec_log_handler(log), start=("time", t))
        cu.wait_caught_up(c, "ts-c", "ts", 10)
        seen = sorted(r[2] for e in cu.read_jsonl(log) for r in e["recs"])
        assert seen == sorted("new-%d" % i for i in range(20)), seen
        # --batch-window: a few records wait for the window, then go out as one batch.
        wlog = os.path.join(root, "w.log")
        c.create_stream("win", 1)
        c.create_consumer("win-c", "win", cu.exec_log_handler(wlog), start="trim-horizon",
                          batch_size=100, batch_window_ms=600)
        sp.wait_until(lambda: c.describe_consumer("win-c")["shards"][0]["state"] == "IDLE", 5,
                      "the window consumer to be idle")
        t0 = time.monotonic()
        for i in range(5):
            c.produce("win", [("k", "w%d" % i)])
        sp.wait_until(lambda: cu.read_jsonl(wlog), 5, "the windowed batch")
        waited = time.monotonic() - t0
        entries = cu.read_jsonl(wlog)
        assert len(entries) == 1 and [r[2] for r in entries[0]["recs"]] == \
            ["w%d" % i for i in range(5)], ("one batch of 5 expected", entries)
        assert waited >= 0.4, ("the batch did not wait for the window", waited)
        c.delete_consumer("ts-c")
        c.delete_consumer("win-c")
        c.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_delete_stream_with_a_consumer():
    c = srv.client()
    c.create_stream("ds", 2)
    c.produce("ds", [("k%d" % i, "x%d" % i) for i in range(10)])
    c.create_consumer("ds-c", "ds", cu.plugin("echo_ok"), start="trim-horizon")
    cu.wait_caught_up(c, "ds-c", "ds", 5)
    try:
        c.delete_stream("ds")
    except sp.SluiceError as e:
        # Refusing is a fine answer, if it says why.
        assert "ds-c" in e.message or "consumer" in e.message, e
        c.delete_consumer("ds-c")
        c.close()
        return
    # Deleted: the name must become free again (a consumer may keep the old stream's memory,
    # but not block the name for ever).
    # ENGINE BUG (reported to the lead): the consumer's reference keeps the deleted stream
    # "still being deleted" until the consumer is deleted, with nothing telling the user why.
    def recreate():
        try:
            c.create_stream("ds", 1)
            return True
        except sp.SluiceError as e:
            if "being deleted" not in e.message:
                raise
            return False
    try:
        sp.wait_until(recreate, 5, "the name of a deleted stream with a consumer to be free")
    except AssertionError as e:
        d = c.describe_consumer("ds-c")
        raise AssertionError("%s; the consumer is still listed on the deleted stream: %s"
                             % (e, cu.describe_str(d)))
    finally:
        try:
            c.delete_consumer("ds-c")
        except sp.SluiceError:
            pass
    c.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=90)
finally:
    srv.cleanup()
