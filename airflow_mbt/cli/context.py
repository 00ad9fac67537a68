"""Shared helpers of the commands: the project, ``--vars``, target resolution, warnings."""

from __future__ import annotations

import sys


def project_of(args):
    from airflow_mbt.project.root import find_project

    return find_project(project_dir=getattr(args, "project_dir", None))


def vars_of(args) -> dict:
    from airflow_mbt.project.render import parse_vars

    return parse_vars(getattr(args, "vars", None))


def target_of(project, args, vars_: dict | None = None):
    """The resolved target; its warnings go to stderr."""
    from airflow_mbt.project.profiles import resolve_target

    resolved = resolve_target(project, getattr(args, "target", None), getattr(args, "profile", None), vars_)
    for warning in resolved.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return resolved


def names_of(project, names: list[str]) -> list[str]:
    from airflow_mbt.errors import MBTInputError

    chosen = list(names) or project.pipeline_names()
    if not chosen:
        raise MBTInputError(f"no pipelines in {project.relative(project.pipelines_dir)}/",
                            hint="add pipelines/<name>.yaml (see `mbt init` for examples)")
    return chosen
