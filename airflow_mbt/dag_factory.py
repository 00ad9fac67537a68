"""Build Airflow DAGs from published manifests at parse time (used by ``dags/mbt_loader.py``).

One DAG per manifest: ``dag_id`` = pipeline name, schedule from the manifest, default_args from
``target.orchestrator.config.default_args``, one task per step (``MBTStepOperator``, or
``MBTKubernetesStepOperator`` when the target's executor is ``kubernetes``; the Kubernetes
provider is imported only then), dependencies from ``depends_on``. With ``serving.partitions``
the partitioned steps form one mapped task group (``partition_group``), expanded over the
partitions. When Airflow parses for one
task (``get_parsing_context().dag_id``), only that DAG is built. Nothing heavy is imported at
module level.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    from airflow_mbt.operators import lifecycle

    with DAG(dag_id=manifest.name, schedule=lifecycle.schedule(manifest), start_date=START_DATE, catchup=False,
             max_active_runs=1, default_args=default_args(manifest), tags=tags, doc_md=doc_md(manifest),
             description=f"mbt {manifest.kind} pipeline {manifest.name} ({manifest.target_name})",
             auto_register=False) as dag:  # collected from the loader's globals() only when complete
        common: dict[str, Any] = dict(pipeline=manifest.name, manifest_uri=manifest_uri,
                                      manifest_hash=manifest.content_hash, target=manifest.target_name,
                                      manifest_conn_id=manifest_conn_id)
        tasks: dict[str, Any] = {}

        def make_task(step: Any, partitioned: bool = False) -> Any:
            if kind == ExecutorType.KUBERNETES:
                from airflow_mbt.manifest import plain
                from airflow_mbt.operators.kubernetes import MBTKubernetesStepOperator

                task: Any = MBTKubernetesStepOperator(
                    step=step.name, executor_config=plain(manifest.target.executor.config),
                    resources=dict(step.resources), partitioned=partitioned, **common)
            else:
                from airflow_mbt.operators.step import MBTStepOperator

                task = MBTStepOperator(step=step.name, project_dir=project_dir, **common)
            task.outlets = lifecycle.outlets(manifest, step.name)
            return task

        from airflow_mbt.partitions import is_partitioned_step, plan_of

        plan = plan_of(manifest.config)
        mapped = [s for s in manifest.steps if is_partitioned_step(plan, s.name)]
        for step in manifest.steps:
            if step not in mapped:
                tasks[step.name] = make_task(step)
        if mapped and plan is not None:
            tasks.update(partition_group(mapped, make_task, plan.count))
        edges: set[tuple[int, int]] = set()
        for step in manifest.steps:
            for upstream in step.depends_on:
                a, b = tasks[upstream], tasks[step.name]
                if a is not b and (id(a), id(b)) not in edges:  # edges inside the group are set in it
                    edges.add((id(a), id(b)))
                    a >> b
        approval = lifecycle.approval_task(manifest)
        if approval is not None:  # promote >> approve_promotion >> apply_promotion
            tasks["promote"] >> approval >> tasks["apply_promotion"]
    return dag


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector off while DAGs are built, as before.

    Everything a parse allocates (manifests, DAGs, operators and their task graph) stays alive
    until the DAG file is done, so a collection during the build scans a growing heap and frees
    nothing: with 200 manifests, collections were a quarter of the build. Garbage is collected
    as usual afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


PARTITION_GROUP = "partitions"


def partition_group(steps: list[Any], make_task: Any, count: int) -> dict[str, Any]:
    """The partitioned steps (``serving.partitions``) as ONE mapped task group ``partitions``,
    expanded over ``range(count)``: per partition a chain of tasks whose ``map_index`` is the
    partition (the operators read it from the task instance); a failed partition is retried
    alone. Returns step name -> the group, for the dependencies outside it."""
    from airflow.sdk import task_group

    def body(partition: Any) -> None:  # the mapped argument; tasks read ti.map_index instead
        inner = {step.name: make_task(step, True) for step in steps}
        for step in steps:
            for upstream in step.depends_on:
                if upstream in inner:
                    inner[upstream] >> inner[step.name]

    group = task_group(group_id=PARTITION_GROUP)(body).expand(partition=list(range(count)))
    return {step.name: group for step in steps}


def build_dags(source: str | None = None, *, conn_id: str | None = None) -> dict[str, Any]:
    """All DAGs from the manifests under ``source`` (default ``[mbt] manifests_uri`` / env
    ``MBT_MANIFESTS_URI``). A broken manifest is logged with its location and reason and skipped."""
    with _no_gc_pauses():
        return _build_dags(source, conn_id=conn_id)


def _build_dags(source: str | None, *, conn_id: str | None) -> dict[str, Any]:
    from airflow.sdk import get_parsing_context

    from airflow_mbt.errors import MBTInputError
    from airflow_mbt.manifests import LoadResult, load_manifests, load_owned_manifests
    from airflow_mbt.manifests.ownership import parse_teams
    from airflow_mbt.settings import setting

    started = time.perf_counter()
    only = get_parsing_context().dag_id
    source = source or setting("manifests_uri")
    conn_id = conn_id or (setting("manifests_conn_id") if source.startswith("s3://") else None)
    try:
        teams = parse_teams(setting("teams"))
    except MBTInputError as exc:  # the loader cannot tell whose manifests to trust: build none, say why
        log.error("mbt: %s", exc)
        teams, result = [], LoadResult(source=source, errors={exc.field or "[mbt] teams": str(exc)})
    else:
        result = (load_owned_manifests(source, teams, conn_id=conn_id, only=only) if teams
                  else load_manifests(source, conn_id=conn_id, only=only))
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
