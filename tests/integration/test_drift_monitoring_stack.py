"""Drift monitoring (issue 11 point 5) on the real stack: PostgreSQL (data, predictions and the
``model_monitoring`` table), SeaweedFS S3 (artifacts), the MLflow server (model, reference
statistics, monitoring runs), sklearn for a fast model.

* training logs ``reference_stats.json`` with the model;
* a steady batch under ``on_breach: fail`` passes and writes a row per (column, metric); a rerun of
  the same logical date replaces those rows and the MLflow monitoring run, never duplicates them;
* a deliberately shifted batch exceeds ``max_psi``: ``mbt step execute --step monitor`` (the pod's
  command) exits 3 without a traceback, the monitoring rows are written, nothing is published.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import make_manifest, scratch_experiment, serving_config, training_config  # noqa: E402

from airflow_mbt.manifest import Manifest  # noqa: E402
from airflow_mbt.pipeline.compiler import manifest_steps  # noqa: E402
from airflow_mbt.runtime.context import RunContext, TargetRuntime  # noqa: E402
from airflow_mbt.runtime.invocation import invoke  # noqa: E402
from airflow_mbt.runtime.runner import run_pipeline  # noqa: E402
from airflow_mbt.scaffold.sample_data import iter_rows  # noqa: E402

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
FEATURES = {"tenure", "monthly_charges", "total_charges", "contract_type", "prediction", "prediction_probability"}
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _seed(conn, schema: str) -> None:
    frames = {"customers": pd.DataFrame(iter_rows(1500, seed=11)),
              "customers_to_score": pd.DataFrame(iter_rows(400, seed=12, labeled=False))}
    shifted = pd.DataFrame(iter_rows(400, seed=13, labeled=False))
    shifted["tenure"] = shifted["tenure"] + 40  # longer-standing customers
    shifted["monthly_charges"] = shifted["monthly_charges"] * 1.8
    shifted["contract_type"] = "two_year"
    frames["customers_shifted"] = shifted
    for table, df in frames.items():
        cols = "customer_id text, tenure integer, monthly_charges double precision, total_charges double precision, " \
               "contract_type text" + (", churned integer" if "churned" in df.columns else "")
        conn.execute(f'CREATE TABLE "{schema}".{table} ({cols})')
        with conn.cursor().copy(f'COPY "{schema}".{table} ({", ".join(df.columns)}) FROM STDIN (FORMAT csv)') as copy:
            copy.write(df.to_csv(index=False, header=False))


def _run(day: int, suffix: str) -> RunContext:
    start = DAY + timedelta(days=day)
    return RunContext(run_id=f"run_{start:%Y%m%d}_000000_{suffix}", logical_date=start, interval_start=start,
                      interval_end=start + timedelta(days=1), run_type="backfill")


def _monitored(manifest: Manifest) -> Manifest:
    body = json.loads(manifest.to_json())
    body.pop("content_hash", None)
    body["steps"] = manifest_steps("serving", {}, monitoring=True)
    return Manifest.build(body)


def _monitoring_rows(conn, schema: str, pipeline: str, day: datetime) -> pd.DataFrame:
    cur = conn.execute(f'SELECT feature, kind, metric, value, rows, serving_run_id FROM "{schema}".model_monitoring '
                       "WHERE pipeline_name = %s AND execution_date = %s ORDER BY feature, metric",
                       (pipeline, day.replace(tzinfo=None)))
    return pd.DataFrame(cur.fetchall(), columns=["feature", "kind", "metric", "value", "rows", "serving_run_id"])


def test_drift_is_measured_replaced_per_logical_date_and_fails_a_shifted_batch(
        tmp_path, scratch_schema, pg_warehouse, s3_prefix, mlflow_tracking_uri):
    _seed(pg_warehouse, scratch_schema)
    tag = uuid.uuid4().hex[:8]
    target = {"name": "stack", "profile": "demo",
              "storage": {"type": "s3", "config": {"bucket": "mbt-pipeline-artifacts", "prefix": s3_prefix,
                                                   "conn_id": "mbt_s3"}},
              "data_connector": {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": scratch_schema}},
              "mlflow": {"conn_id": "mbt_mlflow"}, "secrets": {"provider": "env"}}
    with scratch_experiment(mlflow_tracking_uri, "h_drift") as experiment:
        cfg = training_config(project={"name": f"h_drift_train_{tag}", "experiment_name": experiment})
        training = make_manifest(cfg, target)
        with TargetRuntime.from_manifest(training, tmp_path) as runtime:
            run_pipeline(training, runtime, run=RunContext(run_id=f"run_20260301_000000_{tag}"))
        client = mlflow.MlflowClient(mlflow_tracking_uri)
        model_run = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                       filter_string=f"tags.pipeline_name = 'h_drift_train_{tag}'")[0].info.run_id
        ref = json.loads(Path(client.download_artifacts(model_run, "reference_stats.json", str(tmp_path))).read_text())
        assert set(ref["features"]) | set(ref["predictions"]) == FEATURES and ref["test_rows"] > 0

        def serving(table: str) -> Manifest:
            return _monitored(make_manifest(serving_config(model_run, project={
                "name": f"h_drift_serve_{tag}", "experiment_name": experiment}, serving={
                "data_source": {"scoring_table": table},
                "output": {"destination": "database", "table": "churn_predictions"},
                "monitoring": {"max_psi": 0.25, "on_breach": "fail", "table": "model_monitoring"}}), target))

        steady = serving("customers_to_score")
        pipeline = steady.name
        for suffix in ("aaaa", "bbbb"):  # a run of day 0, then a rerun (clear) of the same logical date
            with TargetRuntime.from_manifest(steady, tmp_path) as runtime:
                run_pipeline(steady, runtime, run=_run(0, suffix))
            rows = _monitoring_rows(pg_warehouse, scratch_schema, pipeline, DAY)
            assert len(rows) == 3 * len(FEATURES) and set(rows["feature"]) == FEATURES
            assert set(rows["serving_run_id"]) == {_run(0, suffix).run_id}  # replaced, not duplicated
            assert (rows[rows["metric"] == "psi"]["value"] < 0.25).all()
            assert set(rows["rows"]) == {400}
        monitoring_runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                             filter_string=f"tags.mbt_kind = 'monitoring' and "
                                                           f"tags.pipeline_name = '{pipeline}'")
        assert len(monitoring_runs) == 1  # one MLflow monitoring run per (pipeline, logical date)
        assert monitoring_runs[0].data.tags["mbt_drift_status"] == "ok"
        assert monitoring_runs[0].data.tags["mbt_run_id"] == _run(0, "bbbb").run_id
        assert "drift.tenure.psi" in monitoring_runs[0].data.metrics

        shifted = serving("customers_shifted")
        run = _run(1, "cccc")
        with TargetRuntime.from_manifest(shifted, tmp_path) as runtime:
            for step in ("load_model", "load_scoring_data", "apply_transforms", "predict"):
                invoke(shifted, step, run, runtime=runtime)
        manifest_path = shifted.write(tmp_path / "target" / pipeline / "manifest.json")
        proc = subprocess.run(
            [sys.executable, "-m", "airflow_mbt.cli.main", "step", "execute", "--pipeline", pipeline, "--step",
             "monitor", "--target", "stack", "--run-id", run.run_id, "--manifest", str(manifest_path),
             "--logical-date", run.logical_date.isoformat()],
            capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr and "drifted past max_psi 0.25" in proc.stderr
        assert "tenure psi" in proc.stderr and "contract_type psi" in proc.stderr
        rows = _monitoring_rows(pg_warehouse, scratch_schema, pipeline, run.logical_date)
        psi = rows[rows["metric"] == "psi"].set_index("feature")["value"]
        assert len(rows) == 3 * len(FEATURES)
        assert psi["tenure"] > 0.25 and psi["contract_type"] > 0.25 and psi["monthly_charges"] > 0.25
        published = pg_warehouse.execute(
            f'SELECT execution_date, count(*) FROM "{scratch_schema}".churn_predictions GROUP BY 1').fetchall()
        assert [(d, n) for d, n in published] == [(DAY.replace(tzinfo=None), 400)]  # the shifted day: nothing
        breach = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                    filter_string="tags.mbt_kind = 'monitoring' and tags.mbt_drift_status = 'breach'")
        assert len(breach) == 1 and breach[0].data.metrics["drift.breaches"] >= 3
