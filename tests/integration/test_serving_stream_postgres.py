"""Chunked serving against the stack's PostgreSQL: the scoring table is streamed with
``iter_table`` and the predictions with ``write_chunks``. Chunks of 100 rows publish exactly what
one chunk does, and a publish that fails in its last chunk commits nothing: the run's earlier rows
(deleted by the same transaction) are still there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import dev_target, make_manifest, make_project, run_steps, serving_config, train_once  # noqa: E402

from airflow_mbt.errors import DataContractError  # noqa: E402

pytestmark = pytest.mark.services

WAREHOUSE = {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": "public"}}


def _published(conn, schema: str, run_id: str) -> list[tuple]:
    return conn.execute(f'SELECT customer_id, prediction, prediction_probability, execution_date '
                        f'FROM "{schema}".churn_predictions WHERE serving_run_id = %s ORDER BY customer_id',
                        (run_id,)).fetchall()


def test_chunked_publish_matches_and_a_failing_chunk_commits_nothing(tmp_path, scratch_schema, pg_warehouse,
                                                                    monkeypatch):
    root = make_project(tmp_path)
    _, _, mlflow_run = train_once(root)
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".churn_predictions (LIKE public.churn_predictions)')
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {
        "destination": "database", "table": f"{scratch_schema}.churn_predictions"}})
    manifest = make_manifest(cfg, dev_target(data_connector=WAREHOUSE))

    monkeypatch.setenv("MBT_CHUNK_ROWS", "1000000")
    whole = run_steps(manifest, root)
    monkeypatch.setenv("MBT_CHUNK_ROWS", "100")
    chunked = run_steps(manifest, root)
    first = _published(pg_warehouse, scratch_schema, chunked)
    assert len(first) == 1000 and len({r[3] for r in first}) == 1  # 10 chunks, one execution_date
    assert [r[:3] for r in first] == [r[:3] for r in _published(pg_warehouse, scratch_schema, whole)]

    # new rows of the last chunk violate a constraint; the retried publish must leave the table as it was
    pg_warehouse.execute(f'ALTER TABLE "{scratch_schema}".churn_predictions ADD CONSTRAINT no_950 '
                         "CHECK (customer_id <> 'CUST_NEW_00950') NOT VALID")
    with pytest.raises(DataContractError, match="no_950"):
        run_steps(manifest, root, ["publish"], run_id=chunked)
    assert _published(pg_warehouse, scratch_schema, chunked) == first
    total = pg_warehouse.execute(f'SELECT count(*) FROM "{scratch_schema}".churn_predictions').fetchone()[0]
    assert total == 2000
