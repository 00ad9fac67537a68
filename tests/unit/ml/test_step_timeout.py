"""A training step stopped by Airflow 3's ``execution_timeout`` (the task SDK's ``SIGALRM`` timer
raises ``AirflowTaskTimeout``, a ``BaseException``, wherever the step is) or by its custom
transform calling ``sys.exit``: the exception reaches the caller (Airflow decides on the retry)
and the pipeline's MLflow run, opened by ``load_data``, ends FAILED naming the step instead of
staying RUNNING forever (tests/e2e/test_airflow_timeout.py shows the timeout on live Airflow)."""

from __future__ import annotations

import mlflow
import pytest
from ml_pipeline_fixtures import make_manifest, make_project, training_config

from airflow_mbt.errors import MBTInputError
from airflow_mbt.runtime.context import RunContext
from airflow_mbt.runtime.invocation import invoke

# the task SDK's timer, due while the transform hangs (started here, not at invoke, so that the
# time load_data's inputs take on a busy machine cannot make it fire elsewhere)
HANG = ("import signal\nimport time\n\n\ndef run(df):\n    signal.setitimer(signal.ITIMER_REAL, 0.2)\n"
        "    time.sleep(60)\n    return df\n")
QUIT = "import sys\n\n\ndef run(df):\n    sys.exit(0)\n"


def _mlflow_run(project, run_id):
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("churn_prediction")
    [run] = client.search_runs([exp.experiment_id], f"tags.mbt_run_id = '{run_id}'")
    return run


def _opened(tmp_path, code: str, run_id: str):
    project = make_project(tmp_path)
    (project / "lib").mkdir()
    (project / "lib" / "stop.py").write_text(code)
    manifest = make_manifest(training_config(training={"preprocessing": {"custom_transforms": ["lib.stop:run"]}}))
    run = RunContext(run_id=run_id)
    invoke(manifest, "load_data", run, project_dir=project)
    assert _mlflow_run(project, run_id).info.status == "RUNNING"
    return project, manifest, run


def test_execution_timeout_ends_the_mlflow_run_failed(tmp_path):
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    project, manifest, run = _opened(tmp_path, HANG, "run_20260101_000000_7a01")
    with pytest.raises(AirflowTaskTimeout), timeout(3600):  # what _run_execute_callable wraps execute in
        invoke(manifest, "split_data", run, project_dir=project)
    mlflow_run = _mlflow_run(project, run.run_id)
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["mbt_status"] == "failed" and mlflow_run.data.tags["mbt_failed_step"] == "split_data"


def test_sys_exit_in_a_transform_ends_the_mlflow_run_failed(tmp_path):
    project, manifest, run = _opened(tmp_path, QUIT, "run_20260101_000000_7a02")
    with pytest.raises(MBTInputError, match=r"sys\.exit\(0\)"):
        invoke(manifest, "split_data", run, project_dir=project)
    mlflow_run = _mlflow_run(project, run.run_id)
    assert mlflow_run.info.status == "FAILED" and mlflow_run.data.tags["mbt_failed_step"] == "split_data"
