"""log_run / load_model against the stack's MLflow tracking server (marker ``services``), reached
through an Airflow connection (``MLflowHook``) as the prod target does; artifacts are proxied by
the server (``--artifacts-destination``), so the client needs no S3 keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (dev_target, fetch, make_manifest, make_project, run_steps,  # noqa: E402
                                  scratch_experiment, serving_config, training_config)

pytestmark = pytest.mark.services

MLFLOW_URI = os.environ.get("MBT_MLFLOW_URI", "http://127.0.0.1:5000")
CONN_ID = "b2_tracking_test"


@pytest.fixture
def server_target(mlflow_conn_env):
    mlflow_conn_env(CONN_ID, MLFLOW_URI)
    return dev_target(mlflow={"conn_id": CONN_ID})


@pytest.fixture
def experiment():
    with scratch_experiment(MLFLOW_URI) as name:
        yield name


def test_log_run_and_serve_through_the_tracking_server(tmp_path, server_target, experiment):
    root = make_project(tmp_path)
    manifest = make_manifest(training_config(project={"experiment_name": experiment}), server_target)
    run_id = run_steps(manifest, root)
    out = fetch(root, manifest, run_id, "mlflow_run")
    assert out["tracking_uri"] == MLFLOW_URI and out["experiment_name"] == experiment
    assert not (root / "mlruns").exists()  # nothing went to the dev sqlite store

    client = mlflow.MlflowClient(MLFLOW_URI)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mbt_run_id"] == run_id and run.data.params["framework"] == "sklearn"
    assert run.data.metrics["roc_auc"] == pytest.approx(fetch(root, manifest, run_id, "metrics")["metrics"]["roc_auc"])
    assert {a.path for a in client.list_artifacts(out["run_id"])} >= {"plots", "preprocessor.json", "manifest.json"}

    # serving in this process fetches the model from the server
    serving = make_manifest(serving_config(out["run_id"], project={"experiment_name": experiment}), server_target)
    run_steps(serving, root)
    served = pd.read_csv(root / "predictions.csv")
    assert len(served) == 200

    # and the logged pyfunc scores identically in a fresh process that knows only the server
    scoring = root / "sample_data" / "customers_to_score.csv"
    script = ("import sys, mlflow, pandas as pd\n"
              "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "m.predict(pd.read_csv(sys.argv[2])).to_csv(sys.argv[3], index=False)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": MLFLOW_URI}
    subprocess.run([sys.executable, "-c", script, f"runs:/{out['run_id']}/model", str(scoring),
                    str(tmp_path / "pyfunc.csv")], check=True, timeout=300, env=env, cwd=tmp_path)
    pyfunc = pd.read_csv(tmp_path / "pyfunc.csv")
    # the published file adds the partition stamp columns (docs/runs.md); the scores are the same
    pd.testing.assert_frame_equal(pyfunc, served[list(pyfunc.columns)])


def test_unknown_run_on_the_server_is_an_input_error(tmp_path, server_target):
    from airflow_mbt.errors import MBTInputError

    root = make_project(tmp_path, n_customers=50, n_score=10)
    serving = make_manifest(serving_config("ffffffffffffffffffffffffffffffff"), server_target)
    with pytest.raises(MBTInputError) as err:
        run_steps(serving, root, ["load_model"])
    assert err.value.field == "serving.model_source.run_id" and MLFLOW_URI in str(err.value)
