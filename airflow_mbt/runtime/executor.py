"""``execute_step``: the one way a step body runs, under ``runtime.invocation`` (which ``mbt run``,
``mbt step execute``, ``MBTStepOperator`` and the pod entry point all call).

It fetches the step's declared inputs from the run's artifact registry (sha256 verified), looks
the step up in the ``StepSpec`` registry (``step_specs.py``: ``spec.module`` defines
``run(ctx, inputs)``), calls it in a fresh work directory, checks and stores the declared outputs
at ``<pipeline>/<run_id>/<step>/<artifact><ext>`` and records them in one conditional registry update.
Re-running a step for the same run overwrites its outputs (idempotent retries). Exceptions from
the step propagate unchanged: classifying them is the invocation path's job. The caller owns
``runtime`` and closes it.
"""

from __future__ import annotations

import importlib
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_mbt.constants import StepStatus
from airflow_mbt.errors import MBTError, MBTInputError, StepTerminated
from airflow_mbt.manifest import Manifest, ManifestStep
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.context import RunContext, StepContext, TargetRuntime
from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
from airflow_mbt.runtime.run_id import validate_run_id
from airflow_mbt.runtime.run_results import StepResult
from airflow_mbt.step_specs import step_spec

log = logging.getLogger("airflow_mbt")

STEP_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def step_module(step_name: str) -> ModuleType:
    """The module implementing step ``step_name``, found through its ``StepSpec``."""
    spec = step_spec(step_name)
    if spec is None:
        raise MBTError(f"no step named {step_name!r} is registered")
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name != spec.module:
            raise
        raise MBTError(f"step module {spec.module} is not installed") from None
    if not callable(getattr(module, "run", None)):
        raise MBTError(f"step module {spec.module} has no run(ctx, inputs) function")
    return module


def execute_step(manifest: Manifest, step_name: str, run_id: str, runtime: TargetRuntime, *,
                 try_number: int = 1, work_dir: Path | str | None = None,
                 run: RunContext | None = None) -> StepResult:
    """Run one step of one run; ``StepResult.outputs`` maps artifact names to URIs. Exceptions
    from the step propagate unchanged."""
    if not isinstance(step_name, str) or not STEP_NAME.fullmatch(step_name):
        raise MBTInputError(f"invalid step name {step_name!r}", field="--step")
    step = manifest.step(step_name)
    validate_run_id(run_id)
    log.info("mbt step %s.%s run_id=%s try=%s target=%s", manifest.name, step.name, run_id,
             try_number, manifest.target_name)
    started = time.monotonic()
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix=f"mbt-{step.name}-")) if work_dir is None else Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".mbt-io-", dir=root))
    try:
        storage = runtime.storage()
        registry = ArtifactRegistry(storage, run_id, pipeline=manifest.name)
        registry.load()
        producers = manifest.producers()
        found = {name: registry.lookup(name, producers.get(name)) for name in step.inputs}  # all, first
        inputs = {name: artifacts.fetch(storage, name, entry, scratch) for name, entry in found.items()}
        module = step_module(step.name)
        ctx = StepContext(manifest=manifest, step=step, run_id=run_id, runtime=runtime,
                          work_dir=root, try_number=try_number,
                          run=run or RunContext(run_id=run_id, try_number=try_number))
        outputs = module.run(ctx, inputs)
        entries = _store_outputs(storage, manifest.name, run_id, step, outputs, scratch)
        registry.record(entries)
    except BaseException:
        # the invocation path prints the one message for this failure; this is only the timing
        log.info("mbt step %s.%s run_id=%s failed after %.1fs", manifest.name, step.name, run_id,
                 time.monotonic() - started)
        raise
    finally:
        _remove_tree(scratch if not own_dir else root)
    seconds = round(time.monotonic() - started, 3)
    log.info("mbt step %s.%s run_id=%s ok in %.1fs", manifest.name, step.name, run_id, seconds)
    return StepResult(name=step.name, status=StepStatus.SUCCESS, seconds=seconds, run_id=run_id,
                      outputs={name: e["uri"] for name, e in entries.items()}, summary=dict(ctx.summary))


def _remove_tree(path: Path) -> None:
    """Remove a temp folder; a SIGTERM arriving meanwhile (``StepTerminated``, raised once) lets the
    removal finish before the step stops."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except StepTerminated:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _store_outputs(storage: Any, pipeline: str, run_id: str, step: ManifestStep, outputs: Any,
                   scratch: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(outputs, dict):
        raise MBTError(f"step {step.name!r} returned {type(outputs).__name__}, expected a dict of outputs")
    missing = [n for n in step.output_names if n not in outputs]
    if missing:
        raise MBTError(f"step {step.name!r} did not return its declared outputs: {', '.join(missing)}")
    extra = sorted(set(outputs) - set(step.output_names))
    if extra:
        log.warning("step %s returned undeclared outputs (ignored): %s", step.name, ", ".join(extra))
    kinds = step.output_kinds
    return {name: artifacts.store(storage, run_id, step.name, name, kinds[name], outputs[name], scratch,
                                  pipeline=pipeline)
            for name in step.output_names}
