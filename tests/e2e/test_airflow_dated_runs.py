"""Airflow-correct runs on the live Airflow (issue 9): a daily serving DAG scoring
``customers_daily_e2e`` one ``snapshot_date`` per run (``query: SELECT <the model's columns> ...
WHERE snapshot_date = {{ ds }}``).

With T = today (UTC): the warehouse holds 8 days T-7 .. T. A REST API backfill of the 7 days
T-7 .. T-1, then unpausing (Airflow 3's CronTriggerTimetable schedules the latest tick, T itself:
a run's logical date is when it fires), gives exactly 8
partitions of ``churn_predictions`` for the pipeline, each with its own ``execution_date`` and
exactly that day's rows. Clearing the DAG run of T-4 replaces that partition (new row versions,
same rows, one partition). A manual trigger at noon of T-2, a day that has a partition, replaces
that day's partition (mbt aligns a manual run to its cadence period), and a manual trigger for
exactly an existing logical date is refused by Airflow 3 (one DAG run per logical date) and
leaves the output as it was.

Uses the model the spec workflow chose (``spec_workflow`` fixture) and its project for CI.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from airflow_api import AirflowAPIError
from spec_workflow import DAG_RUN_TIMEOUT, WorkflowResult, cli_env, run_ci
from stack_clients import warehouse

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

NAME = "serving_churn_daily_e2e_v1"
TABLE = "customers_daily_e2e"
PER_DAY = 100
PIPELINE = f"""schema_version: 1
base_pipeline: _base_churn
project:
  name: {NAME}
  tags: [churn, serving, e2e]
deployment:
  mode: batch
  cadence: daily
serving:
  model_source:
    registry: mlflow
    run_id: "__RUN_ID__"
  data_source:  # the model's columns of one snapshot: the day is the run's logical date
    query: >-
      SELECT customer_id, tenure, monthly_charges, total_charges, contract_type
      FROM {TABLE} WHERE snapshot_date = {{{{ ds }}}}
  output:
    destination: database
    table: churn_predictions
    include_probabilities: true
"""


def _seed(env: dict, days: list) -> None:
    from airflow_mbt.scaffold.sample_data import DAILY_COLUMNS, iter_daily_rows

    with warehouse(env) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (snapshot_date date, customer_id text, tenure integer, "
                     "monthly_charges double precision, total_charges double precision, contract_type text)")
        with conn.cursor().copy(f"COPY {TABLE} ({', '.join(DAILY_COLUMNS)}) FROM STDIN") as copy:
            for row in iter_daily_rows(days[0], len(days), PER_DAY):
                copy.write_row([row[c] for c in DAILY_COLUMNS])
        conn.execute(f"CREATE INDEX ON {TABLE} (snapshot_date)")
        conn.execute("ALTER TABLE churn_predictions ADD COLUMN IF NOT EXISTS pipeline_name text")
        conn.execute("DELETE FROM churn_predictions WHERE pipeline_name = %s", (NAME,))


def _partitions(env: dict) -> dict:
    """execution_date -> (rows, distinct ids, rows of the right day, max row version)."""
    with warehouse(env) as conn:
        rows = conn.execute(
            "SELECT p.execution_date, count(*), count(DISTINCT p.customer_id), "
            f"count(*) FILTER (WHERE d.snapshot_date = p.execution_date::date), max(p.xmin::text::bigint) "
            f"FROM churn_predictions p LEFT JOIN {TABLE} d USING (customer_id) "
            "WHERE p.pipeline_name = %s GROUP BY 1 ORDER BY 1", (NAME,)).fetchall()
    return {r[0].date(): tuple(r[1:]) for r in rows}


def _wait_all(api, dag_id: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = api.dag_runs(dag_id)
        done = [r for r in runs if r["state"] in ("success", "failed")]
        if len(done) >= count and len(done) == len(runs):
            return runs
        assert time.monotonic() < deadline, f"{dag_id}: runs not finished after {timeout}s: " + \
            ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs)
        time.sleep(5)


def test_backfill_clear_and_manual_trigger_keep_one_partition_per_logical_date(spec_workflow, airflow, stack_env):
    today = datetime.now(timezone.utc).date()
    days = [today - timedelta(days=n) for n in range(7, -1, -1)]  # T-7 .. T
    _seed(stack_env, days)
    project = spec_workflow.project
    (project / "pipelines" / f"{NAME}.yaml").write_text(PIPELINE.replace("__RUN_ID__", spec_workflow.chosen_run_id))
    env = cli_env(stack_env)
    run_ci(project, env, WorkflowResult(project=project))  # validate, compile, deploy (all pipelines)

    airflow.wait_for_dag(NAME, timeout=240)
    backfill = airflow._raw("POST", "/api/v2/backfills", {
        "dag_id": NAME, "from_date": f"{days[0]}T00:00:00Z", "to_date": f"{days[6]}T00:00:00Z",
        "reprocess_behavior": "none", "max_active_runs": 2, "run_backwards": False, "dag_run_conf": {}})
    assert backfill["dag_id"] == NAME
    airflow.unpause(NAME)  # runs the backfill; catchup=False schedules only the latest tick (T)
    runs = _wait_all(airflow, NAME, 8, timeout=8 * DAG_RUN_TIMEOUT)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, "\n".join(airflow.describe_tasks(NAME, r) for r in failed)
    assert sorted(datetime.fromisoformat(r["logical_date"]).date() for r in runs) == days
    assert sum(r["run_type"] == "backfill" for r in runs) == 7

    parts = _partitions(stack_env)
    assert sorted(parts) == days
    assert all(p[:3] == (PER_DAY, PER_DAY, PER_DAY) for p in parts.values()), parts

    # clear the DAG run of T-4: the same logical date -> its partition replaced, nothing added
    cleared = next(r for r in runs if datetime.fromisoformat(r["logical_date"]).date() == days[3])
    airflow._raw("POST", f"/api/v2/dags/{NAME}/clearTaskInstances", {
        "dag_run_id": cleared["dag_run_id"], "dry_run": False, "only_failed": False, "reset_dag_runs": True})
    time.sleep(5)
    airflow.wait_for_run(NAME, cleared["dag_run_id"], timeout=DAG_RUN_TIMEOUT)
    after = _partitions(stack_env)
    assert sorted(after) == days
    assert after[days[3]][:3] == (PER_DAY, PER_DAY, PER_DAY) and after[days[3]][3] > parts[days[3]][3]
    assert {d: p for d, p in after.items() if d != days[3]} == {d: p for d, p in parts.items() if d != days[3]}

    # a manual trigger inside a day that has a partition (noon of T-2): that partition replaced
    manual = airflow._raw("POST", f"/api/v2/dags/{NAME}/dagRuns",
                          {"logical_date": f"{days[5]}T12:00:00Z", "conf": {}})
    finished = airflow.wait_for_run(NAME, manual["dag_run_id"], timeout=DAG_RUN_TIMEOUT)
    assert finished["state"] == "success", airflow.describe_tasks(NAME, manual["dag_run_id"])
    final = _partitions(stack_env)
    assert sorted(final) == days, final
    assert final[days[5]][:3] == (PER_DAY, PER_DAY, PER_DAY) and final[days[5]][3] > after[days[5]][3]
    assert {d: p for d, p in final.items() if d != days[5]} == {d: p for d, p in after.items() if d != days[5]}

    # exactly an existing logical date: Airflow 3 keeps one DAG run per logical date
    with pytest.raises(AirflowAPIError, match="409|already exists"):
        airflow._raw("POST", f"/api/v2/dags/{NAME}/dagRuns",
                     {"logical_date": f"{days[5]}T00:00:00Z", "conf": {}})
    assert _partitions(stack_env) == final
