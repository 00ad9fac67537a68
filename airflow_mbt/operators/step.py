"""``MBTStepOperator``: run one manifest step inside the Airflow worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mbt.operators.failures import airflow_failures
from airflow_mbt.operators.run_id import XCOM_KEY, RunIdTemplateMixin, run_id_from_context


def check_manifest_identity(manifest: Any, pipeline: str, target: str) -> None:
    """The fetched manifest must be the pipeline/target the task was built for."""
    from airflow_mbt.runtime.invocation import check_identity

    check_identity(manifest, pipeline, target)


class MBTStepOperator(RunIdTemplateMixin, BaseOperator):
    """Fetch the manifest pinned by ``manifest_hash``, derive the MBT run id from the DAG run,
    push it to XCom (key ``mbt_run_id``) and call ``runtime.executor.execute_step``.

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
        from airflow_mbt.runtime.context import RunContext
        from airflow_mbt.runtime.invocation import ManifestSource, invoke_from_source

        ti = context["ti"]
        dag_run = context["dag_run"]
        with airflow_failures():
            run_id = run_id_from_context(context)
            run = RunContext(run_id=run_id, try_number=ti.try_number,
                             logical_date=context.get("logical_date") or getattr(dag_run, "run_after", None),
                             dag_id=getattr(dag_run, "dag_id", None), airflow_run_id=dag_run.run_id,
                             run_type=str(getattr(dag_run, "run_type", "") or "") or None)
            self.log.info("mbt run id %s (DAG run %s), step %s.%s, try %s, manifest %s",
                          run_id, dag_run.run_id, self.pipeline, self.step, ti.try_number, self.manifest_hash)
            ti.xcom_push(key=XCOM_KEY, value=run_id)
            source = ManifestSource(self.manifest_uri, conn_id=self.manifest_conn_id,
                                    expected_hash=self.manifest_hash)
            _, result = invoke_from_source(source, pipeline=self.pipeline, target=self.target, step=self.step,
                                           run=run, project_dir=self._project_dir())
        from airflow_mbt.redaction import redact_obj

        self.log.info("mbt step %s.%s %s in %.1fs", self.pipeline, self.step, result.status, result.seconds)
        xcom: dict[str, Any] = redact_obj(result.to_xcom())
        return xcom
