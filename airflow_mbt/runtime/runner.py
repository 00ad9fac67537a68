"""``run_pipeline``: run every step of a manifest in order, in this process, each through
``runtime.invocation.invoke`` (the one path ``mbt step execute`` and the operators use), sharing
one ``TargetRuntime`` across the steps.

Progress events passed to ``progress(event)`` (plain dicts):
``{"event": "start", "index": i, "total": n, "step", "run_id"}`` before a step and
``{"event": "end", "index", "total", "step", "run_id", "status": "success"|"failed"|"skipped"|
"terminated", "seconds", "error"?}`` after it (``skipped`` for each step after a failure, with
``seconds`` 0). The run stops at the first failure; ``run_results.json`` is written either way
(``RunResults``); the runtime is closed at the end (frameworks, connections).

Partitioned serving (``serving.partitions``): the partitioned steps run once per partition,
recorded as ``step[i]`` (events carry that name too): one partition after another in this process,
or with ``parallel=K`` in K worker processes (spawned; each opens its own runtime). The steps of
later partitions are skipped after a failure (sequential), or run on (parallel: the others were
already running); ``verify`` then does not run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow_mbt.constants import StepStatus
from airflow_mbt.errors import MBTError, StepTerminated, describe
from airflow_mbt.manifest import Manifest
from airflow_mbt.partitions import is_partitioned_step, plan_of
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


def _phases(manifest: Manifest) -> list[tuple[str, ...] | str]:
    """The steps in order, the partitioned ones (``serving.partitions``) grouped into one tuple."""
    plan = plan_of(manifest.config)
    phases: list[tuple[str, ...] | str] = []
    block: list[str] = []
    for step in manifest.steps:
        if is_partitioned_step(plan, step.name):
            block.append(step.name)
            continue
        if block:
            phases.append(tuple(block))
            block = []
        phases.append(step.name)
    if block:
        phases.append(tuple(block))
    return phases


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to the parent of a ``--parallel`` worker), else an
    ``MBTError`` with its message and retryability."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling problem
        err = MBTError(describe(exc))
        err.retryable = getattr(exc, "retryable", True)
        err.step = getattr(exc, "step", None)
        return err


def _partition_worker(manifest_text: str, project_dir: str, run: RunContext,
                      steps: tuple[str, ...]) -> list[tuple[str, Any]]:
    """One partition's steps in a ``--parallel`` worker process (own runtime and connections):
    ``[(step, StepResult | exception)]``, stopping at the first failure."""
    manifest = Manifest.from_json(manifest_text)
    out: list[tuple[str, Any]] = []
    with TargetRuntime.from_manifest(manifest, Path(project_dir)) as runtime:
        for step in steps:
            try:
                out.append((step, invoke(manifest, step, run, runtime=runtime)))
            except BaseException as exc:  # noqa: BLE001 - handed to the parent process
                out.append((step, _portable(exc)))
                break
    return out


def _partition_outcomes(manifest: Manifest, runtime: TargetRuntime, run: RunContext, steps: tuple[str, ...],
                        parallel: int) -> Iterator[tuple[str, int, Any, float]]:
    """(step, partition, StepResult | exception, seconds) for every step of every partition:
    in this process one partition after another, or in ``parallel`` worker processes."""
    plan = plan_of(manifest.config)
    assert plan is not None
    if parallel <= 1:
        for index in range(plan.count):
            part = replace(run, partition=index)
            for step in steps:
                t0 = time.monotonic()
                try:
                    result: Any = invoke(manifest, step, part, runtime=runtime)
                except BaseException as exc:  # noqa: BLE001 - recorded by the caller
                    yield step, index, exc, round(time.monotonic() - t0, 3)
                    return
                yield step, index, result, result.seconds
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    text = manifest.to_json()
    with ProcessPoolExecutor(max_workers=min(parallel, plan.count),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_partition_worker, text, str(runtime.project_dir), replace(run, partition=i), steps)
                   for i in range(plan.count)]
        for index, future in enumerate(futures):
            for step, value in future.result():
                yield step, index, value, getattr(value, "seconds", 0.0)


def run_pipeline(manifest: Manifest, runtime: TargetRuntime, *, run_id: str | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None,
                 results_path: Path | str | None = None, run: RunContext | None = None,
                 parallel: int = 1) -> dict[str, Any]:
    """Run all steps; returns the run results as JSON (also written to ``results_path``, default
    ``<project>/target/<pipeline>/run_results.json``). On a step failure the results are written
    with ``status: "failed"`` (``"terminated"`` after SIGTERM) and the error is re-raised, its
    message prefixed with the step name (non-``MBTError`` exceptions wrapped in ``StepFailedError``).

    With ``serving.partitions`` the partitioned steps run once per partition (results named
    ``step[i]``): one partition after another, or ``parallel`` processes at a time."""
    run_id = validate_run_id(run.run_id if run else run_id) if (run or run_id) else new_run_id()
    run = resolve_interval(run or RunContext(run_id=run_id), manifest)
    path = Path(results_path) if results_path else run_results.default_path(runtime.project_dir, manifest.name)
    emit = progress or (lambda event: None)
    phases = _phases(manifest)
    plan = plan_of(manifest.config)
    total = sum(len(p) * (plan.count if plan else 1) if isinstance(p, tuple) else 1 for p in phases)
    results = RunResults(pipeline=manifest.name, run_id=run_id, target=manifest.target_name, run=run.to_json())
    started = time.monotonic()
    failure: BaseException | None = None
    done: set[str] = set()
    index = 0

    def record(name: str, outcome: Any, seconds: float) -> None:
        nonlocal failure, index
        index += 1
        base = {"index": index, "total": total, "step": name, "run_id": run_id}
        if not isinstance(outcome, BaseException):
            results.steps.append(replace(outcome, name=name))
            emit({"event": "end", **base, "status": str(StepStatus.SUCCESS), "seconds": outcome.seconds})
            return
        failure = failure or outcome
        failed = replace(failed_step_result(name.split("[")[0], outcome, seconds, run_id), name=name)
        results.steps.append(failed)
        emit({"event": "end", **base, "status": str(failed.status), "seconds": failed.seconds,
              "error": failed.error})

    def skip(name: str) -> None:
        nonlocal index
        index += 1
        results.steps.append(StepResult(name, StepStatus.SKIPPED, run_id=run_id))
        emit({"event": "end", "index": index, "total": total, "step": name, "run_id": run_id,
              "status": str(StepStatus.SKIPPED), "seconds": 0})

    try:
        for phase in phases:
            if isinstance(phase, tuple):
                assert plan is not None
                names = [f"{s}[{i}]" for i in range(plan.count) for s in phase]
                if failure is not None:
                    for name in names:
                        skip(name)
                    continue
                seen: set[str] = set()
                for step, part, outcome, seconds in _partition_outcomes(manifest, runtime, run, phase, parallel):
                    name = f"{step}[{part}]"
                    seen.add(name)
                    record(name, outcome, seconds)
                for name in names:
                    if name not in seen:
                        skip(name)
                if failure is None:
                    done.update(phase)
                continue
            step_name = phase
            if failure is not None:
                skip(step_name)
                continue
            emit({"event": "start", "index": index + 1, "total": total, "step": step_name, "run_id": run_id})
            t0 = time.monotonic()
            try:
                outcome = invoke(manifest, step_name, run, runtime=runtime)
            except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised below
                failure = exc
                record(step_name, exc, round(time.monotonic() - t0, 3))
                if not isinstance(exc, Exception):  # interrupted or terminated: stop now
                    break
                continue
            done.add(step_name)
            record(step_name, outcome, outcome.seconds)
        try:
            results.mlflow_run_id = _mlflow_run_id(manifest, runtime, run_id, done)
        except Exception as exc:  # noqa: BLE001 - the results file must still be written
            log.warning("could not read the mlflow_run artifact of run %s: %s", run_id, describe(exc))
    finally:
        finish(results, failure, complete=len(done) >= len(manifest.steps), started=started)
        results.write(path)
        runtime.close()
    if failure is not None:
        raise failure
    return results.to_json()
