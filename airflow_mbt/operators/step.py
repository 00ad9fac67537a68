"""``MBTStepOperator``: run one manifest step inside the Airflow worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mbt.operators.failures import airflow_failures
from airflow_mbt.operators.run_id import XCOM_KEY, RunIdTemplateMixin, run_id_from_context


def check_manifest_identity(manifest, pipeline: str, target: str) -> None:
    """The fetched manifest must be the pipeline/target the task was built for."""
    from airflow_mbt.errors import MBTInputError

    if manifest.name != pipeline:
        raise MBTInputError(f"manifest is for pipeline {manifest.name!r}, task expects {pipeline!r}",
                            field="pipeline")
    if manifest.target_name != target:
        raise MBTInputError(f"manifest was compiled for target {manifest.target_name!r}, task expects {target!r}",
                            field="target", hint=f"recompile with `mbt compile {pipeline} --target {target}`")


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
        from airflow_mbt.airflow_config import project_dir

        return Path(self.project_dir) if self.project_dir else project_dir()

    def execute(self, context) -> dict:
        from airflow_mbt.manifests import fetch_manifest
        from airflow_mbt.runtime.context import TargetRuntime
        from airflow_mbt.runtime.executor import execute_step

        ti = context["ti"]
        with airflow_failures():
            manifest = fetch_manifest(self.manifest_uri, conn_id=self.manifest_conn_id,
                                      expected_hash=self.manifest_hash)
            check_manifest_identity(manifest, self.pipeline, self.target)
            run_id = run_id_from_context(context)
            self.log.info("mbt run id %s (DAG run %s), step %s.%s, try %s, manifest %s",
                          run_id, context["dag_run"].run_id, self.pipeline, self.step, ti.try_number,
                          self.manifest_hash)
            ti.xcom_push(key=XCOM_KEY, value=run_id)
            runtime = TargetRuntime.from_manifest(manifest, self._project_dir())
            try:
                result = execute_step(manifest, self.step, run_id, runtime, try_number=ti.try_number)
            finally:
                runtime.close()
        self.log.info("mbt step %s.%s %s in %.1fs", self.pipeline, self.step, result.get("status"),
                      result.get("seconds") or 0.0)
        return result
