"""Firehose threads yield the CPU to the produce path (sluiced --firehose-cpu-priority), consumer
handler threads keep the loops' priority (handlers are user work), and a firehose that fell more
than --firehose-background-lag behind runs at normal priority until it caught up.

Checked on the kernel's view of each thread, /proc/PID/task/TID/stat (field 19: nice, field 41:
scheduling policy), against the loops' own values (the test may itself run under `nice`), and on
/metrics (sluice_consumer_background).
"""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import consumer_util as cu  # noqa: E402
from sluiceproto import Server, http_get  # noqa: E402

SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5
NICE_DEFAULT = 10  # SL_FIREHOSE_NICE_DEFAULT


def threads(pid):
    """[(comm, nice, policy)] of every thread of pid."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. of proc(5)
        out.append((comm, int(fields[19 - 3]), int(fields[41 - 3])))
    return out


def of(pid, comm):
    return [(n, p) for c, n, p in threads(pid) if c == comm]


def loop_nice(pid):
    nices = {n for n, _ in of(pid, "sl-loop-0") + of(pid, "sl-loop-1")}
    assert len(nices) == 1, nices
    return nices.pop()


def background_metric(port, consumer):
    _, body = http_get(port, "/metrics")
    return [int(v) for v in re.findall(
        r'^sluice_consumer_background\{consumer="%s",shard="\d+"\} (\d+)$' % consumer,
        body.decode(), re.M)]


def wait_until(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return cond()


def archived_everywhere(c, name):
    return all(s["objects_written"] > 0 for s in c.describe_firehose(name)["shards"])


def produce_spread(c, stream, n, tag):
    c.produce(stream, [("key-%s-%d" % (tag, i), "data-%d" % i) for i in range(n)])


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, what, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": %s" % (detail,)))
        self.passed += bool(ok)
        self.failed += not ok


def scenario_default(check, dest):
    """Default flags: firehose threads SCHED_BATCH at loop nice + 10, handler threads as the
    loops."""
    with Server() as s:
        c = s.client()
        c.create_stream("clicks", 2)
        c.create_firehose("arch", "clicks", "file://" + dest, buffer_interval_ms=200)
        log = os.path.join(s.root, "handler.log")
        c.create_consumer("c", "clicks", cu.exec_log_handler(log))
        produce_spread(c, "clicks", 200, "a")
        check("default: every shard archived", wait_until(lambda: archived_everywhere(c, "arch"),
                                                          30))
        check("default: the exec handler ran", wait_until(
            lambda: os.path.exists(log) and os.path.getsize(log) > 0, 30))
        base = loop_nice(s.pid)
        fh, hd = of(s.pid, "sl-firehose"), of(s.pid, "sl-handler")
        want = (min(19, base + NICE_DEFAULT), SCHED_BATCH)
        check("default: one firehose thread per shard", len(fh) == 2, fh)
        check("default: firehose threads at loop nice + 10, SCHED_BATCH",
              fh and all(t == want for t in fh), (fh, want))
        check("default: handler threads keep the loops' priority",
              hd and all(t == (base, SCHED_OTHER) for t in hd), (hd, base))
        port = s.http_port()
        check("default: /metrics says the firehose shards yield",
              background_metric(port, "arch") == [1, 1], background_metric(port, "arch"))
        check("default: /metrics says the consumer does not",
              background_metric(port, "c") == [0, 0], background_metric(port, "c"))
        d = [s["background"] for s in c.describe_firehose("arch")["shards"]]
        check("default: firehose describe says the shards yield", d == [1, 1], d)


def scenario_policy(check, dest, flag, want_policy, yields):
    with Server(args=["--firehose-cpu-priority", flag]) as s:
        c = s.client()
        c.create_stream("clicks", 1)
        c.create_firehose("arch", "clicks", "file://" + dest, buffer_interval_ms=200)
        produce_spread(c, "clicks", 50, "b")
        check("%s: archived" % flag, wait_until(lambda: archived_everywhere(c, "arch"), 30))
        base = loop_nice(s.pid)
        fh = of(s.pid, "sl-firehose")
        check("%s: firehose thread at the loops' nice, policy %d" % (flag, want_policy),
              fh == [(base, want_policy)], (fh, base))
        m = background_metric(s.http_port(), "arch")
        check("%s: /metrics background %d" % (flag, yields), m == [yields], m)


def scenario_catch_up(check, dest):
    """A firehose whose first window is older than interval + bound runs at normal priority (a
    fresh thread, as a thread cannot raise its own priority unprivileged), then yields again
    once a window is back under half the bound."""
    with Server(args=["--firehose-background-lag", "1s"]) as s:
        c = s.client()
        c.create_stream("old", 1)
        produce_spread(c, "old", 100, "c")
        produced = time.time()
        time.sleep(max(0.0, produced + 2.0 - time.time()))  # the records are now 2 s old
        c.create_firehose("arch", "old", "file://" + dest, buffer_interval_ms=0)
        check("catch-up: the backlog archived",
              wait_until(lambda: archived_everywhere(c, "arch"), 30))
        base = loop_nice(s.pid)
        port = s.http_port()
        fh = of(s.pid, "sl-firehose")
        check("catch-up: behind the bound, the firehose thread runs at normal priority",
              fh == [(base, SCHED_OTHER)], (fh, base))
        check("catch-up: /metrics background 0", background_metric(port, "arch") == [0],
              background_metric(port, "arch"))
        d = c.describe_firehose("arch")["shards"][0]
        check("catch-up: describe background 0, nothing left waiting",
              (d["background"], d["lag_ms"], d["buffered_records"]) == (0, 0, 0), d)
        # Fresh records are archived within milliseconds: back under half the bound, so the
        # firehose yields again (on a new thread). Produce until a window shows it (a loaded
        # machine may archive one late).
        want = (min(19, base + NICE_DEFAULT), SCHED_BATCH)
        back = False
        for i in range(20):
            produce_spread(c, "old", 10, "d%d" % i)
            if wait_until(lambda: background_metric(port, "arch") == [1], 2):
                back = True
                break
        check("catch-up: caught up, /metrics background 1", back,
              background_metric(port, "arch"))
        d = c.describe_firehose("arch")["shards"][0]["background"]
        check("catch-up: caught up, describe background 1", d == 1, d)
        fh = wait_until(lambda: of(s.pid, "sl-firehose") == [want] and [want], 10)
        check("catch-up: caught up, the firehose thread yields again",
              fh == [want], (of(s.pid, "sl-firehose"), want))


def scenario_bad_flags(check):
    for flag, value in [("--firehose-cpu-priority", "nice:20"),
                        ("--firehose-cpu-priority", "nice:0"),
                        ("--firehose-cpu-priority", "low"),
                        ("--firehose-background-lag", "soon")]:
        s = Server(args=[flag, value])
        try:
            rc, _ = s.start_expect_failure()
            tail = s.log_tail()
            check("bad %s %s refused, naming the flag" % (flag, value),
                  rc != 0 and flag.lstrip("-") in tail, (rc, tail))
        finally:
            s.cleanup()


def main():
    check = Checks()
    dest = tempfile.mkdtemp(prefix="sluice-fh-prio-")
    try:
        scenario_default(check, os.path.join(dest, "default"))
        scenario_policy(check, os.path.join(dest, "idle"), "idle", SCHED_IDLE, 1)
        scenario_policy(check, os.path.join(dest, "normal"), "normal", SCHED_OTHER, 0)
        scenario_catch_up(check, os.path.join(dest, "catch-up"))
        scenario_bad_flags(check)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, check.failed))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
