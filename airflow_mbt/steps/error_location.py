"""Point input errors raised while a step runs at the pipeline YAML.

Steps raise ``MBTInputError(field="training.model_training.config.model", ...)`` without a file;
``with_pipeline_location`` adds the pipeline's source file and, when the project's pipeline files
are present (local runs), the line and column of that field (following ``base_pipeline``).
"""

from __future__ import annotations

import functools
import re

from airflow_mbt.errors import MBTInputError

SECTIONS = ("project", "deployment", "training", "serving", "steps")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_path(field: str) -> tuple:
    """``"a.b[2].c"`` -> ``("a", "b", 2, "c")``."""
    return tuple(int(idx) if idx else name for name, idx in _PART.findall(field))


def locate(err: MBTInputError, manifest, project_dir) -> MBTInputError:
    """Fill ``file`` (and ``line``/``col`` when the YAML is at hand) of a pipeline-field error."""
    if err.file or not err.field or field_path(err.field)[:1] not in [(s,) for s in SECTIONS]:
        return err
    err.file = manifest.pipeline.get("source_file") or None
    try:
        from airflow_mbt.pipeline.loading import load_pipeline
        from airflow_mbt.project.root import Project

        doc = load_pipeline(Project(project_dir), manifest.name)
        loc = doc.loc(field_path(err.field))
        err.file, err.line, err.col = loc.file or err.file, loc.line, loc.col
    except Exception:  # noqa: BLE001 - the YAML may be absent (a pod) or changed: keep the file only
        pass
    err.args = (err.format(),)
    return err


def with_pipeline_location(run):
    """Decorator for a step's ``run(ctx, inputs)``."""

    @functools.wraps(run)
    def wrapper(ctx, inputs):
        try:
            return run(ctx, inputs)
        except MBTInputError as err:
            raise locate(err, ctx.manifest, ctx.project_dir)

    return wrapper
