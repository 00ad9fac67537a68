"""A run that fails its validation criteria is kept: metrics.json, an MLflow run with every metric
(sqlite store here; tests/integration/test_failed_run_mlflow_server.py uses the real server)."""

import json

import mlflow
import pytest
from ml_pipeline_fixtures import make_manifest, make_project, run_steps, training_config

from airflow_mbt.errors import ValidationCriteriaError
from airflow_mbt.runtime.context import TargetRuntime

CRITERIA = ["roc_auc >= 0.999", "accuracy >= 0.1"]


def test_failed_criteria_run_is_logged_with_every_metric(tmp_path):
    root = make_project(tmp_path)
    manifest = make_manifest(training_config(training={"evaluation": {"validation_criteria": CRITERIA}}))
    with pytest.raises(ValidationCriteriaError) as err:
        run_steps(manifest, root, run_id="run_20260101_000000_fa11")
    text = str(err.value)
    assert "roc_auc >= 0.999 (actual 0." in text and "): FAILED" in text
    assert "accuracy >= 0.1 (actual 0." in text and "): passed" in text
    for metric in ("f1", "precision", "recall", "log_loss", "pr_auc"):
        assert f"{metric}=0." in text
    # metrics.json is in the run's storage under the key the artifact would have had:
    # <pipeline>/<run_id>/evaluate/metrics.json (CONTRACTS section 3), nothing outside the run's prefix
    runtime = TargetRuntime(target=manifest.target, project_dir=root)
    storage = runtime.storage()
    assert storage.list("run_20260101_000000_fa11/") == []
    doc = json.loads(storage.get(f"{manifest.name}/run_20260101_000000_fa11/evaluate/metrics.json"))
    assert [r["passed"] for r in doc["validation"]] == [False, True]
    assert "metrics.json: " in text
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("churn_prediction")
    [run] = client.search_runs([exp.experiment_id], "tags.mbt_run_id = 'run_20260101_000000_fa11'")
    assert run.info.status == "FAILED" and run.data.tags["mbt_status"] == "failed_criteria"
    assert f"logged to MLflow run {run.info.run_id}" in text
    assert run.data.metrics == pytest.approx({k: v for k, v in doc["metrics"].items() if v is not None})
    assert run.data.params["split.seed"] == "42" and run.data.params["rows.test"] == "200"
    assert "mbt_model_uri" not in run.data.tags  # a failed model is never servable by run id
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"metrics.json", "column_plan.json",
                                                                        "preprocessor.json", "plots"}
