"""Shared helpers of the consumer integration tests (python3 stdlib only): handler command
lines, handler logs, waiting for a consumer to catch up, reading an on-failure stream."""
import json
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sluiceproto as sp  # noqa: E402

LOG_HANDLER = os.path.join(HERE, "log_handler.py")


def handler_fail_path():
    return os.path.join(sp.source_dir(), "tests", "plugins", "handler_fail.py")


def exec_handler_fail(log_path):
    """tests/plugins/handler_fail.py, logging to log_path (SLUICE_TEST_LOG)."""
    return "exec:SLUICE_TEST_LOG=%s exec %s %s" % (
        shlex.quote(log_path), shlex.quote(sys.executable), shlex.quote(handler_fail_path()))


def exec_log_handler(log_path, sleep_ms=0, fail_prefix=None, sleep_per_record_ms=0):
    """tests/integration/log_handler.py: one log line per finished batch, written before the
    answer."""
    cmd = "exec:exec %s %s --log %s --sleep-ms %s" % (
        shlex.quote(sys.executable), shlex.quote(LOG_HANDLER), shlex.quote(log_path), sleep_ms)
    if sleep_per_record_ms:
        cmd += " --sleep-per-record-ms %s" % sleep_per_record_ms
    if fail_prefix:
        cmd += " --fail-prefix " + shlex.quote(fail_prefix)
    return cmd


def plugin(name):
    return "plugin:" + sp.plugin_path(name)


def read_jsonl(path):
    """Every complete JSON line of path ([] if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written right now
    return out


def tips(c, stream):
    """{shard id: last sequence number in it (0 when empty)}."""
    return {s["id"]: s["next_seq"] - 1 for s in c.list_shards(stream)}


def shard_map(desc):
    return {s["id"]: s for s in desc["shards"]}


def caught_up(c, consumer, stream):
    """The describe answer when every shard's checkpoint is at its tip with no lag, else None."""
    t = tips(c, stream)
    d = c.describe_consumer(consumer)
    for s in d["shards"]:
        if s["checkpoint"] != t[s["id"]] or s["lag_records"] != 0:
            return None
    return d


def wait_caught_up(c, consumer, stream, timeout, what=None):
    return sp.wait_until(lambda: caught_up(c, consumer, stream), timeout,
                         what or "consumer %s to reach the tip of %s" % (consumer, stream))


def describe_str(d):
    return "; ".join("shard %d: cp=%d lag=%d state=%s delivered=%d failed=%d retries=%d "
                     "onfail=%d expired=%d err=%r" % (
                         s["id"], s["checkpoint"], s["lag_records"], s["state"], s["delivered"],
                         s["batches_failed"], s["retries"], s["sent_to_on_failure"],
                         s["expired"], s["last_error"]) for s in d["shards"])


def on_failure_records(c, stream):
    """Every record of an on-failure stream, its data parsed as JSON: [(shard, record, obj)]."""
    out = []
    for sh in c.list_shards(stream):
        for r in c.read_all(stream, sh["id"]):
            out.append((sh["id"], r, json.loads(r["data"])))
    return out


def key_for_shard(shard, nshards, prefix="k"):
    """A partition key that routes to the given shard (Kinesis rule, computed locally)."""
    i = 0
    while True:
        k = "%s%d" % (prefix, i)
        if sp.shard_of_key(k, nshards) == shard:
            return k
        i += 1


def checkpoint_file(data_dir, consumer, shard):
    """The saved checkpoint of a shard (DATA/checkpoints/CONSUMER/shardId-%012d), or None."""
    p = os.path.join(data_dir, "checkpoints", consumer, "shardId-%012d" % shard)
    try:
        with open(p) as f:
            first = f.readline().strip()
    except FileNotFoundError:
        return None
    return int(first)


def procs_with_env(var, value):
    """PIDs of processes of ours whose environment has var=value (handler processes)."""
    needle = ("%s=%s" % (var, value)).encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            pids.append(int(name))
    return pids


def now_ms():
    return int(time.time() * 1000)
