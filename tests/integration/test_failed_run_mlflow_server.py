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


def test_a_step_failing_before_log_run_ends_the_run_failed(tmp_path, mlflow_tracking_uri):
    """load_data opened the run; train_model fails (sklearn refuses n_estimators=-1 at fit): the run ends
    FAILED with the failing step named, not RUNNING forever; a retry that reaches log_run reopens
    and finishes the same run."""
    from airflow_mbt.errors import MBTError

    with scratch_experiment(mlflow_tracking_uri, "mbt_failed_step") as experiment:
        root = make_project(tmp_path)
        cfg = training_config(project={"experiment_name": experiment},
                              training={"model_training": {"framework": "sklearn",
                                                           "config": {"n_estimators": -1}}})
        manifest = make_manifest(cfg, dev_target(mlflow={"tracking_uri": mlflow_tracking_uri}))
        run_id = "run_20260102_000000_fb34"
        run_steps(manifest, root, ["load_data", "split_data"], run_id=run_id)
        client = mlflow.MlflowClient(mlflow_tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        [opened] = client.search_runs([exp.experiment_id], f"tags.mbt_run_id = '{run_id}'")
        assert opened.info.status == "RUNNING"
        with pytest.raises(MBTError):
            run_steps(manifest, root, ["train_model"], run_id=run_id)
        run = client.get_run(opened.info.run_id)
        assert run.info.status == "FAILED"
        assert run.data.tags["mbt_status"] == "failed" and run.data.tags["mbt_failed_step"] == "train_model"
        # the retry (here: with the parameter fixed) that reaches log_run ends the SAME run FINISHED
        fixed = make_manifest(training_config(project={"experiment_name": experiment}),
                              dev_target(mlflow={"tracking_uri": mlflow_tracking_uri}))
        run_steps(fixed, root, ["train_model", "evaluate", "log_run"], run_id=run_id)
        [finished] = client.search_runs([exp.experiment_id], f"tags.mbt_run_id = '{run_id}'")
        assert finished.info.run_id == opened.info.run_id and finished.info.status == "FINISHED"
        assert "mbt_failed_step" not in finished.data.tags and finished.data.tags["mbt_status"] != "failed"
        assert finished.inputs.dataset_inputs  # load_data's input dataset is still on it
