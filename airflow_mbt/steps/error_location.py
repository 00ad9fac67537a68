"""Point input errors raised while a step runs at the pipeline YAML, from the manifest alone.

Steps raise ``MBTInputError(field="training.model_training.config.model", ...)`` without a file;
``locate`` fills file, line and column from the source positions the compiler recorded in the
manifest (``Manifest.position``: the field, or its nearest written ancestor). Execution never
opens pipeline YAML, so this works the same in a pod that has no project files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest, field_path

SECTIONS = ("project", "deployment", "training", "serving", "steps")
StepRun = Callable[[Any, dict[str, Any]], dict[str, Any]]


def locate(err: MBTInputError, manifest: Manifest) -> MBTInputError:
    """Fill ``file``, ``line`` and ``col`` of a pipeline-field error that has no file yet."""
    if err.file or not err.field or field_path(err.field)[:1] not in [(s,) for s in SECTIONS]:
        return err
    pos = manifest.position(err.field)
    if pos is not None:
        err.relocate(file=pos.file, line=pos.line, col=pos.col)
    else:
        err.relocate(file=manifest.pipeline.source_file or None)
    return err


def with_pipeline_location(run: StepRun) -> StepRun:
    """Decorator for a step's ``run(ctx, inputs)``."""

    @functools.wraps(run)
    def wrapper(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            return run(ctx, inputs)
        except MBTInputError as err:
            raise locate(err, ctx.manifest) from err.__cause__

    return wrapper
