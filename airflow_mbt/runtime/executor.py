"""``execute_step``: the one way a step body runs, under ``runtime.invocation`` (which ``mbt run``,
``mbt step execute``, ``MBTStepOperator`` and the pod entry point all call).

It fetches the step's declared inputs from the run's artifact registry (sha256 verified), looks
the step up in the ``StepSpec`` registry (``step_specs.py``: ``spec.module`` defines
``run(ctx, inputs)``), calls it in a fresh work directory, checks and stores the declared outputs
at ``<pipeline>/<run_id>/<step>/<artifact><ext>`` and records them in one conditional registry update.
A partitioned step (``serving.partitions``, ``partitions.py``) runs for ``run.partition``: its
outputs go to ``<pipeline>/<run_id>/<step>/p<i>/<artifact><ext>``, registered as ``<artifact>@p<i>``.
Re-running a step for the same run overwrites its outputs (idempotent retries). Exceptions from
the step propagate unchanged: classifying them is the invocation path's job. The caller owns
``runtime`` and closes it.
"""

from __future__ import annotations

import importlib
import logging
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_mbt.constants import PipelineKind, StepStatus
from airflow_mbt.errors import MBTError, MBTInputError, StepTerminated
from airflow_mbt.manifest import Manifest, ManifestStep
from airflow_mbt.partitions import PARTITIONED_STEPS, artifact_name, is_partitioned_step, plan_of, storage_step
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
    ctx = StepContext(manifest=manifest, step=step, run_id=run_id, runtime=runtime, work_dir=root,
                      try_number=try_number, run=run or RunContext(run_id=run_id, try_number=try_number))
    try:
        storage = runtime.storage()
        registry = ArtifactRegistry(storage, run_id, pipeline=manifest.name)
        registry.load()
        partition = _partition(manifest, step.name, run)
        found = _input_entries(manifest, step, registry, partition)  # all, first
        inputs = {name: ([artifacts.fetch(storage, name, e, scratch) for e in entry] if isinstance(entry, list)
                         else artifacts.fetch(storage, name, entry, scratch)) for name, entry in found.items()}
        module = step_module(step.name)
        outputs = module.run(ctx, inputs)
        del inputs  # a step's input frames are not held while its outputs are written
        entries = _store_outputs(storage, manifest.name, run_id, step, outputs, scratch, partition)
        registry.record(entries)
    except BaseException as exc:
        # the invocation path prints the one message for this failure; this is only the timing
        log.info("mbt step %s.%s run_id=%s failed after %.1fs", manifest.name, step.name, run_id,
                 time.monotonic() - started)
        # every failure but Ctrl-C, including BaseExceptions that are not StepTerminated: Airflow 3's
        # AirflowTaskTimeout (execution_timeout) and a custom transform's SystemExit
        if manifest.pipeline.kind is PipelineKind.TRAINING and not isinstance(exc, KeyboardInterrupt):
            from airflow_mbt.tracking.pipeline_run import fail

            fail(ctx, exc)  # the training run's MLflow run ends FAILED, not RUNNING forever
        raise
    finally:
        _remove_tree(scratch if not own_dir else root)
    seconds = round(time.monotonic() - started, 3)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    log.info("mbt step %s.%s run_id=%s ok in %.1fs, peak RSS %.0f MiB", manifest.name, step.name, run_id,
             seconds, peak)
    return StepResult(name=step.name, status=StepStatus.SUCCESS, seconds=seconds, run_id=run_id,
                      outputs={name: e["uri"] for name, e in entries.items()}, rows_removed=dict(ctx.rows_removed),
                      summary=dict(ctx.summary), peak_rss_mib=peak)


def _remove_tree(path: Path) -> None:
    """Remove a temp folder; a SIGTERM arriving meanwhile (``StepTerminated``, raised once) lets the
    removal finish before the step stops."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except StepTerminated:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _partition(manifest: Manifest, step: str, run: RunContext | None) -> int | None:
    """The partition a partitioned step runs for (``run.partition``); ``None`` for other steps.
    A partitioned step without one is an input error naming ``--partition``."""
    plan = plan_of(manifest.config)
    index = run.partition if run is not None else None
    if not is_partitioned_step(plan, step):
        if index is not None:
            raise MBTInputError(f"step {step!r} is not partitioned; got partition {index}", field="--partition",
                                hint=f"partitioned steps: {', '.join(PARTITIONED_STEPS)} (with serving.partitions)")
        return None
    assert plan is not None
    if index is None:
        raise MBTInputError(f"step {step!r} runs once per partition ({plan.count}); which one?", field="--partition",
                            hint=f"pass --partition 0..{plan.count - 1} (mbt run runs them all)")
    plan.filter(index)  # range check
    return index


def _input_entries(manifest: Manifest, step: ManifestStep, registry: ArtifactRegistry,
                   partition: int | None) -> dict[str, Any]:
    """Registry entries of the step's inputs: a partitioned step reads its partition's artifacts
    (``name@p<i>``) and the run's shared ones (the model); a step after the partitions (``verify``)
    gets the list of every partition's entry, in partition order."""
    producers = manifest.producers()
    plan = plan_of(manifest.config)
    found: dict[str, Any] = {}
    for name in step.inputs:
        producer = producers.get(name)
        if producer is None or not is_partitioned_step(plan, producer):
            found[name] = registry.lookup(name, producer)
        elif partition is not None:
            found[name] = registry.lookup(artifact_name(name, partition), f"{producer}[{partition}]")
        else:
            assert plan is not None
            found[name] = [registry.lookup(artifact_name(name, i), f"{producer}[{i}]") for i in range(plan.count)]
    return found


def _store_outputs(storage: Any, pipeline: str, run_id: str, step: ManifestStep, outputs: Any,
                   scratch: Path, partition: int | None = None) -> dict[str, dict[str, Any]]:
    if not isinstance(outputs, dict):
        raise MBTError(f"step {step.name!r} returned {type(outputs).__name__}, expected a dict of outputs")
    missing = [n for n in step.output_names if n not in outputs]
    if missing:
        raise MBTError(f"step {step.name!r} did not return its declared outputs: {', '.join(missing)}")
    extra = sorted(set(outputs) - set(step.output_names))
    if extra:
        log.warning("step %s returned undeclared outputs (ignored): %s", step.name, ", ".join(extra))
    kinds = step.output_kinds
    if partition is None:
        return {name: artifacts.store(storage, run_id, step.name, name, kinds[name], outputs[name], scratch,
                                      pipeline=pipeline)
                for name in step.output_names}
    return {artifact_name(name, partition): artifacts.store(storage, run_id, storage_step(step.name, partition), name,
                                                            kinds[name], outputs[name], scratch, pipeline=pipeline)
            for name in step.output_names}
