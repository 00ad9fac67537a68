"""Reading one pipeline: its YAML, its ``base_pipeline`` chain (deep-merged, the child wins)
and template rendering. Produces a ``Located`` document ready for validation."""

from __future__ import annotations

from typing import Any, Mapping

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.schema_check import suggest
from airflow_mbt.pipeline.yaml_loader import Located, load_yaml
from airflow_mbt.project.render import Renderer
from airflow_mbt.project.root import Project


def deep_merge(base: Any, child: Any) -> Any:
    """Mappings merge key by key (recursively); anything else in ``child`` replaces ``base``."""
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return child


def pipeline_not_found(project: Project, name: str, field: str | None = None) -> MBTInputError:
    names = project.pipeline_names()
    hint = suggest(name, names) or (f"pipelines: {', '.join(names)}" if names else
                                    f"create {project.relative(project.pipeline_path(name))}")
    return MBTInputError(f"pipeline {name!r} not found in {project.relative(project.pipelines_dir)}/",
                         field=field, hint=hint)


def _load_with_bases(project: Project, name: str, chain: tuple[str, ...] = ()) -> Located:
    doc = load_yaml(project.pipeline_path(name), project.root)
    if doc.value is None:
        raise doc.error((), "the pipeline file is empty", hint="see `mbt init` for an example pipeline")
    if not isinstance(doc.value, dict):
        raise doc.error((), "a pipeline file must be a mapping of sections (project:, training:, ...)")
    base = doc.value.get("base_pipeline")
    if base is None:
        return doc
    where = ("base_pipeline",)
    if not isinstance(base, str) or not base:
        raise doc.error(where, f"expected the name of a base pipeline, got {base!r}",
                        hint="write e.g. base_pipeline: _base_churn")
    if base in chain + (name,):
        raise doc.error(where, "base_pipeline cycle: " + " -> ".join(chain + (name, base)),
                        hint="a base pipeline must not extend its own children")
    if not project.pipeline_path(base).is_file():
        others = [n for n in project.pipeline_names(include_bases=True) if n.startswith("_")]
        raise doc.error(where, f"base pipeline {base!r} not found "
                               f"({project.relative(project.pipeline_path(base))} does not exist)",
                        hint=suggest(base, others) or "base pipelines live in pipelines/_<name>.yaml")
    parent = _load_with_bases(project, base, chain + (name,))
    return Located(value=deep_merge(parent.value, doc.value), locs={**parent.locs, **doc.locs},
                   file=doc.file, text=doc.text)


def load_pipeline(project: Project, name: str, vars: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Located:
    """The merged and rendered pipeline document (not yet schema-checked)."""
    if not project.pipeline_path(name).is_file():
        raise pipeline_not_found(project, name)
    doc = _load_with_bases(project, name)
    renderer = Renderer(vars, env, allow_secrets=False)
    value = renderer.render(doc.value, doc.error)
    return Located(value=value, locs=doc.locs, file=doc.file, text=doc.text)
