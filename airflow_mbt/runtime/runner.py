"""``run_pipeline``: run every step of a manifest in order, in this process, through
``execute_step`` (the same path as ``mbt step execute`` and the Airflow operator).

Progress events passed to ``progress(event)`` (plain dicts):
``{"event": "start", "index": i, "total": n, "step", "run_id"}`` before a step and
``{"event": "end", "index", "total", "step", "run_id", "status": "success"|"failed"|"skipped",
"seconds", "error"?}`` after it (``skipped`` for each step after a failure, with ``seconds`` 0).
The run stops at the first failure; ``run_results.json`` is written either way; the runtime is
closed at the end (frameworks, connections).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from airflow_mbt.errors import MBTError
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime import artifacts, run_results
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.runtime.executor import execute_step
from airflow_mbt.runtime.registry import ArtifactRegistry
from airflow_mbt.runtime.run_id import new_run_id, validate_run_id

log = logging.getLogger("airflow_mbt")

MLFLOW_RUN_ARTIFACT = "mlflow_run"


class StepFailedError(MBTError):
    """A step raised something that is not an ``MBTError``; the original is the ``__cause__``."""


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MBTError) else f"{type(exc).__name__}: {exc}"


def _mlflow_run_id(manifest: Manifest, runtime: TargetRuntime, run_id: str, done: set[str]) -> str | None:
    """The MLflow run id from the ``mlflow_run`` artifact, when a finished step produced it."""
    if not any(MLFLOW_RUN_ARTIFACT in s.output_names for s in manifest.steps if s.name in done):
        return None
    import tempfile

    storage = runtime.storage()
    entry = ArtifactRegistry(storage, run_id).lookup(MLFLOW_RUN_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="mbt-results-") as tmp:
        return artifacts.fetch(storage, MLFLOW_RUN_ARTIFACT, entry, Path(tmp)).get("run_id")


def run_pipeline(manifest: Manifest, runtime: TargetRuntime, *, run_id: str | None = None,
                 progress: Callable[[dict], None] | None = None,
                 results_path: Path | str | None = None) -> dict:
    """Run all steps; returns the run results (also written to ``results_path``, default
    ``<project>/target/<pipeline>/run_results.json``). On a step failure the results are
    written with ``status: "failed"`` and the error is re-raised, its message prefixed with the
    step name (non-``MBTError`` exceptions are wrapped in ``StepFailedError``)."""
    run_id = validate_run_id(run_id) if run_id else new_run_id()
    results_path = Path(results_path) if results_path else run_results.default_path(runtime.project_dir,
                                                                                    manifest.name)
    emit = progress or (lambda event: None)
    steps = manifest.steps
    total = len(steps)
    results = {"pipeline": manifest.name, "run_id": run_id, "target": manifest.target_name,
               "status": "running", "started_at": run_results.utc_now_iso(), "finished_at": None,
               "seconds": None, "mlflow_run_id": None, "steps": []}
    started = time.monotonic()
    failure: BaseException | None = None
    failed_step = None
    done: set[str] = set()
    try:
        for index, step in enumerate(steps, start=1):
            base = {"index": index, "total": total, "step": step.name, "run_id": run_id}
            if failure is not None:
                results["steps"].append({"name": step.name, "status": "skipped", "seconds": 0})
                emit({"event": "end", **base, "status": "skipped", "seconds": 0})
                continue
            emit({"event": "start", **base})
            t0 = time.monotonic()
            try:
                outcome = execute_step(manifest, step.name, run_id, runtime)
            except Exception as exc:  # noqa: BLE001 - recorded, then re-raised below
                seconds = round(time.monotonic() - t0, 3)
                failure, failed_step = exc, step.name
                results["steps"].append({"name": step.name, "status": "failed", "seconds": seconds,
                                         "error": describe(exc)})
                emit({"event": "end", **base, "status": "failed", "seconds": seconds, "error": describe(exc)})
                continue
            done.add(step.name)
            results["steps"].append({"name": step.name, "status": "success", "seconds": outcome["seconds"],
                                     "outputs": outcome["outputs"]})
            emit({"event": "end", **base, "status": "success", "seconds": outcome["seconds"]})
        try:
            results["mlflow_run_id"] = _mlflow_run_id(manifest, runtime, run_id, done)
        except Exception as exc:  # noqa: BLE001 - the results file must still be written
            log.warning("could not read the mlflow_run artifact of run %s: %s", run_id, describe(exc))
    finally:
        results["status"] = "failed" if failure is not None else "success"
        results["finished_at"] = run_results.utc_now_iso()
        results["seconds"] = round(time.monotonic() - started, 3)
        if failure is None and len(done) < total:  # interrupted (KeyboardInterrupt...)
            results["status"] = "failed"
        run_results.write(results_path, results)
        runtime.close()
    if failure is not None:
        raise _with_step(failure, failed_step)
    return results


def _with_step(exc: BaseException, step: str) -> BaseException:
    """The failure, its message naming the step; MBTErrors keep their type (CLI exit codes)."""
    message = f"step {step!r} failed: {describe(exc)}"
    if isinstance(exc, MBTError):
        exc.args = (message,)
        exc.step = step
        return exc
    wrapped = StepFailedError(message)
    wrapped.step = step
    wrapped.__cause__ = exc
    return wrapped
