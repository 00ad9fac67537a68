"""Airflow-correct runs on the stack's PostgreSQL (issue 9): a dated scoring table scored one
logical date per run through the one invocation path (``run_pipeline`` -> ``invoke``, as
``mbt run`` and the operators use it), with the filter evaluated in the database.

* 7 logical dates -> exactly 7 partitions in ``churn_predictions``, each with its own
  ``execution_date`` and exactly that day's rows; a rerun of one date leaves one partition;
* a second pipeline writing the same table for the same date never touches the first's rows;
* a table without ``pipeline_name`` is migrated (ALTER TABLE ADD COLUMN);
* training reads a ``query`` joining two tables.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import dev_target, fetch, make_manifest, serving_config, training_config  # noqa: E402

from airflow_mbt.runtime.context import RunContext, TargetRuntime  # noqa: E402
from airflow_mbt.runtime.runner import run_pipeline  # noqa: E402
from airflow_mbt.scaffold.sample_data import (BILLING_COLUMNS, DAILY_COLUMNS, PROFILE_COLUMNS,  # noqa: E402
                                              write_dated_csvs)

pytestmark = pytest.mark.services

START, DAYS, PER_DAY = date(2026, 3, 1), 7, 100
JOIN = ("SELECT p.customer_id, p.tenure, p.contract_type, b.monthly_charges, b.total_charges, b.churned "
        "FROM customer_profiles AS p JOIN customer_billing AS b ON b.customer_id = p.customer_id")


def _run(n: int, suffix: str = "0000") -> RunContext:
    start = datetime.combine(START + timedelta(days=n), datetime.min.time(), tzinfo=timezone.utc)
    return RunContext(run_id=f"run_{start:%Y%m%d}_000000_{suffix}", logical_date=start, interval_start=start,
                      interval_end=start + timedelta(days=1), run_type="backfill")


def _seed(conn, schema: str, data_dir: Path) -> None:
    ddl = {
        "customer_profiles": "customer_id text, tenure integer, contract_type text",
        "customer_billing": "customer_id text, monthly_charges double precision, total_charges double precision, "
                            "churned integer",
        "customers_daily": "snapshot_date date, customer_id text, tenure integer, monthly_charges double precision, "
                           "total_charges double precision, contract_type text",
    }
    for table, cols in ddl.items():
        conn.execute(f'CREATE TABLE "{schema}".{table} ({cols})')
        columns = {"customer_profiles": PROFILE_COLUMNS, "customer_billing": BILLING_COLUMNS,
                   "customers_daily": DAILY_COLUMNS}[table]
        with conn.cursor().copy(f'COPY "{schema}".{table} ({", ".join(columns)}) FROM STDIN (FORMAT csv, HEADER)'
                                ) as copy:
            copy.write((data_dir / f"{table}.csv").read_bytes())
    # the spec's layout, from before pipeline_name existed: publish must migrate it
    conn.execute(f'CREATE TABLE "{schema}".churn_predictions (customer_id varchar(40), prediction integer, '
                 "prediction_probability double precision, execution_date timestamp, model_run_id varchar(100), "
                 "serving_run_id varchar(100))")


def _partitions(conn, schema: str) -> list[tuple]:
    return conn.execute(
        f'SELECT pipeline_name, execution_date, count(*), count(DISTINCT customer_id), min(serving_run_id), '
        f'bool_and(substr(customer_id, 6, 8) = to_char(execution_date, \'YYYYMMDD\')) '
        f'FROM "{schema}".churn_predictions GROUP BY 1, 2 ORDER BY 1, 2').fetchall()


def test_dated_serving_gives_one_partition_per_logical_date(tmp_path, scratch_schema, pg_warehouse):
    write_dated_csvs(tmp_path / "seed", n_customers=1500, start=START, days=DAYS, rows_per_day=PER_DAY)
    _seed(pg_warehouse, scratch_schema, tmp_path / "seed")
    target = dev_target(data_connector={"type": "postgres",
                                        "config": {"conn_id": "mbt_warehouse", "schema": scratch_schema}})

    cfg = training_config(training={"schema": {"ignored_columns": ["snapshot_date"]}})
    cfg["training"]["data_source"] = {"query": JOIN}
    training = make_manifest(cfg, target)
    with TargetRuntime.from_manifest(training, tmp_path) as runtime:
        run_pipeline(training, runtime, run=RunContext(run_id="run_20260301_000000_feed"))
    mlflow_run = fetch(tmp_path, training, "run_20260301_000000_feed", "mlflow_run")
    raw = fetch(tmp_path, training, "run_20260301_000000_feed", "train_set")
    assert {"customer_id", "tenure", "monthly_charges", "churned"} <= set(raw.columns)

    def serving(name: str):
        cfg = serving_config(mlflow_run["run_id"], project={"name": name}, serving={
            "data_source": {"scoring_table": "customers_daily", "where": "snapshot_date = {{ ds }}"},
            "output": {"destination": "database", "table": "churn_predictions"}})
        return make_manifest(cfg, target)

    daily = serving("serving_daily")
    for n in range(DAYS):  # a 7-day backfill
        with TargetRuntime.from_manifest(daily, tmp_path) as runtime:
            run_pipeline(daily, runtime, run=_run(n))
        # the read touched only the interval's rows
        assert fetch(tmp_path, daily, _run(n).run_id, "scoring_data").num_rows == PER_DAY

    parts = _partitions(pg_warehouse, scratch_schema)
    assert [(p[0], p[1].date(), p[2], p[3], p[5]) for p in parts] == [
        ("serving_daily", START + timedelta(days=n), PER_DAY, PER_DAY, True) for n in range(DAYS)]

    # a rerun (clear / second manual run) of day 3 with a new run id replaces that partition only
    with TargetRuntime.from_manifest(daily, tmp_path) as runtime:
        run_pipeline(daily, runtime, run=_run(3, "beef"))
    again = _partitions(pg_warehouse, scratch_schema)
    assert len(again) == DAYS and again[3][2] == PER_DAY and again[3][4] == _run(3, "beef").run_id
    assert [p for i, p in enumerate(again) if i != 3] == [p for i, p in enumerate(parts) if i != 3]

    # another pipeline, same table, same logical date: its own partition, the first one untouched
    other = serving("serving_other")
    with TargetRuntime.from_manifest(other, tmp_path) as runtime:
        run_pipeline(other, runtime, run=_run(3, "cafe"))
    both = _partitions(pg_warehouse, scratch_schema)
    assert [p[:4] for p in both if p[0] == "serving_daily"] == [p[:4] for p in again]
    assert [(p[0], p[1].date(), p[2]) for p in both if p[0] == "serving_other"] == [
        ("serving_other", START + timedelta(days=3), PER_DAY)]
    columns = [r[0] for r in pg_warehouse.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = "
        "'churn_predictions' ORDER BY ordinal_position", (scratch_schema,)).fetchall()]
    assert columns == ["customer_id", "prediction", "prediction_probability", "execution_date", "model_run_id",
                       "serving_run_id", "pipeline_name"]


def test_query_with_interval_parameters_streams_in_chunks(tmp_path, scratch_schema, pg_warehouse, monkeypatch):
    from airflow_mbt.plugins.connectors.postgres import PostgresConnector
    from airflow_mbt.sources import bind

    write_dated_csvs(tmp_path / "seed", n_customers=50, start=START, days=DAYS, rows_per_day=PER_DAY)
    _seed(pg_warehouse, scratch_schema, tmp_path / "seed")
    conn = PostgresConnector({"conn_id": "mbt_warehouse", "schema": scratch_schema})
    try:
        run = _run(2)
        week = RunContext(run_id=run.run_id, logical_date=run.logical_date, interval_start=run.interval_start,
                          interval_end=run.interval_start + timedelta(days=3))
        cfg = {"serving": {"data_source": {"query": (
            "SELECT d.customer_id, d.snapshot_date, p.tenure FROM customers_daily d "
            "LEFT JOIN customer_profiles p USING (customer_id) "
            "WHERE d.snapshot_date >= {{ interval_start }} AND d.snapshot_date < {{ interval_end }}"),
            "where": "tenure IS NULL"}}}
        chunks = list(conn.iter_source(bind(cfg, "serving", week), 120))
        assert [len(c) for c in chunks] == [120, 120, 60]
        days = {d for c in chunks for d in c["snapshot_date"]}
        assert days == {START + timedelta(days=n) for n in (2, 3, 4)}
        assert str(chunks[0]["snapshot_date"].dtype) == "object"
        # a value is bound, never SQL text: a quote in the template position cannot break out
        bad = {"serving": {"data_source": {"scoring_table": "customers_daily", "where": "customer_id = {{ ds }}"}}}
        from airflow_mbt.errors import MBTInputError

        with pytest.raises(MBTInputError, match="PostgreSQL rejected the data source"):
            conn.read_source(bind(bad, "serving", week))  # text = date: a typed parameter
    finally:
        conn.close()
