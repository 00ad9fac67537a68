"""Compilation: a validated pipeline + a resolved target -> ``Manifest``.

Output is deterministic: no timestamps, no absolute paths, canonical JSON.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from airflow_mbt.constants import parse_criterion
from airflow_mbt.manifest import Manifest, dotted_path
from airflow_mbt.pipeline.cadence import to_schedule
from airflow_mbt.pipeline.validation import ValidatedPipeline, validate_pipeline
from airflow_mbt.project.profiles import ResolvedTarget
from airflow_mbt.project.root import Project
from airflow_mbt.step_specs import VERIFY_STEP, dependencies, steps_of


def manifest_steps(kind: str, step_settings: dict, *, monitoring: bool = False, partitioned: bool = False,
                   registration: Mapping[str, Any] | None = None) -> list[dict]:
    """The steps of a pipeline of ``kind``: ``monitor`` before publish with ``serving.monitoring``,
    ``promote`` (and ``apply_promotion``) with ``training.registration``, and a partitioned serving
    pipeline ends with ``verify``."""
    approval = bool(registration) and (registration or {}).get("approval") == "required"
    specs = steps_of(kind, bool(registration), approval, monitoring=monitoring) + \
        ((VERIFY_STEP,) if partitioned else ())
    deps = dependencies(specs)
    return [{"name": s.name, "inputs": list(s.inputs),
             "outputs": [{"name": n, "kind": k} for n, k in s.outputs],
             "depends_on": deps[s.name],
             "resources": {k: str(v) for k, v in ((step_settings.get(s.name) or {}).get("resources") or {}).items()}}
            for s in specs]


def compiled_criteria(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``evaluation.validation_criteria`` strings (already checked by semantics) as
    ``{"metric", "op", "threshold"}`` objects: execution never parses criteria text."""
    items = ((config.get("training") or {}).get("evaluation") or {}).get("validation_criteria") or []
    out = []
    for text in items:
        parsed = parse_criterion(text)
        if parsed is not None:
            metric, op, threshold = parsed
            out.append({"metric": metric, "op": op, "threshold": threshold})
    return out


def source_positions(pipeline: ValidatedPipeline) -> dict[str, list[Any]]:
    """Dotted field path -> ``[file, line, col]`` for every value of the pipeline document."""
    return {dotted_path(path): [loc.file, loc.line, loc.col]
            for path, loc in pipeline.doc.locs.items() if path}


def build_manifest(pipeline: ValidatedPipeline, target: ResolvedTarget,
                   code: Mapping[str, Any] | None = None) -> Manifest:
    """``code``: the project code hash (``airflow_mbt.project.code.project_code``), if any."""
    from airflow_mbt import __version__

    cfg = pipeline.config
    project = cfg["project"]
    body = {
        "mbt_version": __version__,
        "pipeline": {
            "name": pipeline.name,
            "kind": pipeline.kind,
            "problem_type": project.get("problem_type"),
            "owner": project.get("owner"),
            "experiment_name": project["experiment_name"],
            "tags": list(project.get("tags") or []),
            "framework": cfg["training"]["model_training"].get("framework"),
            "source_file": pipeline.source_file,
            "source_yaml": pipeline.doc.text,
        },
        "schedule": to_schedule(cfg["deployment"]["cadence"]),
        "target": target.section,
        "config": cfg,
        "criteria": compiled_criteria(cfg),
        "positions": source_positions(pipeline),
        "steps": manifest_steps(pipeline.kind, cfg.get("steps") or {},
                                monitoring=bool((cfg.get("serving") or {}).get("monitoring")),
                                partitioned=bool((cfg.get("serving") or {}).get("partitions")),
                                registration=(cfg.get("training") or {}).get("registration")),
    }
    if code:
        body["code"] = dict(code)
    return Manifest.build(body)


def compile_pipeline(project: Project, name: str, target: ResolvedTarget,
                     vars: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                     warn: Callable[[str], None] | None = None) -> Manifest:
    """``warn`` receives the pipeline's validation warnings (e.g. a serving file's ``training:``)."""
    from airflow_mbt.pipeline.sql_check import dialect_of

    from airflow_mbt.project.code import project_code
    from airflow_mbt.project.kubernetes_target import check_kubernetes_target

    pipeline = validate_pipeline(project, name, vars, env, dialect=dialect_of(target.section))
    check_kubernetes_target(target, pipeline.config)
    for warning in pipeline.warnings if warn is not None else ():
        warn(warning)
    return build_manifest(pipeline, target, project_code(project.root, pipeline.config))
