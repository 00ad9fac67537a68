"""``MBTStepOperator``: run one manifest step inside the Airflow worker process.

The run context (``run_context_from_airflow``) comes from the task context (a mapped task's
``map_index`` is its partition, ``serving.partitions``): logical date
(``run_after`` for a run without one), Airflow's data interval, run type, try number, dag id
and DAG run id; the invocation path completes the interval from the cadence when Airflow's is
empty (start == end under ``CronTriggerTimetable``).

Stopping: Airflow 3's supervisor sends SIGTERM to the task process (task marked failed or
cleared, lost heartbeat), then SIGKILL 5 s later. The task SDK's SIGTERM handler calls
``on_kill()`` in the main thread and returns; ``on_kill`` here raises ``StepTerminated`` from
that handler while a step runs, so the step unwinds at once (temp folders removed, the publish
transaction rolled back) instead of running on until SIGKILL.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mbt.operators.failures import airflow_failures
from airflow_mbt.operators.release_pin import pinned_release
from airflow_mbt.operators.run_id import (
    XCOM_KEY,
    RunIdTemplateMixin,
    run_id_from_context,
)


def emit_asset_event(context: Any, outlets: list[Any], summary: dict[str, Any]) -> None:
    """When a step's summary names an ``asset_uri`` (``promote`` moved a model alias), add the
    event of that model alias's asset to the task's ``AssetAlias`` outlet. A task whose alias did
    not move emits none. The asset is this worker's ``model_asset(model_name, alias)``, not the
    summary's URI text, so a pod on a runner image older than the asset scheme (``mlflow-model://``
    before ``x-mlflow-model://``) still emits the event the serving DAGs wait for."""
    if not summary.get("asset_uri"):
        return
    from airflow.sdk import Asset, AssetAlias

    from airflow_mbt.step_specs import model_asset

    name, uri = model_asset(str(summary.get("model_name")), str(summary.get("alias")))
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            extra = {k: summary.get(k) for k in ("model_name", "alias", "decision")}
            extra["version"] = (summary.get("challenger") or {}).get("version")
            context["outlet_events"][outlet].add(Asset(name=name, uri=uri), extra=extra)


def check_manifest_identity(manifest: Any, pipeline: str, target: str) -> None:
    """The fetched manifest must be the pipeline/target the task was built for."""
    from airflow_mbt.runtime.invocation import check_identity

    check_identity(manifest, pipeline, target)


def run_context_from_airflow(context: Any, run_id: str) -> Any:
    """The ``RunContext`` of this task instance (see the module docstring)."""
    from airflow_mbt.runtime.context import RunContext
    from airflow_mbt.runtime.interval import utc

    dag_run = context["dag_run"]

    def moment(value: Any) -> Any:
        return utc(value) if value is not None else None

    run_type = getattr(dag_run, "run_type", None)
    map_index = getattr(context["ti"], "map_index", -1)
    return RunContext(partition=map_index if isinstance(map_index, int) and map_index >= 0 else None,
                      run_id=run_id, try_number=int(context["ti"].try_number),
                      logical_date=moment(context.get("logical_date") or getattr(dag_run, "logical_date", None)
                                          or getattr(dag_run, "run_after", None)),
                      interval_start=moment(context.get("data_interval_start")),
                      interval_end=moment(context.get("data_interval_end")),
                      dag_id=getattr(dag_run, "dag_id", None), airflow_run_id=dag_run.run_id,
                      run_type=str(getattr(run_type, "value", run_type)) if run_type else None)


class MBTStepOperator(RunIdTemplateMixin, BaseOperator):
    """Fetch the release this DAG run pinned (``release_pin``; at first ``manifest_hash``), derive
    the MBT run id from the DAG run, push it to XCom (key ``mbt_run_id``) and call ``runtime.executor.execute_step``.

    Returns the step result (``name``, ``status``, ``seconds``, ``outputs``) as the XCom value.
    """

    template_fields = ("pipeline", "step", "manifest_uri", "manifest_hash", "target", "project_dir")
    ui_color = "#e8f4ea"

    def __init__(self, *, pipeline: str, step: str, manifest_uri: str, manifest_hash: str, target: str,
                 project_dir: str | None = None, manifest_conn_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", step)
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.step = step
        self.manifest_uri = manifest_uri
        self.manifest_hash = manifest_hash
        self.target = target
        self.project_dir = project_dir
        self.manifest_conn_id = manifest_conn_id

    def _project_dir(self) -> Path | None:
        from airflow_mbt.settings import project_dir

        return Path(self.project_dir) if self.project_dir else project_dir()

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mbt.runtime.invocation import ManifestSource, invoke_from_source

        ti = context["ti"]
        dag_run = context["dag_run"]
        with airflow_failures():
            self.manifest_hash = pinned_release(context, self, self.manifest_hash)
            run_id = run_id_from_context(context)
            run = run_context_from_airflow(context, run_id)
            self.log.info("mbt run id %s (DAG run %s), step %s.%s, try %s, manifest %s",
                          run_id, dag_run.run_id, self.pipeline, self.step, ti.try_number, self.manifest_hash)
            ti.xcom_push(key=XCOM_KEY, value=run_id)
            source = ManifestSource(self.manifest_uri, conn_id=self.manifest_conn_id,
                                    expected_hash=self.manifest_hash)
            self._running_in = threading.get_ident()
            try:
                _, result = invoke_from_source(source, pipeline=self.pipeline, target=self.target,
                                               step=self.step, run=run, project_dir=self._project_dir())
            finally:
                self._running_in = None
        from airflow_mbt.redaction import redact_obj

        self.log.info("mbt step %s.%s %s in %.1fs", self.pipeline, self.step, result.status, result.seconds)
        emit_asset_event(context, self.outlets, result.summary)
        xcom: dict[str, Any] = redact_obj(result.to_xcom())
        return xcom

    _running_in: int | None = None

    def on_kill(self) -> None:
        """Called by the task SDK's SIGTERM handler (main thread): stop the running step by raising
        ``StepTerminated`` there. Outside a step (or from another thread) it does nothing."""
        from airflow_mbt.errors import StepTerminated

        if self._running_in is not None and self._running_in == threading.get_ident():
            self.log.warning("mbt step %s.%s: SIGTERM, stopping the step", self.pipeline, self.step)
            raise StepTerminated(15)
