"""The ML steps on the prod-like stack target (markers ``services`` + ``h2o``): PostgreSQL tables
through the postgres connector, artifacts in SeaweedFS S3, H2O AutoML on the shared server, the
MLflow tracking server - all through Airflow connections - then serving that publishes to a
PostgreSQL table, idempotently per serving run."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (AUTOML_TEST, fetch, make_manifest, run_steps, scratch_experiment,  # noqa: E402
                                  serving_config, training_config)

from airflow_mbt.runtime.context import TargetRuntime  # noqa: E402

pytestmark = [pytest.mark.services, pytest.mark.h2o, pytest.mark.filterwarnings("ignore:Converting H2O frame")]

PREDICTIONS_DDL = """CREATE TABLE "{schema}".churn_predictions (
    customer_id varchar(20), prediction integer, prediction_probability double precision,
    execution_date timestamp, model_run_id varchar(100), serving_run_id varchar(100))"""


@pytest.fixture
def experiment(mlflow_tracking_uri):
    with scratch_experiment(mlflow_tracking_uri, "mbt_b2_stack") as name:
        yield name


@pytest.fixture
def run_prefixes(s3_client):
    """Run prefixes (``<pipeline>/<run_id>``) whose S3 artifacts are deleted after the test."""
    runs: list[str] = []
    yield runs
    for run_id in runs:
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket="mbt-pipeline-artifacts",
                                                                     Prefix=f"{run_id}/")
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket="mbt-pipeline-artifacts", Delete={"Objects": keys})


def test_train_on_the_stack_and_publish_to_postgres(stack_runtime, tmp_path, experiment, scratch_schema,
                                                    pg_warehouse, mlflow_tracking_uri, run_prefixes):
    from airflow_mbt.manifest import plain

    target = plain(stack_runtime.target.raw)  # the compiled target section, as a manifest holds it
    cfg = training_config(project={"experiment_name": experiment})
    cfg["training"]["model_training"] = {"framework": "h2o_automl", "config": AUTOML_TEST}
    training = make_manifest(cfg, target)
    run_id = run_steps(training, tmp_path, ["load_data", "split_data", "train_model", "evaluate", "log_run"],
                       runtime=stack_runtime)
    run_prefixes.append(f"{training.name}/{run_id}")
    assert len(fetch(tmp_path, training, run_id, "raw_data")) == 5000  # the seeded warehouse table
    assert fetch(tmp_path, training, run_id, "metrics")["metrics"]["roc_auc"] > 0.7
    out = fetch(tmp_path, training, run_id, "mlflow_run")
    assert out["tracking_uri"] == mlflow_tracking_uri
    run = mlflow.MlflowClient(mlflow_tracking_uri).get_run(out["run_id"])
    assert run.data.params["framework"] == "h2o_automl" and run.data.tags["target"] == "stack"

    pg_warehouse.execute(PREDICTIONS_DDL.format(schema=scratch_schema))
    table = f"{scratch_schema}.churn_predictions"
    serving = make_manifest(serving_config(out["run_id"], project={"experiment_name": experiment},
                                           serving={"output": {"destination": "database", "table": table}}), target)
    runtime = TargetRuntime(target=target, project_dir=tmp_path)
    try:
        serving_run = run_steps(serving, tmp_path, runtime=runtime)
        run_prefixes.append(f"{serving.name}/{serving_run}")
        run_steps(serving, tmp_path, ["publish"], run_id=serving_run, runtime=runtime)  # a retried publish
    finally:
        runtime.close()
    rows = pg_warehouse.execute(
        f'SELECT count(*), count(DISTINCT customer_id), min(prediction_probability), max(prediction_probability), '
        f'min(model_run_id), max(serving_run_id), count(execution_date) FROM "{scratch_schema}".churn_predictions'
    ).fetchone()
    assert rows[0] == rows[1] == 1000  # every scored customer once, despite the retry
    assert 0 <= rows[2] <= rows[3] <= 1
    assert rows[4] == out["run_id"] and rows[5] == serving_run and rows[6] == 1000
    query = f'SELECT DISTINCT prediction FROM "{scratch_schema}".churn_predictions'
    labels = {r[0] for r in pg_warehouse.execute(query)}
    assert labels <= {0, 1}
    published = fetch(tmp_path, serving, serving_run, "publish_result")
    assert {k: published[k] for k in ("destination", "table", "rows", "serving_run_id", "pipeline_name")} == {
        "destination": "database", "table": table, "rows": 1000, "serving_run_id": serving_run,
        "pipeline_name": serving.name}
    assert published["execution_date"]  # the partition: (pipeline_name, logical date)
