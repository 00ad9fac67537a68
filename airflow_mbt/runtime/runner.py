"""``run_pipeline``: run every step of a manifest in order, in this process, each through
``runtime.invocation.invoke`` (the one path ``mbt step execute`` and the operators use), sharing
one ``TargetRuntime`` across the steps.

Progress events passed to ``progress(event)`` (plain dicts):
``{"event": "start", "index": i, "total": n, "step", "run_id"}`` before a step and
``{"event": "end", "index", "total", "step", "run_id", "status": "success"|"failed"|"skipped"|
"terminated", "seconds", "error"?}`` after it (``skipped`` for each step after a failure, with
``seconds`` 0). The run stops at the first failure; ``run_results.json`` is written either way
(``RunResults``); the runtime is closed at the end (frameworks, connections).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_mbt.constants import StepStatus
from airflow_mbt.errors import StepTerminated, describe
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime import artifacts, run_results
from airflow_mbt.runtime.context import RunContext, TargetRuntime
from airflow_mbt.errors import StepFailedError
from airflow_mbt.runtime.interval import resolve as resolve_interval
from airflow_mbt.runtime.invocation import invoke
from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
from airflow_mbt.runtime.run_id import new_run_id, validate_run_id
from airflow_mbt.runtime.run_results import RunResults, StepResult

log = logging.getLogger("airflow_mbt")

MLFLOW_RUN_ARTIFACT = "mlflow_run"
__all__ = ["StepFailedError", "run_pipeline", "failed_step_result", "finish", "MLFLOW_RUN_ARTIFACT"]


def _mlflow_run_id(manifest: Manifest, runtime: TargetRuntime, run_id: str, done: set[str]) -> str | None:
    """The MLflow run id from the ``mlflow_run`` artifact, when a finished step produced it."""
    if not any(MLFLOW_RUN_ARTIFACT in s.output_names for s in manifest.steps if s.name in done):
        return None
    storage = runtime.storage()
    entry = ArtifactRegistry(storage, run_id, pipeline=manifest.name).lookup(MLFLOW_RUN_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="mbt-results-") as tmp:
        value: Any = artifacts.fetch(storage, MLFLOW_RUN_ARTIFACT, entry, Path(tmp)).get("run_id")
        return str(value) if value else None


def failed_step_result(step: str, exc: BaseException, seconds: float, run_id: str) -> StepResult:
    """The ``StepResult`` of a step that raised ``exc`` (``terminated`` after SIGTERM)."""
    status = StepStatus.TERMINATED if isinstance(exc, StepTerminated) else StepStatus.FAILED
    error = describe(exc.__cause__ if isinstance(exc, StepFailedError) and exc.__cause__ else exc)
    error = error.removeprefix(f"step {step!r} failed: ").removeprefix("unexpected ")
    return StepResult(step, status, seconds=round(seconds, 3), run_id=run_id, error=error)


def finish(results: RunResults, failure: BaseException | None, *, complete: bool, started: float) -> None:
    """Set the final status, end time and duration of ``results``."""
    if isinstance(failure, StepTerminated):
        results.status = StepStatus.TERMINATED
    elif failure is not None or not complete:  # failed, or interrupted (KeyboardInterrupt...)
        results.status = StepStatus.FAILED
    else:
        results.status = StepStatus.SUCCESS
    results.finished_at = run_results.utc_now_iso()
    results.seconds = round(time.monotonic() - started, 3)


def run_pipeline(manifest: Manifest, runtime: TargetRuntime, *, run_id: str | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None,
                 results_path: Path | str | None = None, run: RunContext | None = None) -> dict[str, Any]:
    """Run all steps; returns the run results as JSON (also written to ``results_path``, default
    ``<project>/target/<pipeline>/run_results.json``). On a step failure the results are written
    with ``status: "failed"`` (``"terminated"`` after SIGTERM) and the error is re-raised, its
    message prefixed with the step name (non-``MBTError`` exceptions wrapped in ``StepFailedError``)."""
    run_id = validate_run_id(run.run_id if run else run_id) if (run or run_id) else new_run_id()
    run = resolve_interval(run or RunContext(run_id=run_id), manifest)
    path = Path(results_path) if results_path else run_results.default_path(runtime.project_dir, manifest.name)
    emit = progress or (lambda event: None)
    total = len(manifest.steps)
    results = RunResults(pipeline=manifest.name, run_id=run_id, target=manifest.target_name, run=run.to_json())
    started = time.monotonic()
    failure: BaseException | None = None
    done: set[str] = set()
    try:
        for index, step in enumerate(manifest.steps, start=1):
            base = {"index": index, "total": total, "step": step.name, "run_id": run_id}
            if failure is not None:
                results.steps.append(StepResult(step.name, StepStatus.SKIPPED, run_id=run_id))
                emit({"event": "end", **base, "status": str(StepStatus.SKIPPED), "seconds": 0})
                continue
            emit({"event": "start", **base})
            t0 = time.monotonic()
            try:
                outcome = invoke(manifest, step.name, run, runtime=runtime)
            except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised below
                failure = exc
                failed = failed_step_result(step.name, exc, time.monotonic() - t0, run_id)
                results.steps.append(failed)
                emit({"event": "end", **base, "status": str(failed.status), "seconds": failed.seconds,
                      "error": failed.error})
                if not isinstance(exc, Exception):  # interrupted or terminated: stop now
                    break
                continue
            done.add(step.name)
            results.steps.append(outcome)
            emit({"event": "end", **base, "status": str(StepStatus.SUCCESS), "seconds": outcome.seconds})
        try:
            results.mlflow_run_id = _mlflow_run_id(manifest, runtime, run_id, done)
        except Exception as exc:  # noqa: BLE001 - the results file must still be written
            log.warning("could not read the mlflow_run artifact of run %s: %s", run_id, describe(exc))
    finally:
        finish(results, failure, complete=len(done) == total, started=started)
        results.write(path)
        runtime.close()
    if failure is not None:
        raise failure
    return results.to_json()
