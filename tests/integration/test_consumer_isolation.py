#!/usr/bin/env python3
"""A hung handler blocks only its own consumer: with consumer A on a plugin that sleeps 20 s per
batch (slow.so, SLUICE_TEST_SLEEP_MS) and consumer C on an exec handler hung on a HANG record,
consumer B (echo_ok) on the same stream keeps delivering within moments of each produce, and
produce round trips stay fast (< 1 s each). Deleting the hung consumer returns at once, and
sluiced still shuts down promptly on SIGTERM."""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

srv = sp.Server(env={"SLUICE_TEST_SLEEP_MS": "20000"})
srv.start()
tmp = tempfile.mkdtemp(prefix="sluice-iso-")


def handler_pids(log_path):
    """Processes whose environment names log_path as their SLUICE_TEST_LOG."""
    want = ("SLUICE_TEST_LOG=" + log_path).encode()
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    if want in f.read().split(b"\0"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def test_hung_handlers_do_not_block_others():
    c = srv.client()
    c.create_stream("iso", 2)
    k0, k1 = cu.key_for_shard(0, 2), cu.key_for_shard(1, 2)
    c.produce("iso", [(k0, "HANG"), (k1, "HANG")])
    c.create_consumer("iso-a", "iso", cu.plugin("slow"), start="trim-horizon")
    c.create_consumer("iso-c", "iso", cu.exec_handler_fail(os.path.join(tmp, "c.log")),
                      start="trim-horizon")
    c.create_consumer("iso-b", "iso", cu.plugin("echo_ok"), start="trim-horizon")
    # A and C are stuck in their first batch.
    sp.wait_until(lambda: all(s["state"] == "DELIVERING"
                              for n in ("iso-a", "iso-c")
                              for s in c.describe_consumer(n)["shards"]),
                  5, "the hung consumers to be delivering")
    assert handler_pids(os.path.join(tmp, "c.log")), "the exec handler is not running"
    worst_produce = 0.0
    worst_delivery = 0.0
    for i in range(25):
        t0 = time.monotonic()
        res = c.produce("iso", [("key-%d" % j, "p%d-%d" % (i, j)) for j in range(20)])
        worst_produce = max(worst_produce, time.monotonic() - t0)
        assert all(st == 0 for st, _, _ in res)
        tips = cu.tips(c, "iso")
        t1 = time.monotonic()
        sp.wait_until(lambda: all(s["checkpoint"] == tips[s["id"]]
                                  for s in c.describe_consumer("iso-b")["shards"]),
                      5, "consumer B to deliver round %d" % i, interval=0.01)
        worst_delivery = max(worst_delivery, time.monotonic() - t1)
        time.sleep(0.05)
    print("worst produce round trip %.3fs, worst delivery by B %.3fs"
          % (worst_produce, worst_delivery))
    assert worst_produce < 1.0, worst_produce
    assert worst_delivery < 1.0, worst_delivery
    for n in ("iso-a", "iso-c"):
        for s in c.describe_consumer(n)["shards"]:
            assert s["delivered"] == 0 and s["checkpoint"] == 0, (n, s)
    t0 = time.monotonic()
    c.delete_consumer("iso-a")
    c.delete_consumer("iso-c")
    assert time.monotonic() - t0 < 1.0, "deleting a hung consumer took %.2fs" % (
        time.monotonic() - t0)
    # The hung exec handler died with its consumer (it must not outlive it, or sluiced).
    sp.wait_until(lambda: not handler_pids(os.path.join(tmp, "c.log")), 5,
                  "the deleted consumer's hung handler to be killed")
    c.produce("iso", [("key-x", "after delete")])
    cu.wait_caught_up(c, "iso-b", "iso", 5)
    c.close()


def test_shutdown_with_a_hung_plugin():
    c = srv.client()
    c.create_stream("iso2", 1)
    c.produce("iso2", [("k", "x")])
    c.create_consumer("iso2-a", "iso2", cu.plugin("slow"), start="trim-horizon")
    sp.wait_until(lambda: c.describe_consumer("iso2-a")["shards"][0]["state"] == "DELIVERING",
                  5, "the slow plugin to be called")
    c.close()
    t0 = time.monotonic()
    rc = srv.stop(timeout=15)
    took = time.monotonic() - t0
    assert rc == 0, rc
    assert took < 10, "SIGTERM with a hung plugin took %.1fs" % took


try:
    sp.run_tests(sp.collect(globals()), time_limit=80)
finally:
    srv.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
