"""Partitioned serving under live Airflow (issue 12): a serving DAG with ``serving.partitions:
{count: 4, by: customer_id}`` runs its partitioned steps as one mapped task group (4 map indexes
per step), publishes exactly the source rows, one set per partition, and ``verify`` passes.
Killing one partition's running task (SIGKILL, as an OOM kill or a lost worker would) makes Airflow
retry that partition alone, and the run still publishes every source row exactly once. Clearing
one partition's mapped tasks (a rerun of that partition) publishes that partition exactly once
again and leaves the other partitions' rows untouched (same ``xmin``).

The model is a tiny sklearn forest trained with ``mbt run`` on the dev target (shared MLflow
server); the DAG runs against the instance at ``MBT_AIRFLOW_URL``, its manifests deployed to
``MBT_MANIFESTS_URI`` (default: the shared ``manifests/`` prefix)."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone

import pytest
import yaml

from spec_workflow import cli_env, edit_profile_for_local_stack, sh
from stack_clients import s3_client, s3_delete_prefix, warehouse
import hold_transform

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

TRAIN, SERVE = "h_scale_e2e_train", "h_scale_e2e_serve"
SOURCE, OUTPUT = "h_scale_e2e_score", "h_scale_e2e_predictions"
ROWS, PARTS = 200_000, 4  # the issue: 4 partitions over 200k rows
MANIFESTS_URI = os.environ.get("MBT_MANIFESTS_URI", "s3://mbt-pipeline-artifacts/manifests/")

TRAINING_YAML = f"""base_pipeline: _base_churn
project: {{name: {TRAIN}, tags: [churn, h-scale]}}
deployment: {{mode: batch, cadence: monthly}}
training:
  model_training:
    framework: sklearn
    config: {{model: RandomForestClassifier, n_estimators: 10, max_depth: 4}}
  preprocessing:
    custom_transforms: ["lib.hold:hold"]
  evaluation:
    primary_metric: roc_auc
    generate_plots: false
    validation_criteria: ["roc_auc >= 0.55"]
"""
# A custom transform (logged with the model, so serving's apply_transforms runs it) that holds
# while HOLD exists: it keeps a partition's task running long enough for the test to kill it.
HOLD = f"/tmp/mbt-e2e-hold-{os.getpid()}"
HOLD_PY = hold_transform.source(HOLD, 300)

SERVING_YAML = """base_pipeline: _base_churn
project: {{name: {serve}, tags: [churn, h-scale]}}
deployment: {{mode: batch, cadence: daily}}
training:
  model_training: {{framework: sklearn}}
serving:
  model_source: {{registry: mlflow, run_id: "{run_id}"}}
  data_source: {{scoring_table: {source}}}
  partitions: {{count: {parts}, by: customer_id}}
  output: {{destination: database, table: {output}, include_probabilities: true}}
"""


def _drop(conn) -> None:
    conn.execute(f"DROP TABLE IF EXISTS public.{SOURCE}")
    conn.execute(f"DROP TABLE IF EXISTS public.{OUTPUT}")
    conn.commit()


@pytest.fixture()
def partitioned_serving(airflow, stack_env, tmp_path):
    """Train, seed the scoring table (ROWS rows), compile and deploy the partitioned serving
    pipeline; remove DAG, manifests and tables afterwards."""
    from airflow_mbt.scaffold.sample_data import write_csvs

    env = cli_env(stack_env)
    sh("mbt init h-scale-project", tmp_path, env)
    project = tmp_path / "h-scale-project"
    edit_profile_for_local_stack(project)
    for name in ("training_churn_model_v1", "serving_churn_model_v1"):
        (project / "pipelines" / f"{name}.yaml").unlink()
    (project / "pipelines" / f"{TRAIN}.yaml").write_text(TRAINING_YAML)
    (project / "lib" / "hold.py").write_text(HOLD_PY)
    profiles = project / "profiles.yaml"
    doc = yaml.safe_load(profiles.read_text())
    default_args = next(iter(doc.values()))["orchestrator"]["config"]["default_args"]
    default_args.pop("retry_delay_minutes", None)  # the scaffold's 5 minutes: one of the two keys only
    default_args.update(retries=2, retry_delay="5s")
    profiles.write_text(yaml.safe_dump(doc, sort_keys=False))
    sh(f"mbt run --select {TRAIN} --target dev", project, env)
    model_run = json.loads((project / "target" / TRAIN / "run_results.json").read_text())["mlflow_run_id"]
    (project / "pipelines" / f"{SERVE}.yaml").write_text(SERVING_YAML.format(
        serve=SERVE, run_id=model_run, source=SOURCE, parts=PARTS, output=OUTPUT))

    write_csvs(tmp_path / "seed", n_customers=10, n_score=ROWS, seed=12)
    conn = warehouse(stack_env)
    _drop(conn)
    import pandas as pd

    from airflow_mbt.plugins.connectors.postgres import PostgresConnector

    pg = PostgresConnector({"conn_id": "mbt_warehouse", "schema": "public"})  # the table typed like the CSV
    try:
        pg.write_table(pd.read_csv(tmp_path / "seed" / "customers_to_score.csv"), SOURCE)
    finally:
        pg.close()

    bucket, _, prefix = MANIFESTS_URI.removeprefix("s3://").partition("/")
    s3 = s3_client(stack_env)
    s3_delete_prefix(s3, bucket, f"{prefix}{SERVE}/")
    sh(f"mbt compile {SERVE} --target prod && mbt deploy --target prod --select {SERVE} --to {MANIFESTS_URI}",
       project, env)
    yield conn
    s3_delete_prefix(s3, bucket, f"{prefix}{SERVE}/")
    airflow.retire_dag(SERVE)
    conn.rollback()
    _drop(conn)
    conn.close()


def _first_run(airflow) -> str:
    """The DAG run unpausing creates (the latest daily interval), or a manual one if none comes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = airflow.dag_runs(SERVE)
        if runs:
            return str(runs[0]["dag_run_id"])
        time.sleep(3)
    return str(airflow.trigger(SERVE)["dag_run_id"])


def _partitions(conn, logical_date: str) -> list[tuple]:
    when = datetime.fromisoformat(logical_date.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)
    rows = conn.execute(
        f"SELECT mbt_partition, count(*), count(DISTINCT customer_id), min(xmin::text), max(xmin::text) "
        f"FROM public.{OUTPUT} WHERE pipeline_name = %s AND execution_date = %s GROUP BY 1 ORDER BY 1",
        (SERVE, when)).fetchall()
    conn.commit()
    return rows


def _kill_running(airflow, run_id: str, task_id: str, map_index: int, timeout: float = 240) -> int:
    """SIGKILL the process of a running mapped task (LocalExecutor: a process on this machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = {(t["task_id"], t["map_index"]): t for t in airflow.task_instances(SERVE, run_id)}.get((task_id, map_index))
        if ti and ti["state"] == "running" and ti.get("pid"):
            time.sleep(2)  # inside the held transform
            os.kill(int(ti["pid"]), signal.SIGKILL)
            return int(ti["pid"])
        time.sleep(1)
    raise AssertionError(f"{task_id}[{map_index}] never ran:\n{airflow.describe_tasks(SERVE, run_id)}")


def test_four_partitions_publish_the_source_rows_once_each(partitioned_serving, airflow):
    conn = partitioned_serving
    airflow.wait_for_dag(SERVE, timeout=180)
    open(HOLD, "w").close()
    try:
        airflow.unpause(SERVE)
        run_id = _first_run(airflow)
        # an OOM kill of partition 2's task: Airflow retries that partition alone
        _kill_running(airflow, run_id, "partitions.apply_transforms", 2)
        deadline = time.monotonic() + 120
        while (ti := {(t["task_id"], t["map_index"]): t for t in airflow.task_instances(SERVE, run_id)}[
                ("partitions.apply_transforms", 2)])["state"] == "running" and ti["try_number"] < 2:
            assert time.monotonic() < deadline, f"the killed task still runs:\n{airflow.describe_tasks(SERVE, run_id)}"
            time.sleep(2)
        assert ti["state"] in ("up_for_retry", "scheduled", "queued", "running"), ti  # not failed: a retry
    finally:
        os.unlink(HOLD)
    run, _retrying = airflow.wait_for_end(SERVE, run_id, timeout=600, fail_on_retry=False)
    assert run["state"] == "success", airflow.describe_tasks(SERVE, run_id)

    tis = airflow.task_instances(SERVE, run_id)
    killed = {(t["task_id"], t["map_index"]): t["try_number"] for t in tis if t["task_id"].endswith("apply_transforms")}
    assert killed == {("partitions.apply_transforms", i): (2 if i == 2 else 1) for i in range(PARTS)}, killed
    mapped = sorted((t["task_id"], t["map_index"]) for t in tis if t["task_id"].startswith("partitions."))
    assert mapped == sorted((f"partitions.{s}", i) for s in ("load_scoring_data", "apply_transforms", "predict",
                                                             "publish") for i in range(PARTS))
    assert {t["task_id"]: t["state"] for t in tis if t["map_index"] == -1} == {"load_model": "success",
                                                                               "verify": "success"}
    before = _partitions(conn, run["logical_date"] or run["run_after"])
    assert [r[0] for r in before] == list(range(PARTS))  # one set per partition
    assert sum(r[1] for r in before) == ROWS and all(r[1] == r[2] for r in before)
    verified = airflow.xcom(SERVE, run_id, "verify")
    assert verified["status"] == "success", verified

    # Airflow's retry of ONE partition: clear its mapped tasks (map index 2) and what follows
    airflow._raw("POST", f"/api/v2/dags/{SERVE}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "include_downstream": True, "only_failed": False,
        "task_ids": [["partitions.load_scoring_data", 2]], "reset_dag_runs": True})
    run, _retrying = airflow.wait_for_end(SERVE, run_id, timeout=600)
    assert run["state"] == "success", airflow.describe_tasks(SERVE, run_id)
    tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in airflow.task_instances(SERVE, run_id)}
    assert tries[("partitions.publish", 2)] == 2 and tries[("partitions.publish", 1)] == 1
    assert tries[("partitions.apply_transforms", 2)] == 3  # killed once, then cleared
    after = _partitions(conn, run["logical_date"] or run["run_after"])
    assert [r[:3] for r in after] == [r[:3] for r in before]  # partition 2 exactly once again
    assert after[2][3:] != before[2][3:]  # rewritten by the retry ...
    assert [r for i, r in enumerate(after) if i != 2] == [r for i, r in enumerate(before) if i != 2]  # ... alone
