"""A long-lived H2O MOJO scorer: one JVM per loaded MOJO, fed binary batches over a pipe.

Contract:

* ``MojoScorer(mojo_zip)`` starts ``java -cp h2o.jar:java/ MbtMojoScorer model.zip <threads>``
  (``java/MbtMojoScorer.java``, compiled into the ``.class`` shipped next to it; the genmodel
  classes come from the ``h2o.jar`` inside the installed h2o package, nothing is downloaded) and
  reads the model's header: category, feature names and domains, response levels.
* ``score(X)`` sends the features as float64 columns (categorical features as the index of their
  level in the MOJO's domain; unknown levels and missing values as NaN, like EasyPredict's
  ``convertUnknownCategoricalLevelsToNa``; absent columns as NaN) and returns GenModel
  ``score0``'s output, one row per input row: regression ``[value]``, classification
  ``[label index, p(level 0), p(level 1), ...]``. The JVM scores on all cores.
* The JVM lives until ``close()``, the scorer is garbage-collected, or the Python process exits
  (the JVM ends on end of input). Its stderr goes to a temporary file quoted in errors.

Trade-off (docs/ml-steps.md, "H2O scoring"): the JVM start (~0.5 s) and the model load are paid
once per step instead of once per call, and no CSV is written or parsed; the price is a small
Java class of our own, which must be rebuilt (``scripts/build_h2o_scorer.sh``) when it changes.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from airflow_mbt.errors import InfraError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

log = logging.getLogger("airflow_mbt.h2o")

CLASS_DIR = Path(__file__).with_name("java")
CLASS_NAME = "MbtMojoScorer"
JAVA_OPTIONS = ("-Xmx1g", "-XX:ReservedCodeCacheSize=128m", "-XX:+UseParallelGC")
BATCH_ROWS = 250_000  # rows per request: bounds the JVM's buffers (rows x features x 16 bytes)


@dataclass
class MojoHeader:
    """What the scorer reports about the MOJO before it serves batches."""

    category: str = ""
    preds: int = 0
    response: str = ""
    levels: list[str] = field(default_factory=list)
    features: list[tuple[str, list[str] | None]] = field(default_factory=list)


def _genmodel_jar() -> Path:
    import h2o

    return Path(h2o.__file__).parent / "backend" / "bin" / "h2o.jar"


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _stop(proc: subprocess.Popen, err_file) -> None:
    try:
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        err_file.close()


class MojoScorer:
    """One JVM serving ``score0`` for one MOJO (see the module docstring)."""

    def __init__(self, mojo: Path, threads: int | None = None) -> None:
        self.mojo = Path(mojo)
        jar = _genmodel_jar()
        if not (CLASS_DIR / f"{CLASS_NAME}.class").is_file():
            raise InfraError("H2O", f"{CLASS_DIR / (CLASS_NAME + '.class')} is missing from the installation",
                             hint="reinstall airflow-mbt (or run scripts/build_h2o_scorer.sh in a checkout)")
        self._err = tempfile.TemporaryFile(prefix="mbt-mojo-scorer-")
        cmd = ["java", *JAVA_OPTIONS, "-cp", f"{jar}{os.pathsep}{CLASS_DIR}", CLASS_NAME, str(self.mojo),
               str(threads or _threads())]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        except OSError as exc:
            self._err.close()
            raise InfraError("H2O", f"cannot start java for MOJO scoring: {exc}",
                             hint="install a Java 17 runtime (openjdk-17-jre-headless)") from None
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._err)
        self.header = self._read_header()
        log.debug("MOJO scorer pid %s for %s: %s, %d features", self._proc.pid, self.mojo, self.header.category,
                  len(self.header.features))

    def _failure(self, what: str) -> InfraError:
        self._err.seek(0)
        tail = self._err.read()[-1500:].decode("utf-8", "replace").strip()
        self.close()
        return InfraError("H2O", f"MOJO scorer for {self.mojo.name} {what}: {tail or 'no output'}")

    def _read_header(self) -> MojoHeader:
        header = MojoHeader()
        assert self._proc.stdout is not None
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise self._failure("exited before it was ready")
            parts = [unquote_plus(p) for p in line.decode("utf-8").rstrip("\n").split("\t")]
            kind = parts[0]
            if kind == "ready":
                return header
            if kind == "category":
                header.category = parts[1]
            elif kind == "preds":
                header.preds = int(parts[1])
            elif kind == "response":
                header.response, header.levels = parts[1], parts[2:]
            elif kind == "feature":
                header.features.append((parts[1], parts[3:] if parts[2] == "enum" else None))

    def _encode(self, X: "pd.DataFrame") -> "np.ndarray":
        import numpy as np
        import pandas as pd

        out = np.full((len(self.header.features), len(X)), np.nan, dtype="<f8")
        for i, (name, domain) in enumerate(self.header.features):
            if name not in X.columns:
                continue
            col = X[name]
            if domain is None:
                out[i] = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            else:
                values = col if col.dtype == object else col.astype("string").astype(object)
                codes = pd.Categorical(values, categories=domain).codes.astype("float64")
                codes[codes < 0] = np.nan
                out[i] = codes
        return out

    def score(self, X: "pd.DataFrame") -> "np.ndarray":
        """``score0`` output for every row of ``X`` (shape ``(len(X), preds)``)."""
        import numpy as np

        if not self.alive:
            raise InfraError("H2O", f"MOJO scorer for {self.mojo.name} is closed")
        parts = [self._score_batch(X.iloc[lo:lo + BATCH_ROWS]) for lo in range(0, len(X), BATCH_ROWS)]
        if not parts:
            return np.empty((0, self.header.preds))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _score_batch(self, X: "pd.DataFrame") -> "np.ndarray":
        import numpy as np

        payload = self._encode(X)
        want = len(X) * self.header.preds * 8
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(struct.pack("<q", len(X)))
            self._proc.stdin.write(memoryview(payload).cast("B"))
            self._proc.stdin.flush()
            raw = self._proc.stdout.read(want)
        except (BrokenPipeError, OSError):
            raise self._failure("stopped while scoring") from None
        if len(raw) != want:
            raise self._failure(f"returned {len(raw)} of {want} bytes")
        return np.frombuffer(raw, dtype="<f8").reshape(len(X), self.header.preds)

    @property
    def alive(self) -> bool:
        """False once closed (or after a failure)."""
        return self._finalizer.alive and self._proc.poll() is None

    def close(self) -> None:
        """Stop the JVM (idempotent)."""
        self._finalizer()
