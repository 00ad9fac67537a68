"""SIGTERM during a publish's COPY into the real PostgreSQL (``mbt step execute --step publish`` in
a subprocess): the step stops within 10 s with exit 143, commits no row of that serving run,
writes ``run_results.json`` with status ``terminated``, leaves no ``mbt-*`` temp folder; a rerun then publishes exactly the run's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import dev_target, make_manifest, serving_config
from sigterm_helpers import sigterm_when

pytestmark = pytest.mark.services

ROWS = 1_500_000
RUN_ID = "run_20261126_000000_5157e5a11b0c4d2e"
WAREHOUSE = {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": "public"}}


def _store_predictions(project: Path, manifest, rows: int) -> None:
    """The ``predictions`` and ``model_ref`` artifacts of RUN_ID as predict and load_model would
    have stored them."""
    import numpy as np
    import pandas as pd

    from airflow_mbt.runtime import artifacts
    from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
    from airflow_mbt.runtime.context import TargetRuntime
    from airflow_mbt.runtime.table_stream import TableWriter

    with TargetRuntime.from_manifest(manifest, project) as runtime:
        storage = runtime.storage()
        writer = TableWriter(project / "scratch" / "predictions.parquet", "predictions")
        step = 250_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            writer.write(pd.DataFrame({"customer_id": [f"CUST_NEW_{i:08d}" for i in range(start, start + n)],
                                       "prediction": np.arange(n) % 2,
                                       "prediction_probability": np.linspace(0, 1, n)}))
        entry = artifacts.store(storage, RUN_ID, "predict", "predictions", "table_stream", writer,
                                project / "scratch", pipeline=manifest.name)
        ref = artifacts.store(storage, RUN_ID, "load_model", "model_ref", "json",
                              {"run_id": "model-run-not-needed-by-publish", "model_name": None, "alias": None,
                               "version": None}, project / "scratch", pipeline=manifest.name)
        ArtifactRegistry(storage, RUN_ID, pipeline=manifest.name).record({"predictions": entry, "model_ref": ref})


def _copy_progress(conn, schema: str) -> int:
    row = conn.execute(
        "SELECT p.tuples_processed FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND p.command = 'COPY FROM'",
        (schema,)).fetchone()
    return int(row[0]) if row else 0


def _rows(conn, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table} WHERE serving_run_id = %s", (RUN_ID,)).fetchone()[0])


def test_sigterm_mid_copy_exits_143_commits_nothing_and_a_rerun_publishes_all(tmp_path, scratch_schema,
                                                                              pg_warehouse):
    table = f'"{scratch_schema}".churn_predictions'
    pg_warehouse.execute(f"CREATE TABLE {table} (LIKE public.churn_predictions)")
    project = tmp_path / "project"
    project.mkdir()
    cfg = serving_config("model-run-not-needed-by-publish", serving={"output": {
        "destination": "database", "table": f"{scratch_schema}.churn_predictions"}})
    manifest = make_manifest(cfg, dev_target(data_connector=WAREHOUSE))
    manifest_path = manifest.write(project / "target" / manifest.name / "manifest.json")
    _store_predictions(project, manifest, ROWS)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = [sys.executable, "-m", "airflow_mbt.cli.main", "step", "execute", "--pipeline", manifest.name,
            "--step", "publish", "--target", "dev", "--run-id", RUN_ID, "--manifest", str(manifest_path),
            "--logical-date", "2026-11-26"]  # no profiles.yaml: the project is the current folder

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project)
    out, err, stopped_in = sigterm_when(proc, lambda: _copy_progress(pg_warehouse, scratch_schema) >= 200_000)
    assert proc.returncode == 143, (out, err)
    assert stopped_in < 10, f"stopped {stopped_in:.1f}s after SIGTERM"
    assert "terminated by signal 15" in err and "Traceback" not in err
    assert _rows(pg_warehouse, table) == 0
    assert not [p.name for p in temp.iterdir() if p.name.startswith("mbt-")]
    results = json.loads((project / "target" / manifest.name / "run_results.json").read_text())
    assert (results["status"], results["steps"][0]["name"], results["steps"][0]["status"]) == \
        ("terminated", "publish", "terminated")

    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=project, check=False,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert _rows(pg_warehouse, table) == ROWS
    assert json.loads((project / "target" / manifest.name / "run_results.json").read_text())["status"] == "success"
    assert not [p.name for p in temp.iterdir() if p.name.startswith("mbt-")]
