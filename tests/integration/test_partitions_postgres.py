"""Partitioned serving on the stack's PostgreSQL (issue 12): ``serving.partitions`` through the
one invocation path (``run_pipeline`` -> ``invoke``, as ``mbt run`` uses it).

* local parity: 4 hash partitions (one after another) and 3 range partitions (2 processes,
  ``--parallel``) give exactly the ids and scores of the unpartitioned run, and ``verify`` passes;
* a partition retried alone (its four steps again, try 2) publishes that partition exactly once
  and leaves the other partitions' rows untouched (same ``xmin``: not rewritten).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (dev_target, fetch, make_manifest, make_project, serving_config,  # noqa: E402
                                  train_once, training_config)

from airflow_mbt.runtime.context import RunContext, TargetRuntime  # noqa: E402
from airflow_mbt.runtime.invocation import invoke  # noqa: E402
from airflow_mbt.runtime.runner import run_pipeline  # noqa: E402

pytestmark = pytest.mark.services

N_SCORE = 3000
WHEN = datetime(2026, 4, 1, tzinfo=timezone.utc)
PARTITIONED = ("load_scoring_data", "apply_transforms", "predict", "publish")


def _run(suffix: str, **kw) -> RunContext:
    return RunContext(run_id=f"run_20260401_000000_{suffix}", logical_date=WHEN, interval_start=WHEN - timedelta(days=1),
                      interval_end=WHEN, run_type="manual", **kw)


def _scores(conn, schema: str, pipeline: str) -> list[tuple]:
    return conn.execute(f'SELECT customer_id, prediction, prediction_probability FROM "{schema}".scale_predictions '
                        "WHERE pipeline_name = %s ORDER BY customer_id", (pipeline,)).fetchall()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("scale_parts"), n_customers=600, n_score=N_SCORE)
    _manifest, _run_id, mlflow_run = train_once(root, training_config(training={
        "evaluation": {"generate_plots": False},
        "model_training": {"config": {"model": "RandomForestClassifier", "n_estimators": 10, "max_depth": 4}}}))
    return root, mlflow_run["run_id"]


@pytest.fixture
def scoring(trained, scratch_schema, pg_warehouse):
    """The project's customers_to_score.csv as a PostgreSQL table of the scratch schema."""
    import pandas as pd

    from airflow_mbt.plugins.connectors.postgres import PostgresConnector

    root, model_run = trained
    conn = PostgresConnector({"conn_id": "mbt_warehouse", "schema": scratch_schema})
    try:
        conn.write_table(pd.read_csv(root / "sample_data" / "customers_to_score.csv"), "customers_to_score")
    finally:
        conn.close()
    target = dev_target(data_connector={"type": "postgres",
                                        "config": {"conn_id": "mbt_warehouse", "schema": scratch_schema}})

    def manifest(name: str, partitions: dict | None = None):
        serving = {"output": {"destination": "database", "table": "scale_predictions"}}
        if partitions:
            serving["partitions"] = partitions
        return make_manifest(serving_config(model_run, project={"name": name}, serving=serving), target)

    return root, manifest


def test_partitioned_runs_score_exactly_like_the_unpartitioned_run(scoring, scratch_schema, pg_warehouse):
    root, manifest = scoring
    plain = manifest("h_scale_plain")
    with TargetRuntime.from_manifest(plain, root) as runtime:
        run_pipeline(plain, runtime, run=_run("0001"))
    expected = _scores(pg_warehouse, scratch_schema, "h_scale_plain")
    assert len(expected) == N_SCORE == len({r[0] for r in expected})

    for name, partitions, parallel, suffix in (
            ("h_scale_hash", {"count": 4, "by": "customer_id"}, 1, "0002"),
            ("h_scale_range", {"count": 3, "by_range": "tenure"}, 2, "0003")):
        parted = manifest(name, partitions)
        with TargetRuntime.from_manifest(parted, root) as runtime:
            results = run_pipeline(parted, runtime, run=_run(suffix), parallel=parallel)
        assert results["status"] == "success"
        count = partitions["count"]
        assert [s["name"] for s in results["steps"]] == (
            ["load_model"] + [f"{s}[{i}]" for i in range(count) for s in PARTITIONED] + ["verify"])
        assert _scores(pg_warehouse, scratch_schema, name) == expected  # same ids, same scores
        per_part = pg_warehouse.execute(
            f'SELECT mbt_partition, count(*) FROM "{scratch_schema}".scale_predictions WHERE pipeline_name = %s '
            "GROUP BY 1 ORDER BY 1", (name,)).fetchall()
        verified = fetch(root, parted, _run(suffix).run_id, "verify_result")
        assert verified["source_rows"] == verified["published_rows"] == N_SCORE
        assert {p["partition"]: p["rows"] for p in verified["partitions"] if p["rows"]} == dict(per_part)
        assert sum(r[1] for r in per_part) == N_SCORE and len(per_part) > 1  # rows really split


def test_a_partition_retried_alone_publishes_exactly_once(scoring, scratch_schema, pg_warehouse):
    root, manifest = scoring
    parted = manifest("h_scale_retry", {"count": 4, "by": "customer_id"})
    run = _run("0004")
    with TargetRuntime.from_manifest(parted, root) as runtime:
        run_pipeline(parted, runtime, run=run)

    def state():
        return pg_warehouse.execute(
            f'SELECT mbt_partition, count(*), count(DISTINCT customer_id), min(xmin::text), max(xmin::text) '
            f'FROM "{scratch_schema}".scale_predictions WHERE pipeline_name = %s GROUP BY 1 ORDER BY 1',
            ("h_scale_retry",)).fetchall()

    before = state()
    assert sum(r[1] for r in before) == N_SCORE
    retry = RunContext(**{**run.__dict__, "try_number": 2, "partition": 2})
    with TargetRuntime.from_manifest(parted, root) as runtime:
        for step in PARTITIONED:  # partition 2 again, as Airflow retries its mapped tasks
            invoke(parted, step, retry, runtime=runtime)
        invoke(parted, "verify", run, runtime=runtime)
    after = state()
    assert [r[:3] for r in after] == [r[:3] for r in before]  # partition 2 once, no duplicates
    assert after[2][3] != before[2][3]  # partition 2 was rewritten (a new transaction) ...
    assert [r for i, r in enumerate(after) if i != 2] == [r for i, r in enumerate(before) if i != 2]  # ... only it
