"""A broken pipeline under live Airflow: the input error reaches the task log with its hint, the
task fails at once (no retries for bad input) and no secret is written anywhere on the way."""

from __future__ import annotations

import json

import pytest

from spec_workflow import MANIFESTS, cli_env, edit_profile_for_local_stack, sh
from stack_clients import s3_client, s3_delete_prefix

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

NAME = "e2e_missing_table_v1"
TABLE = "no_such_table_e2e"


@pytest.fixture()
def broken_pipeline_deployed(airflow, stack_env, tmp_path):
    """A project whose training pipeline reads a table that does not exist, compiled for prod and
    deployed with `mbt deploy`; removed again afterwards (manifest and DAG)."""
    env = cli_env(stack_env)
    sh("mbt init broken-project", tmp_path, env)
    project = tmp_path / "broken-project"
    edit_profile_for_local_stack(project)
    (project / "pipelines" / "serving_churn_model_v1.yaml").unlink()
    src = project / "pipelines" / "training_churn_model_v1.yaml"
    text = src.read_text().replace("name: training_churn_model_v1", f"name: {NAME}")
    text = text.replace("\ntraining:\n", f"\ntraining:\n  data_source: {{label_table: {TABLE}}}\n", 1)
    (project / "pipelines" / f"{NAME}.yaml").write_text(text)
    src.unlink()
    s3 = s3_client(stack_env)
    bucket, prefix = MANIFESTS
    s3_delete_prefix(s3, bucket, f"{prefix}{NAME}/")
    sh(f"mbt compile {NAME} --target prod && mbt deploy --target prod --select {NAME}", project, env)
    yield project
    s3_delete_prefix(s3, bucket, f"{prefix}{NAME}/")
    for run in airflow.dag_runs(NAME) if airflow.try_get(f"/api/v2/dags/{NAME}") else []:
        if run["state"] not in ("success", "failed"):
            airflow.set_run_state(NAME, run["dag_run_id"], "failed")
    if airflow.try_get(f"/api/v2/dags/{NAME}") is not None:
        airflow.delete_dag(NAME)


def test_missing_table_fails_without_retry_and_logs_the_hint(broken_pipeline_deployed, airflow, stack_env):
    airflow.wait_for_dag(NAME, timeout=120)
    airflow.unpause(NAME)
    run_id = airflow.trigger(NAME)["dag_run_id"]
    run, retrying = airflow.wait_for_end(NAME, run_id, timeout=300)
    assert not retrying, f"bad input was retried: {retrying}"
    assert run["state"] == "failed", run
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(NAME, run_id)}
    assert tis["load_data"]["state"] == "failed" and tis["load_data"]["try_number"] == 1
    assert all(tis[t]["state"] in ("upstream_failed", None) for t in ("split_data", "train_model"))
    log = airflow.task_log(NAME, run_id, "load_data", 1)
    assert "AirflowFailException" in log and f"{TABLE} does not exist" in log, log[-3000:]
    assert "hint: " in log, log[-3000:]  # the MBTInputError hint reaches the task log
    secrets = {json.loads(stack_env["AIRFLOW_CONN_MBT_S3"])["password"],
               json.loads(stack_env["AIRFLOW_CONN_MBT_WAREHOUSE"])["password"]}
    assert not any(s in log for s in secrets)
