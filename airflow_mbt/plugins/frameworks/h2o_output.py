"""What the h2o client library prints, routed to the ``airflow_mbt.h2o`` logger at DEBUG.

Contract: inside ``with h2o_output():`` on the calling thread

* lines the h2o library prints to stdout/stderr (connection banners, "Your H2O cluster version is
  ... old", job warnings such as "Dropping bad and constant columns") and warnings raised from
  h2o modules (``H2ODependencyWarning``, ...) are logged at DEBUG on ``airflow_mbt.h2o`` instead
  of reaching the terminal or the task log; other threads' output (``mbt run`` progress lines)
  and warnings from other modules pass through unchanged;
* when that logger is enabled for DEBUG (``mbt -v`` sets it), nothing is captured: h2o prints as
  it always does, progress bars included (``chatty()`` tells the caller to ask h2o for them).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

LOGGER = "airflow_mbt.h2o"
log = logging.getLogger(LOGGER)


def chatty() -> bool:
    """True when H2O's own output should be shown (``mbt -v``)."""
    return log.isEnabledFor(logging.DEBUG)


class _ThreadTee(io.TextIOBase):
    """A stand-in for sys.stdout/stderr: the owner thread's writes go to a buffer, others' through."""

    def __init__(self, real: TextIO, owner: int, buffer: io.StringIO) -> None:
        self._real, self._owner, self._buffer = real, owner, buffer

    def write(self, text: str) -> int:
        if threading.get_ident() == self._owner:
            return self._buffer.write(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):  # encoding, fileno, ... of the real stream
        return getattr(self._real, name)


def _from_h2o(w: warnings.WarningMessage) -> bool:
    """Raised inside the h2o package, or one of its H2O* warning classes."""
    if type(w.message).__name__.startswith("H2O"):
        return True
    h2o = sys.modules.get("h2o")
    home = os.path.dirname(getattr(h2o, "__file__", None) or "") if h2o else ""
    return bool(home) and os.path.abspath(w.filename).startswith(home + os.sep)


@contextmanager
def h2o_output() -> Iterator[None]:
    """Capture the h2o library's prints and warnings on this thread (see the module docstring)."""
    if chatty():
        yield
        return
    buffer = io.StringIO()
    real_out, real_err = sys.stdout, sys.stderr
    owner = threading.get_ident()
    sys.stdout = _ThreadTee(real_out, owner, buffer)
    sys.stderr = _ThreadTee(real_err, owner, buffer)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        sys.stdout, sys.stderr = real_out, real_err
        for w in caught:
            if _from_h2o(w):
                log.debug("h2o warning: %s: %s", type(w.message).__name__, w.message)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.debug("h2o: %s", line.rstrip())
