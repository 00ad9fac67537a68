"""MLflow logging and loading against a real sqlite tracking store in a temporary project."""

import json
import os

import mlflow
import pandas as pd
import pytest
from ml_pipeline_fixtures import (dev_target, fetch, make_manifest, make_project, run_steps, serving_config,
                                  train_once, training_config)

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.tracking import store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("tracking"))
    manifest, run_id, mlflow_run = train_once(root)
    return root, manifest, run_id, mlflow_run


def test_mlflow_run_artifact_and_what_the_run_holds(trained):
    root, manifest, run_id, out = trained
    db = root / "mlruns" / "mlflow.db"
    assert out["tracking_uri"] == f"sqlite:///{db}" and db.is_file()
    assert out["experiment_name"] == "churn_prediction"
    assert out["artifact_uri"].startswith((root / "mlruns" / "artifacts").as_uri())
    client = mlflow.MlflowClient(out["tracking_uri"])
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == out["experiment_id"]
    tags = run.data.tags
    assert tags["pipeline_name"] == "training_churn" and tags["mbt_run_id"] == run_id
    assert tags["target"] == "dev" and tags["owner"] == "ds-team"
    assert tags["mbt_manifest_hash"] == manifest.content_hash
    params = run.data.params
    assert params["framework"] == "sklearn" and params["problem_type"] == "binary_classification"
    assert params["model"] == "RandomForestClassifier" and params["n_estimators"] == "40"
    metrics = fetch(root, manifest, run_id, "metrics")["metrics"]
    assert run.data.metrics == pytest.approx({k: v for k, v in metrics.items() if v is not None})
    assert out["model_uri"].startswith("models:/")
    logged_model = client.get_logged_model(out["model_uri"].split("/", 1)[1])
    assert logged_model.source_run_id == out["run_id"] and logged_model.name == "model"
    assert {m.key for m in logged_model.metrics} == {k for k, v in metrics.items() if v is not None}
    listed = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"plots", "preprocessor.json", "metrics.json", "manifest.json"} <= listed
    assert {a.path for a in client.list_artifacts(out["run_id"], "plots")} >= {"plots/roc_curve.png"}
    logged_manifest = json.loads(mlflow.artifacts.load_text(f"{out['artifact_uri']}/manifest.json"))
    assert logged_manifest["content_hash"] == manifest.content_hash


def test_pyfunc_loads_from_runs_uri_and_matches_the_serving_steps(trained, tmp_path):
    root, _, _, out = trained
    scoring = pd.read_csv(root / "sample_data" / "customers_to_score.csv")
    before = (os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri())
    with store.fluent_tracking_uri(out["tracking_uri"]):
        model = mlflow.pyfunc.load_model(f"runs:/{out['run_id']}/model")
        same = mlflow.pyfunc.load_model(out["model_uri"])
    assert (os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()) == before
    got = model.predict(scoring)
    pd.testing.assert_frame_equal(got, same.predict(scoring))
    run_steps(make_manifest(serving_config(out["run_id"], serving={"output": {"path": "p.csv"}})), root)
    served = pd.read_csv(root / "p.csv")
    assert got["customer_id"].tolist() == served["customer_id"].tolist()
    assert got["prediction"].tolist() == served["prediction"].tolist()
    assert got["prediction_probability"].to_numpy() == pytest.approx(served["prediction_probability"].to_numpy())


def test_retried_log_run_reuses_the_finished_mlflow_run(trained):
    root, manifest, run_id, out = trained
    run_steps(manifest, root, ["log_run"], run_id=run_id)
    assert fetch(root, manifest, run_id, "mlflow_run") == out
    client = mlflow.MlflowClient(out["tracking_uri"])
    runs = client.search_runs([out["experiment_id"]], filter_string=f"tags.mbt_run_id = '{run_id}'")
    assert [r.info.run_id for r in runs] == [out["run_id"]]


def test_store_resolution(tmp_path, monkeypatch):
    rt = TargetRuntime(target=dev_target(), project_dir=tmp_path)
    t = store.resolve(rt)
    assert t.tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert t.artifact_location == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert (tmp_path / "mlruns").is_dir()
    rt = TargetRuntime(target=dev_target(mlflow={}), project_dir=tmp_path / "p2")
    assert store.resolve(rt).tracking_uri == f"sqlite:///{tmp_path}/p2/mlruns/mlflow.db"
    rt = TargetRuntime(target=dev_target(mlflow={"tracking_uri": "http://127.0.0.1:5000",
                                                 "artifact_location": "s3://bucket/mlflow"}), project_dir=tmp_path)
    assert store.resolve(rt) == store.TrackingTarget("http://127.0.0.1:5000", "s3://bucket/mlflow", None)
    monkeypatch.setenv("AIRFLOW_CONN_B2_MLFLOW", json.dumps({"conn_type": "mlflow", "host": "mlflow.example",
                                                             "port": 5001, "schema": "https"}))
    rt = TargetRuntime(target=dev_target(mlflow={"conn_id": "b2_mlflow"}), project_dir=tmp_path)
    assert store.resolve(rt) == store.TrackingTarget("https://mlflow.example:5001", None, "b2_mlflow")


def test_unreachable_tracking_server_is_an_infra_error(tmp_path):
    rt = TargetRuntime(target=dev_target(mlflow={"tracking_uri": "http://127.0.0.1:9"}), project_dir=tmp_path)
    with pytest.raises(InfraError) as err:
        with store.session(rt):
            pass
    assert "MLflow" in str(err.value) and "127.0.0.1:9" in str(err.value)


def test_flatten_config_for_params():
    from airflow_mbt.tracking.run_logger import flatten

    assert flatten({"a": 1, "b": {"c": [1, 2], "d": None}, "e": True}) == {"a": "1", "b.c": "[1, 2]", "b.d": "null",
                                                                          "e": "true"}


def test_credentials_in_a_tracking_uri_never_reach_messages(tmp_path):
    assert store.redact("https://me:s3cr3t@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert store.redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    rt = TargetRuntime(target=dev_target(mlflow={"tracking_uri": "http://me:s3cr3t@127.0.0.1:9"}), project_dir=tmp_path)
    with pytest.raises(InfraError) as err:
        with store.session(rt):
            pass
    assert "s3cr3t" not in str(err.value) and "127.0.0.1:9" in str(err.value)


def test_run_without_an_mbt_model_is_an_input_error(trained):
    root, _, _, out = trained
    other = mlflow.MlflowClient(out["tracking_uri"]).create_run(out["experiment_id"]).info.run_id
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(serving_config(other)), root, ["load_model"])
    assert err.value.field == "serving.model_source.run_id" and "has no mbt model" in str(err.value)


def test_custom_transform_code_travels_with_the_logged_model(tmp_path):
    import subprocess
    import sys
    import textwrap

    root = make_project(tmp_path / "project")
    (root / "lib").mkdir()
    (root / "lib" / "features.py").write_text(textwrap.dedent("""
        def add_charges_per_month(df):
            df["charges_per_month"] = df["total_charges"] / df["tenure"]
            return df
    """))
    (root / "lib" / "secrets.txt").write_text("not code: must not be logged")
    cfg = training_config(training={"preprocessing": {"custom_transforms": ["lib.features:add_charges_per_month"]}})
    _, _, out = train_once(root, cfg)
    run_steps(make_manifest(serving_config(out["run_id"], serving={"output": {"path": "p.csv"}})), root)
    script = ("import sys, mlflow, pandas as pd\n"
              "mlflow.set_tracking_uri(sys.argv[1])\n"
              "m = mlflow.pyfunc.load_model(sys.argv[2])\n"
              "m.predict(pd.read_csv(sys.argv[3])).to_csv(sys.argv[4], index=False)\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-c", script, out["tracking_uri"], f"runs:/{out['run_id']}/model",
                    str(root / "sample_data" / "customers_to_score.csv"), str(elsewhere / "p.csv")],
                   check=True, timeout=300, cwd=elsewhere)
    served = pd.read_csv(root / "p.csv")  # publish adds the partition stamp columns
    pd.testing.assert_frame_equal(pd.read_csv(elsewhere / "p.csv"),
                                  served[["customer_id", "prediction", "prediction_probability"]])
    logged = {p.relative_to(root / "mlruns" / "artifacts").as_posix()
              for p in (root / "mlruns" / "artifacts").rglob("*") if "/code/" in p.as_posix()}
    assert any(p.endswith("code/lib/features.py") for p in logged)
    assert not any("secrets.txt" in p for p in logged)


def test_fluent_scope_restores_a_preset_environment(monkeypatch, tmp_path):
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    monkeypatch.setattr(utils, "_tracking_uri", None)
    inner = f"sqlite:///{tmp_path}/x.db"
    with store.fluent_tracking_uri(inner):
        assert mlflow.get_tracking_uri() == inner
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://example.invalid:5000"
    assert utils._tracking_uri is None
    assert mlflow.get_tracking_uri() == "http://example.invalid:5000"


def test_experiment_name_falls_back_to_the_profile_mlflow_section(tmp_path):
    root = make_project(tmp_path, n_customers=300, n_score=10)
    cfg = training_config()
    del cfg["project"]["experiment_name"]
    target = dev_target(mlflow={"tracking_uri": "sqlite:///mlruns/mlflow.db", "experiment_name": "from_profile"})
    manifest = make_manifest(cfg, target)
    run_id = run_steps(manifest, root)
    assert fetch(root, manifest, run_id, "mlflow_run")["experiment_name"] == "from_profile"
