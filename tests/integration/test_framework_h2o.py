"""h2o_automl on real H2O JVMs (marker ``h2o``).

Ports: 54351 for the JVM the framework starts itself and 54361 for a JVM this module starts as a
"shared" cluster (never 54321, the stack's server, and not 54331, which concurrent dev-target runs
of other tests use; an H2O node also takes port+1). Heaps are 1 GB. AutoML trains 2 models (+ ensembles) on 1000 rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (AUTOML_TEST, dev_target, fetch, make_manifest, make_project, run_steps,  # noqa: E402
                                  serving_config, training_config)

from airflow_mbt.ml import preprocessing  # noqa: E402
from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework, genmodel_jar  # noqa: E402
from airflow_mbt.runtime.context import TargetRuntime  # noqa: E402
from airflow_mbt.scaffold.sample_data import iter_rows  # noqa: E402

pytestmark = [pytest.mark.h2o, pytest.mark.filterwarnings("ignore:Converting H2O frame")]

OWN_PORT = 54351
SHARED_PORT = 54361


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/3/Cloud", timeout=5):
            return True
    except OSError:
        return False


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """An H2O server in its own JVM process, standing in for the shared cluster."""
    assert not answers(SHARED_PORT), f"port {SHARED_PORT} is taken; stop whatever runs there"
    logs = tmp_path_factory.mktemp("h2o-shared")
    proc = subprocess.Popen(["java", "-Xmx1g", "-jar", str(genmodel_jar()), "-ip", "127.0.0.1", "-web_ip", "127.0.0.1",
                             "-port", str(SHARED_PORT), "-name", "mbt_b2_shared", "-ice_root", str(logs)],
                            stdout=(logs / "out.log").open("w"), stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: answers(SHARED_PORT), 90), (logs / "out.log").read_text()[-2000:]
        yield f"http://127.0.0.1:{SHARED_PORT}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def churn():
    df = pd.DataFrame(list(iter_rows(1000, seed=11)))
    pre = preprocessing.fit(df, label_column="churned", id_column="customer_id")
    return df, pre, preprocessing.transform(df, pre)


class Ctx:
    run_id = "run_20260101_000000_b2b2"


def test_automl_on_the_shared_cluster_cleans_up_only_its_keys(shared_cluster, churn, tmp_path):
    import h2o

    df, _, X = churn
    runtime = TargetRuntime(target=dev_target(h2o={"url": shared_cluster}), project_dir=tmp_path)
    fw = H2OAutoMLFramework(runtime)
    fw.connect()
    other = h2o.H2OFrame(pd.DataFrame({"a": [1, 2, 3]}), destination_frame="someone_elses_frame")
    before = set(h2o.ls()["key"])
    model = fw.train(X, df["churned"], "binary_classification", AUTOML_TEST, Ctx())
    assert model.leader is not None and model.response_levels == ["0", "1"]
    created = fw.created_keys()
    assert any(k.endswith("_train") for k in created) and model.model_ids[0] in created
    fw.save(model, tmp_path / "model")
    info = json.loads((tmp_path / "model" / "h2o_model.json").read_text())
    assert info["leader"] == model.leader.model_id and info["h2o_version"] == h2o.__version__
    assert (tmp_path / "model" / "model.zip").stat().st_size > 0
    assert info["feature_importance"]  # from the leader or the best model that has one
    fw.cleanup()
    assert answers(SHARED_PORT), "cleanup must not shut down a cluster it did not start"
    h2o.connect(url=shared_cluster, verbose=False)
    after = set(h2o.ls()["key"])
    assert after == before, f"left behind: {sorted(after - before)}"
    assert other.frame_id in after
    h2o.remove(other)


def test_mojo_predictions_in_a_fresh_process_equal_and_need_no_cluster(shared_cluster, churn, tmp_path):
    df, _, X = churn
    runtime = TargetRuntime(target=dev_target(h2o={"url": shared_cluster}), project_dir=tmp_path)
    fw = H2OAutoMLFramework(runtime)
    try:
        fw.save(fw.train(X, df["churned"], "binary_classification", AUTOML_TEST, Ctx()), tmp_path / "model")
    finally:
        fw.cleanup()
    here = fw.predict(fw.load(tmp_path / "model"), X, "binary_classification")
    assert list(here.columns) == ["prediction", "proba_0", "proba_1"]
    assert ((here["proba_1"] - 0.5).abs() > 0).all() and set(here["prediction"]) <= {"0", "1"}
    # the long-lived scorer gives what h2o's own PredictCsv path gives (one JVM per call, CSV)
    import h2o

    ref = h2o.mojo_predict_pandas(X.reset_index(drop=True), mojo_zip_path=str(tmp_path / "model" / "model.zip"),
                                  genmodel_jar_path=str(genmodel_jar()), verbose=False)
    assert (here["prediction"].to_numpy() == ref["predict"].astype(str).to_numpy()).all()
    assert here["proba_1"].to_numpy() == pytest.approx(ref["p1"].to_numpy(), abs=1e-12)
    X.to_parquet(tmp_path / "X.parquet")
    script = (
        "import sys, pandas as pd\n"
        "from pathlib import Path\n"
        "from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework\n"
        "fw = H2OAutoMLFramework(None)\n"
        "out = fw.predict(fw.load(Path(sys.argv[1])), pd.read_parquet(sys.argv[2]), 'binary_classification')\n"
        "out.to_parquet(sys.argv[3])\n"
        "import h2o\n"
        "assert h2o.connection() is None or not h2o.connection().connected\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"), str(tmp_path / "X.parquet"),
                    str(tmp_path / "out.parquet")], check=True, timeout=300)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), here)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(df["churned"], here["proba_1"]) > 0.75  # probabilities belong to class "1"


def test_training_pipeline_with_its_own_jvm_then_serving(tmp_path):
    """Every training step with h2o_automl on a JVM the framework starts (and stops), then the
    serving steps score from the MLflow-logged MOJO."""
    assert not answers(OWN_PORT), f"port {OWN_PORT} is taken; stop whatever runs there"
    root = make_project(tmp_path, n_customers=1000, n_score=300)
    target = dev_target(h2o={"mode": "local", "port": OWN_PORT, "max_mem_size": "1g"})
    cfg = training_config()
    cfg["training"]["model_training"] = {"framework": "h2o_automl", "config": AUTOML_TEST}
    manifest = make_manifest(cfg, target)
    runtime = TargetRuntime(target=target, project_dir=root)
    try:
        run_id = run_steps(manifest, root, ["load_data", "split_data", "train_model"], runtime=runtime)
        assert answers(OWN_PORT)
    finally:
        runtime.close()  # the executor's owner closes the runtime: framework cleanup
    assert wait_until(lambda: not answers(OWN_PORT), 60), "the JVM the framework started must be shut down"
    run_steps(manifest, root, ["evaluate", "log_run"], run_id=run_id)
    metrics = fetch(root, manifest, run_id, "metrics")
    assert metrics["metrics"]["roc_auc"] > 0.7
    mlflow_run = fetch(root, manifest, run_id, "mlflow_run")
    serving = make_manifest(serving_config(mlflow_run["run_id"]), target)
    run_steps(serving, root)
    preds = pd.read_csv(root / "predictions.csv")
    assert len(preds) == 300 and list(preds.columns)[:3] == ["customer_id", "prediction", "prediction_probability"]
    assert {"execution_date", "pipeline_name", "serving_run_id"} <= set(preds.columns)  # the partition stamps
    assert set(preds["prediction"]) <= {0, 1} and preds["prediction_probability"].between(0, 1).all()
    assert not answers(OWN_PORT), "serving must not need a cluster"


def test_cleanup_after_a_crash_in_a_fresh_interpreter_leaves_no_jvm(tmp_path):
    """A JVM started by the framework in a process that never calls cleanup is stopped when that
    process exits (h2o's own exit hook); nothing lingers on the port."""
    assert not answers(OWN_PORT)
    script = (
        "from pathlib import Path\n"
        "from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework\n"
        "from airflow_mbt.runtime.context import TargetRuntime\n"
        f"rt = TargetRuntime(target={{'name': 'dev', 'h2o': {{'mode': 'local', 'port': {OWN_PORT}, "
        "'max_mem_size': '1g'}}, project_dir=Path('.'))\n"
        "print(H2OAutoMLFramework(rt).connect())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"http://127.0.0.1:{OWN_PORT}" in proc.stdout
    assert wait_until(lambda: not answers(OWN_PORT), 60)


@pytest.mark.services
def test_prod_path_on_the_stack_server_via_connection(churn, tmp_path, monkeypatch):
    """``h2o: {conn_id: ...}`` (H2OHook) against the stack's shared server: train, save, and
    remove exactly the keys this run created; the server stays up for everyone else."""
    import h2o

    url = os.environ.get("MBT_H2O_URL", "http://127.0.0.1:54321")
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    monkeypatch.setenv("AIRFLOW_CONN_B2_H2O_TEST",
                       json.dumps({"conn_type": "h2o", "host": host, "port": int(port), "schema": "http"}))
    df, _, X = churn
    fw = H2OAutoMLFramework(TargetRuntime(target=dev_target(h2o={"conn_id": "b2_h2o_test"}), project_dir=tmp_path))
    try:
        model = fw.train(X, df["churned"], "binary_classification", AUTOML_TEST, Ctx())
        fw.save(model, tmp_path / "model")
        created = fw.created_keys()
        assert created and model.leader.model_id in created
    finally:
        fw.cleanup()
    assert answers(int(port))
    h2o.connect(url=url, verbose=False)
    remaining = set(h2o.ls()["key"])
    assert not remaining & set(created), f"left behind: {sorted(remaining & set(created))}"
    assert len(fw.predict(fw.load(tmp_path / "model"), X.head(50), "binary_classification")) == 50


@pytest.mark.parametrize("problem", ["multiclass_classification", "regression"])
def test_multiclass_and_regression_mojos(shared_cluster, churn, tmp_path, problem):
    df, _, X = churn
    if problem == "regression":
        y, X = df["monthly_charges"], X.drop(columns=["monthly_charges"])
    else:
        y = df["contract_type"].map({"month-to-month": "m2m", "one_year": "1y", "two_year": "2y"})
        X = X.drop(columns=[c for c in X.columns if c.startswith("contract_type")])
    fw = H2OAutoMLFramework(TargetRuntime(target=dev_target(h2o={"url": shared_cluster}), project_dir=tmp_path))
    try:
        options = {**AUTOML_TEST, "sort_metric": "AUC" if problem != "regression" else "RMSE"}
        fw.save(fw.train(X, y, problem, options, Ctx()), tmp_path / "model")
    finally:
        fw.cleanup()
    out = fw.predict(fw.load(tmp_path / "model"), X, problem)
    if problem == "regression":
        assert list(out.columns) == ["prediction"]
        assert (out["prediction"] - y).abs().mean() < y.std()  # better than predicting the mean
    else:
        assert list(out.columns) == ["prediction", "proba_1y", "proba_2y", "proba_m2m"]
        assert set(out["prediction"]) <= {"m2m", "1y", "2y"}
        assert out[["proba_1y", "proba_2y", "proba_m2m"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
        # the predicted class is the most probable one
        assert (out[["proba_1y", "proba_2y", "proba_m2m"]].idxmax(axis=1).str[6:] == out["prediction"]).mean() > 0.99
