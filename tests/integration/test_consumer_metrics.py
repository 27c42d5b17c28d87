#!/usr/bin/env python3
"""/metrics exposes every consumer shard's figures (sluice_consumer_delivered{consumer=...,
shard=...} and the rest), agreeing with CONSUMER_DESCRIBE; a deleted consumer's series go."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402
import consumer_util as cu  # noqa: E402

srv = sp.Server()
srv.start()
METRICS = {  # metric -> describe field
    "sluice_consumer_delivered": "delivered",
    "sluice_consumer_batches_failed": "batches_failed",
    "sluice_consumer_retries": "retries",
    "sluice_consumer_sent_to_on_failure": "sent_to_on_failure",
    "sluice_consumer_expired": "expired",
    "sluice_consumer_lag_records": "lag_records",
    "sluice_consumer_iterator_age_ms": "lag_ms",
}
LINE = re.compile(r'^([a-z_]+)\{consumer="([^"]*)",shard="(\d+)"\} (\d+)$')


def scrape():
    status, body = sp.http_get(srv.http_port(), "/metrics")
    assert status == 200, status
    text = body.decode()
    series = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m and m.group(1).startswith("sluice_consumer_"):
            series[(m.group(1), m.group(2), int(m.group(3)))] = int(m.group(4))
    return text, series


def test_metrics_match_describe():
    c = srv.client()
    c.create_stream("mt", 2)
    c.create_stream("mt-dlq", 1)
    k0, k1 = cu.key_for_shard(0, 2), cu.key_for_shard(1, 2)
    c.produce("mt", [(k0, "a%d" % i) for i in range(20)] + [(k0, "FAIL")] +
              [(k1, "b%d" % i) for i in range(7)])
    c.create_consumer("mt-ok", "mt", cu.plugin("echo_ok"), start="trim-horizon")
    c.create_consumer("mt-drop", "mt", cu.plugin("fail_on_marker"), start="trim-horizon",
                      max_retries=1)
    c.create_consumer("mt-onf", "mt", cu.plugin("fail_on_marker"), start="trim-horizon",
                      max_retries=0, on_failure="mt-dlq")
    for n in ("mt-ok", "mt-drop", "mt-onf"):
        cu.wait_caught_up(c, n, "mt", 10)
    text, series = scrape()
    for name in METRICS:
        assert text.count("# HELP %s " % name) == 1, name
        assert text.count("# TYPE %s " % name) == 1, name
    for n in ("mt-ok", "mt-drop", "mt-onf"):
        for s in c.describe_consumer(n)["shards"]:
            for metric, field in METRICS.items():
                key = (metric, n, s["id"])
                assert key in series, ("missing series", key)
                if field != "lag_ms":
                    assert series[key] == s[field], (key, series[key], field, s[field])
    assert series[("sluice_consumer_delivered", "mt-ok", 0)] == 21
    assert series[("sluice_consumer_delivered", "mt-ok", 1)] == 7
    assert series[("sluice_consumer_expired", "mt-drop", 0)] == 1
    assert series[("sluice_consumer_retries", "mt-drop", 0)] >= 1
    assert series[("sluice_consumer_batches_failed", "mt-drop", 0)] == 2
    assert series[("sluice_consumer_sent_to_on_failure", "mt-onf", 0)] == 1
    assert series[("sluice_consumer_expired", "mt-onf", 0)] == 0
    c.delete_consumer("mt-drop")
    _, series = scrape()
    assert not [k for k in series if k[1] == "mt-drop"], "series of a deleted consumer remain"
    assert ("sluice_consumer_delivered", "mt-ok", 0) in series
    status, _ = sp.http_get(srv.http_port(), "/healthz")
    assert status == 200, status
    c.close()


try:
    sp.run_tests(sp.collect(globals()), time_limit=60)
finally:
    srv.cleanup()
