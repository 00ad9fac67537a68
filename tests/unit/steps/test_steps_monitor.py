"""The ``monitor`` serving step on the dev target (local_file connector, sqlite MLflow): reference
statistics logged with the model, drift rows in ``model_monitoring.csv``, warn and fail."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, train_once

from airflow_mbt.errors import MonitoringBreachError, classify
from airflow_mbt.manifest import Manifest
from airflow_mbt.ml import reference
from airflow_mbt.pipeline.compiler import manifest_steps


def monitored(config: dict) -> Manifest:
    body = json.loads(make_manifest(config).to_json())
    body.pop("content_hash", None)
    body["steps"] = manifest_steps("serving", {}, monitoring=True)
    return Manifest.build(body)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("monitor"))
    manifest, run_id, mlflow_run = train_once(root)
    return root, manifest, run_id, mlflow_run


def test_training_logs_reference_statistics_with_the_model(trained, tmp_path):
    root, manifest, run_id, mlflow_run = trained
    model_dir = fetch(root, manifest, run_id, "model", tmp_path)
    ref = reference.read(model_dir)
    assert ref is not None and set(ref["features"]) == {"tenure", "monthly_charges", "total_charges", "contract_type"}
    assert ref["predictions"] == {}  # train_model writes the features; log_run adds the test-set predictions
    metrics = fetch(root, manifest, run_id, "metrics")
    assert set(metrics[reference.PREDICTIONS_KEY]["specs"]) == {"prediction", "prediction_probability"}
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    logged = json.loads(open(client.download_artifacts(mlflow_run["run_id"], "reference_stats.json",
                                                       str(tmp_path))).read())
    assert set(logged["predictions"]) == {"prediction", "prediction_probability"}
    assert logged["test_rows"] == metrics["n_test"] and logged["features"] == ref["features"]


def test_steady_data_writes_a_row_per_feature_and_metric(trained):
    root, _, _, mlflow_run = trained
    manifest = monitored(serving_config(mlflow_run["run_id"], serving={"monitoring": {"on_breach": "fail"}}))
    assert [s.name for s in manifest.steps][-2:] == ["monitor", "publish"]
    assert manifest.step("publish").depends_on == ("load_model", "predict", "monitor")
    run_id = run_steps(manifest, root)
    table = pd.read_csv(root / "output" / "model_monitoring.csv")
    mine = table[table["serving_run_id"] == run_id]
    features = {"tenure", "monthly_charges", "total_charges", "contract_type", "prediction", "prediction_probability"}
    assert set(mine["feature"]) == features
    assert len(mine) == 3 * len(features)  # psi, share_shift, missing_share
    assert (mine[mine["metric"] == "psi"]["value"] < 0.25).all()  # same generator as training: no breach
    assert (root / "predictions.csv").is_file()
    report = fetch(root, manifest, run_id, "monitoring")
    assert report["breaches"] == [] and report["mlflow_run_id"]


def _write_shifted_batch(root) -> None:
    """``shifted_to_score``: the scoring rows with tenure +40 and one contract type (each test that
    reads it writes it: under pytest-xdist the tests of this module may run on different workers)."""
    scoring = pd.read_csv(root / "sample_data" / "customers_to_score.csv")
    scoring["tenure"] = scoring["tenure"] + 40
    scoring["contract_type"] = "two_year"
    scoring.to_csv(root / "sample_data" / "shifted_to_score.csv", index=False)


def test_shifted_batch_fails_with_exit_3_before_publish(trained):
    root, _, _, mlflow_run = trained
    _write_shifted_batch(root)
    cfg = serving_config(mlflow_run["run_id"], serving={
        "data_source": {"scoring_table": "shifted_to_score"}, "output": {"path": "shifted_preds.csv"},
        "monitoring": {"on_breach": "fail", "max_psi": 0.25}})
    manifest = monitored(cfg)
    with pytest.raises(MonitoringBreachError) as err:
        run_steps(manifest, root)
    assert classify(err.value).exit_code == 3 and not classify(err.value).retryable
    assert "tenure psi" in str(err.value) and "contract_type psi" in str(err.value)
    assert not (root / "shifted_preds.csv").exists()  # publish waits for monitor
    table = pd.read_csv(root / "output" / "model_monitoring.csv")
    psi = table[(table["metric"] == "psi") & table["serving_run_id"].str.len().gt(0)]
    assert psi.groupby("feature")["value"].max()["tenure"] > 0.25


def test_warn_logs_one_line_per_breached_feature(trained, caplog):
    root, _, _, mlflow_run = trained
    _write_shifted_batch(root)
    cfg = serving_config(mlflow_run["run_id"], serving={
        "data_source": {"scoring_table": "shifted_to_score"}, "output": {"path": "warned_preds.csv"},
        "monitoring": {"max_psi": 0.25}})
    with caplog.at_level("WARNING"):
        run_steps(monitored(cfg), root)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift: ")]
    assert any(" tenure psi " in line for line in lines) and any(" contract_type psi " in line for line in lines)
    assert len(lines) == len({line.split(" psi ")[0] for line in lines})
    assert (root / "warned_preds.csv").is_file()


@pytest.mark.parametrize("on_breach", ["warn", "fail"])
def test_a_model_without_reference_statistics(tmp_path, caplog, on_breach):
    import logging
    from types import SimpleNamespace

    from airflow_mbt.steps import monitor

    ctx = SimpleNamespace(config={"serving": {"monitoring": {"on_breach": on_breach}}}, run=None, run_id="run_x",
                          manifest=SimpleNamespace(pipeline=SimpleNamespace(name="p"), name="p"),
                          log=logging.getLogger("test_monitor"))
    inputs = {"model": tmp_path, "preprocessor": {}, "scoring_data": pd.DataFrame({"a": [1]}),
              "predictions": pd.DataFrame({"prediction": [1]})}
    if on_breach == "fail":
        with pytest.raises(MonitoringBreachError, match="no reference statistics") as err:
            monitor.run(ctx, inputs)
        assert classify(err.value).exit_code == 3
    else:
        with caplog.at_level("WARNING"):
            out = monitor.run(ctx, inputs)
        assert "no reference statistics" in out["monitoring"]["skipped"]
        assert any("drift not checked" in r.getMessage() for r in caplog.records)


def test_rows_carry_the_run_an_alias_resolved_to(trained):
    """Serving by registry alias: the monitoring rows name the model run load_model resolved
    (the YAML holds no run id), like the published predictions."""
    from mlflow import MlflowClient

    root, _, _, mlflow_run = trained
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    name = "monitor_alias_model"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{mlflow_run['run_id']}/model", run_id=mlflow_run["run_id"])
    client.set_registered_model_alias(name, "champion", version.version)
    config = serving_config(None, serving={"model_source": {"model_name": name, "alias": "champion"},
                                           "monitoring": {"on_breach": "warn"}})
    config["serving"]["model_source"].pop("run_id")
    run_id = run_steps(monitored(config), root)
    table = pd.read_csv(root / "output" / "model_monitoring.csv")
    assert set(table[table["serving_run_id"] == run_id]["model_run_id"]) == {mlflow_run["run_id"]}
