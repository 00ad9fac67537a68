"""Build Airflow DAGs from published manifests at parse time (used by ``dags/mbt_loader.py``).

One DAG per manifest: ``dag_id`` = pipeline name, schedule from the manifest, default_args from
``target.orchestrator.config.default_args``, one task per step (``MBTStepOperator``, or
``MBTKubernetesStepOperator`` when the target's executor is ``kubernetes``; the Kubernetes
provider is imported only then), dependencies from ``depends_on``. When Airflow parses for one
task (``get_parsing_context().dag_id``), only that DAG is built. Nothing heavy is imported at
module level.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_mbt.constants import TIMEDELTA_ARGS, ExecutorType, parse_duration

if TYPE_CHECKING:
    from airflow_mbt.manifest import Manifest

log = logging.getLogger("airflow_mbt.dag_factory")

START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)

# The outcome of the last build_dags() call in this process (for tests and diagnostics).
LAST_PARSE: dict[str, Any] = {}


def default_args(manifest: Manifest) -> dict[str, Any]:
    args = dict(manifest.target.default_args)
    minutes = args.pop("retry_delay_minutes", None)
    if minutes is not None:
        args["retry_delay"] = timedelta(minutes=float(minutes))
    for name in TIMEDELTA_ARGS:  # durations ("90s", "1h30m", seconds), checked at compile
        seconds = parse_duration(args.get(name)) if not isinstance(args.get(name), timedelta) else None
        if seconds is not None:
            args[name] = timedelta(seconds=seconds)
    args.setdefault("owner", manifest.pipeline.owner or "airflow")
    return args


def doc_md(manifest: Manifest) -> str:
    p = manifest.pipeline
    rows = [("Owner", p.owner), ("Kind", manifest.kind), ("Problem type", p.problem_type),
            ("Framework", p.framework), ("Target", manifest.target_name),
            ("Executor", executor_type(manifest)), ("Content hash", f"`{manifest.content_hash}`"),
            ("Source", f"`{p.source_file}`")]
    table = "\n".join(f"| {k} | {v or ''} |" for k, v in rows)
    source = p.source_yaml.rstrip("\n")
    return (f"### mbt pipeline `{manifest.name}`\n\n| | |\n|---|---|\n{table}\n\n"
            f"Built from a compiled manifest by airflow-mbt.\n\n```yaml\n{source}\n```\n")


def executor_type(manifest: Manifest) -> str:
    from airflow_mbt.settings import setting

    return manifest.target.executor.type or setting("default_executor") or ExecutorType.LOCAL


def build_dag(manifest: Manifest, manifest_uri: str, *, manifest_conn_id: str | None = None,
              project_dir: str | None = None) -> Any:
    """The DAG of one manifest; ``manifest_uri`` is what its tasks fetch (pinned by hash)."""
    from airflow.sdk import DAG

    kind = executor_type(manifest)
    if kind not in ExecutorType.values():
        from airflow_mbt.errors import MBTInputError

        raise MBTInputError(f"unknown executor type {kind!r}", field=f"outputs.{manifest.target_name}.executor.type",
                            hint=f"use one of: {', '.join(ExecutorType.values())}")
    tags = sorted({*manifest.pipeline.tags, str(manifest.kind), "mbt"})
    with DAG(dag_id=manifest.name, schedule=manifest.schedule, start_date=START_DATE, catchup=False,
             max_active_runs=1, default_args=default_args(manifest), tags=tags, doc_md=doc_md(manifest),
             description=f"mbt {manifest.kind} pipeline {manifest.name} ({manifest.target_name})",
             auto_register=False) as dag:  # collected from the loader's globals() only when complete
        common: dict[str, Any] = dict(pipeline=manifest.name, manifest_uri=manifest_uri,
                                      manifest_hash=manifest.content_hash, target=manifest.target_name,
                                      manifest_conn_id=manifest_conn_id)
        tasks: dict[str, Any] = {}
        for step in manifest.steps:
            if kind == ExecutorType.KUBERNETES:
                from airflow_mbt.manifest import plain
                from airflow_mbt.operators.kubernetes import MBTKubernetesStepOperator

                tasks[step.name] = MBTKubernetesStepOperator(
                    step=step.name, executor_config=plain(manifest.target.executor.config),
                    resources=dict(step.resources), **common)
            else:
                from airflow_mbt.operators.step import MBTStepOperator

                tasks[step.name] = MBTStepOperator(step=step.name, project_dir=project_dir, **common)
        for step in manifest.steps:
            for upstream in step.depends_on:
                tasks[upstream] >> tasks[step.name]
    return dag


def build_dags(source: str | None = None, *, conn_id: str | None = None) -> dict[str, Any]:
    """All DAGs from the manifests under ``source`` (default ``[mbt] manifests_uri`` / env
    ``MBT_MANIFESTS_URI``). A broken manifest is logged with its location and reason and skipped."""
    from airflow.sdk import get_parsing_context

    from airflow_mbt.manifests import load_manifests
    from airflow_mbt.settings import setting

    started = time.perf_counter()
    only = get_parsing_context().dag_id
    source = source or setting("manifests_uri")
    conn_id = conn_id or (setting("manifests_conn_id") if source.startswith("s3://") else None)
    result = load_manifests(source, conn_id=conn_id, only=only)
    project_dir = setting("project_dir") or None
    dags: dict[str, Any] = {}
    errors = dict(result.errors)
    for name, manifest in result.manifests.items():
        try:
            dags[name] = build_dag(manifest, result.pinned_uris[name], manifest_conn_id=conn_id,
                                   project_dir=project_dir)
        except Exception as exc:  # one bad manifest must not hide the others
            errors[result.pinned_uris[name]] = f"{type(exc).__name__}: {exc}"
            log.error("mbt: cannot build DAG %s from %s: %s", name, result.pinned_uris[name], exc)
    seconds = time.perf_counter() - started
    scope = f" (task-time parse of {only})" if only else ""
    log.info("mbt: parsed %d manifests into %d DAGs (%d from cache, %d errors) in %.2fs%s",
             len(result.manifests) + len(result.errors), len(dags), result.from_cache, len(errors), seconds, scope)
    LAST_PARSE.clear()
    LAST_PARSE.update(source=result.source, dag_ids=sorted(dags), errors=errors, from_cache=result.from_cache,
                      fetched=result.fetched, warnings=list(result.warnings), seconds=seconds, only=only)
    return dags


def register(namespace: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Build the DAGs and put them into a DAG file's ``globals()`` (Airflow collects them there)."""
    dags = build_dags(source)
    namespace.update(dags)
    return dags
