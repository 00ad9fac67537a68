"""A run that fails its validation criteria is kept on the stack's MLflow server: every metric,
tag ``mbt_status=failed_criteria``, ``metrics.json``; ``mbt run`` exits 3 (marker ``services``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (dev_target, make_manifest, make_project, run_steps,  # noqa: E402
                                  scratch_experiment, training_config)

from airflow_mbt.errors import ValidationCriteriaError  # noqa: E402

pytestmark = pytest.mark.services


def test_failed_criteria_run_is_kept_on_the_tracking_server(tmp_path, mlflow_tracking_uri):
    with scratch_experiment(mlflow_tracking_uri, "mbt_failed_criteria") as experiment:
        root = make_project(tmp_path)
        cfg = training_config(project={"experiment_name": experiment},
                              training={"evaluation": {"validation_criteria": ["roc_auc >= 0.999", "f1 >= 0.01"]}})
        manifest = make_manifest(cfg, dev_target(mlflow={"tracking_uri": mlflow_tracking_uri}))
        with pytest.raises(ValidationCriteriaError) as err:
            run_steps(manifest, root, run_id="run_20260102_000000_fa12")
        client = mlflow.MlflowClient(mlflow_tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        [run] = client.search_runs([exp.experiment_id], "tags.mbt_run_id = 'run_20260102_000000_fa12'")
        assert run.data.tags["mbt_status"] == "failed_criteria" and run.info.status == "FAILED"
        assert f"logged to MLflow run {run.info.run_id}" in str(err.value)
        logged = json.loads(Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path)))
                            .read_text(encoding="utf-8"))
        assert run.data.metrics == pytest.approx({k: v for k, v in logged["metrics"].items() if v is not None})
        assert set(run.data.metrics) == {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"}
        assert [r["passed"] for r in logged["validation"]] == [False, True]
        assert run.data.params["class_balance.train.1"] and run.data.params["column.tenure"].startswith("feature")
