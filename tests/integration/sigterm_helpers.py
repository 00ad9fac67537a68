"""Send SIGTERM to a step process at a chosen moment and measure how long it takes to exit."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def sigterm_when(proc: subprocess.Popen, ready: Callable[[], bool], wait_s: float = 600) -> tuple[str, str, float]:
    """Poll ``ready()`` while ``proc`` runs; then SIGTERM it. Returns (stdout, stderr, seconds from
    the signal to the exit). The process is killed if it outlives the test."""
    try:
        deadline = time.monotonic() + wait_s
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the process ended before the moment to stop it: {proc.communicate()}"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        return out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
