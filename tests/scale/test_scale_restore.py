#!/usr/bin/env python3
"""Restore and replay at scale: 10 million records, memory bounded (meson suite `scale`).

Runs `sluice-bench replay --records N --json` (bench/bench_replay.c), which generates an archive
of N records in the firehose's format, restores it into a private sluiced with `sluice restore`,
checks every shard's record count against the archive, then copies the stream with
`sluice replay --keep-keys` and checks the copy's count. This test asserts what must hold
whatever the machine's speed:

  - every record restored and every record replayed (counts from the server);
  - peak RSS (wait4 ru_maxrss) of the restore and replay CLIs under SCALE_CLI_RSS_MIB, i.e.
    bounded by one object plus two batches, not by the archive (10 M records of 100 bytes are
    ~1 GB of data and ~1.9 GB of archive JSON lines);
  - sluiced's peak RSS (VmHWM) under SCALE_SERVER_RSS_MIB.
Speed is reported (docs/benchmarks.md), never asserted.

  meson test -C build --suite scale --print-errorlogs      (about 1-2 minutes, ~4 GB of disk)
  SLUICE_SCALE_RECORDS=1000000 ... for a quicker run
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import sluiceproto as sp  # noqa: E402

RECORDS = int(os.environ.get("SLUICE_SCALE_RECORDS", "10000000"))
SCALE_CLI_RSS_MIB = 128
SCALE_SERVER_RSS_MIB = 1024


def main():
    bench = os.path.join(sp.build_dir(), "bench", "sluice-bench")
    with tempfile.TemporaryDirectory(prefix="sluice-scale-") as tmp:
        p = subprocess.run([bench, "replay", "--records", str(RECORDS), "--size", "100",
                            "--shards", "4", "--json", "--dir", tmp],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1500)
        sys.stderr.write(p.stderr.decode(errors="replace"))
        assert p.returncode == 0, "sluice-bench replay exited %d" % p.returncode
        r = json.loads(p.stdout.decode().strip().splitlines()[-1])
    print(json.dumps(r, indent=1))
    assert r["restored_records"] == RECORDS, r
    assert r["replayed_records"] == RECORDS, r
    cli_mib = max(r["restore_cli_peak_rss_kib"], r["replay_cli_peak_rss_kib"]) / 1024
    assert cli_mib < SCALE_CLI_RSS_MIB, ("CLI peak RSS %.1f MiB" % cli_mib, r)
    srv_mib = r["sluiced_peak_rss_kib"] / 1024
    assert srv_mib < SCALE_SERVER_RSS_MIB, ("sluiced peak RSS %.1f MiB" % srv_mib, r)
    print("ok: %d records restored and replayed; peak RSS: restore CLI %.1f MiB, replay CLI "
          "%.1f MiB, sluiced %.1f MiB" % (RECORDS, r["restore_cli_peak_rss_kib"] / 1024,
                                          r["replay_cli_peak_rss_kib"] / 1024, srv_mib))


main()
