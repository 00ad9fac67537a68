"""Reading one pipeline: its YAML, its ``base_pipeline`` chain (deep-merged, the child wins)
and template rendering. Produces a ``Located`` document ready for validation.

Literal credentials are refused before rendering, non-finite or oversized numbers and URLs
with credentials after it. Names (the requested one and every ``base_pipeline``) are checked before they become paths; a
folder named like a pipeline file is reported as such, not as a missing pipeline."""

from __future__ import annotations

from typing import Any, Mapping

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.limits import check_numbers
from airflow_mbt.project.schema_check import suggest
from airflow_mbt.project.yaml_loader import Located, load_yaml
from airflow_mbt.project.credentials import check_credentials, check_rendered_urls
from airflow_mbt.project.render import Renderer
from airflow_mbt.project.root import NAME_HINT, Project, check_pipeline_name, name_problem


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


def _not_a_folder(project: Project, name: str, doc: Located | None = None, where: tuple = ()) -> None:
    path = project.pipeline_path(name)
    if path.exists() and not path.is_file():
        message = f"{'a folder' if path.is_dir() else 'not a regular file'}, not a pipeline file"
        hint = f"pipelines are files: rename the folder or remove it, and write {project.relative(path)}"
        if doc is not None:
            raise doc.error(where, f"{project.relative(path)} is {message}", hint=hint)
        raise MBTInputError(message, file=project.relative(path), field=None, hint=hint)


def _load_with_bases(project: Project, name: str, chain: tuple[str, ...] = ()) -> Located:
    doc = load_yaml(project.pipeline_path(name), project.root)
    if doc.value is None:
        raise doc.error((), "the pipeline file is empty", hint="see `mbt init` for an example pipeline")
    if not isinstance(doc.value, dict):
        raise doc.error((), "a pipeline file must be a mapping of sections (project:, training:, ...)",
                        hint="start with `schema_version: 1` and `project:`; see `mbt init` for an example")
    base = doc.value.get("base_pipeline")
    if base is None:
        return doc
    where = ("base_pipeline",)
    if not isinstance(base, str) or not base:
        raise doc.error(where, f"expected the name of a base pipeline, got {str(base)[:60]!r}",
                        hint="write e.g. base_pipeline: _base_churn")
    problem = name_problem(base)
    if problem:
        raise doc.error(where, problem, hint=NAME_HINT)
    if base in chain + (name,):
        raise doc.error(where, "base_pipeline cycle: " + " -> ".join(chain + (name, base)),
                        hint="a base pipeline must not extend its own children")
    _not_a_folder(project, base, doc, where)
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
    check_pipeline_name(name)
    _not_a_folder(project, name)
    if not project.pipeline_path(name).is_file():
        raise pipeline_not_found(project, name)
    doc = _load_with_bases(project, name)
    check_credentials(doc.value, doc.error)
    renderer = Renderer(vars, env, allow_secrets=False)
    value = renderer.render(doc.value, doc.error)
    rendered = Located(value=value, locs=doc.locs, file=doc.file, text=doc.text)
    check_numbers(value, rendered.error)
    check_rendered_urls(value, rendered.error)
    return rendered
