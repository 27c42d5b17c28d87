"""Helpers for the fault and limit tests: sluiced-faults (the server built with the fault shim,
src/server/faults.h), its rule file, /metrics parsing."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluiceproto as sp  # noqa: E402

ENOSPC, EIO, ENOMEM = 28, 5, 12
# sluice_error_is_retryable() (src/common/errors.c), mirrored: the tests check that what a
# client sees under a fault is something it is told to retry.
RETRYABLE = {sp.CODE["throttled"], sp.CODE["unavailable"], sp.CODE["timeout"],
             sp.CODE["disconnected"], sp.CODE["shutting_down"],
             -ENOSPC, -EIO, -ENOMEM, -11, -111, -104, -110, -32}
# The shim checks its rule file at most every 100 ms, on the next hooked call.
RELOAD_WAIT_S = 0.25


def faults_binary():
    return os.path.join(sp.build_dir(), "src", "server", "sluiced-faults")


class FaultServer(sp.Server):
    """A Server running sluiced-faults, with a rule file (SLUICE_FAULTS_FILE) in its folder and
    optional start-up rules (SLUICE_FAULTS)."""

    def __init__(self, faults="", **kw):
        super().__init__(**kw)
        base = self.root if self.own_dir else os.path.dirname(self.data_dir.rstrip("/"))
        self.faults_file = os.path.join(base, "faults.rules")
        self.env["SLUICE_FAULTS_FILE"] = self.faults_file
        if faults:
            self.env["SLUICE_FAULTS"] = faults
        else:
            self.env.pop("SLUICE_FAULTS", None)

    def command(self):
        cmd = super().command()
        cmd[0] = faults_binary()
        return cmd

    def set_faults(self, rules):
        """Replace the running server's rules (atomically: temp file + rename), and wait until
        the shim must have seen the change."""
        tmp = self.faults_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(rules + "\n")
        os.replace(tmp, self.faults_file)
        time.sleep(RELOAD_WAIT_S)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def metrics(self):
        status, body = sp.http_get(self.http_port(), "/metrics")
        assert status == 200, status
        return parse_metrics(body.decode())


def parse_metrics(text):
    """{'name' or 'name{labels}': float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def rss_factor(pid):
    """How much more memory the server may use than a release build: AddressSanitizer's
    redzones, quarantine and shadow memory multiply RSS (tools/test runs these tests under it)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return 4 if "libasan" in f.read() else 1
    except OSError:
        return 1


def require_binary():
    if not os.path.exists(faults_binary()):
        print("SKIP: %s not built (meson -Dtests=enabled builds it)" % faults_binary())
        sys.exit(77)
