"""Driver side of compat/README.md's contract, shared by both Python programs.

Step and wait lines go to the real stdout; everything else a client might print
(some releases print on errors) is sent to stderr by redirecting sys.stdout.
"""

import json
import logging
import os
import sys
import tempfile
import time

_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
sys.stdout = sys.stderr

logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("compat")

E_IP, P_IP, X_IP, PORT = "10.9.0.1", "10.9.0.2", "10.9.0.3", 8080
CLUSTER = "DEFAULT"


class Env:
    def __init__(self):
        g = os.environ.get
        self.addr = g("ROSTER_SERVER_ADDR", "127.0.0.1:8848")
        self.namespace = g("ROSTER_NAMESPACE", "")
        self.group = g("ROSTER_GROUP", "") or "DEFAULT_GROUP"
        self.service = g("ROSTER_SERVICE", "compat-python")
        # P lives in a service of its own: Nacos 2.x fixes a service's kind by its first instance.
        self.p_service = g("ROSTER_PERSISTENT_SERVICE", "") or self.service + "-persistent"
        self.beat_ms = int(g("ROSTER_HEARTBEAT_INTERVAL_MS", "") or 1000)
        self.timeout_ms = int(g("ROSTER_HEARTBEAT_TIMEOUT_MS", "") or 3000)
        self.delete_ms = int(g("ROSTER_DELETE_TIMEOUT_MS", "") or 6000)
        self.username = g("ROSTER_USERNAME", "")
        self.password = g("ROSTER_PASSWORD", "")
        self.cache_dir = g("ROSTER_CACHE_DIR", "") or tempfile.mkdtemp(prefix="roster-compat-")
        os.makedirs(self.cache_dir, exist_ok=True)

    def e_metadata(self):
        return {
            "role": "ephemeral",
            "preserved.heart.beat.interval": str(self.beat_ms),
            "preserved.heart.beat.timeout": str(self.timeout_ms),
            "preserved.ip.delete.timeout": str(self.delete_ms),
        }


def emit(obj):
    _out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    _out.flush()


def version(text):
    emit({"version": text})


def wait(name):
    """Prints a wait line and returns the driver's answer (a dict, or None at EOF)."""
    emit({"wait": name})
    line = sys.stdin.readline()
    if not line:
        log.warning("stdin closed while waiting for %s", name)
        return None
    log.info("driver answered %s: %s", name, line.strip())
    try:
        return json.loads(line)
    except ValueError:
        return {"raw": line.strip()}


def block_forever():
    """After `wait stop`: keep the client alive until the driver kills us or closes stdin."""
    while sys.stdin.readline():
        pass


class Step:
    """Runs one step; fn returns the detail text, or raises to fail the step."""

    def __init__(self, name):
        self.name = name

    def run(self, fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            ok = True
        except Exception as e:  # every step is reported, failed or not
            log.exception("step %s failed", self.name)
            detail = "%s: %s" % (type(e).__name__, e)
            ok = False
        ms = int((time.monotonic() - t0) * 1000)
        line = {"step": self.name, "ok": ok, "ms": ms}
        if detail:
            line["detail"] = str(detail)
        emit(line)
        return ok


def step(name, fn):
    return Step(name).run(fn)


def until(pred, timeout, interval=0.1):
    """Polls pred() until it returns something truthy or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)
