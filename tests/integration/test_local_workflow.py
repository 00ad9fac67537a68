"""The data scientist's local workflow through the real ``mbt`` CLI, in fresh project folders:
``mbt init`` -> ``mbt validate`` -> ``mbt compile`` -> ``mbt run`` (sklearn; H2O AutoML with the
``h2o`` marker) -> MLflow run with metrics -> serving with the trained run -> predictions.csv,
and ``mbt step execute`` (one process per step) producing the same artifacts as ``mbt run``.

Real services only: local files, the dev target's sqlite MLflow store, a local H2O JVM.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime.run_id import new_run_id

MBT = Path(sys.executable).parent / "mbt"
TRAINING = "training_churn_model_v1"
SERVING = "serving_churn_model_v1"
TRAINING_STEPS = ["load_data", "split_data", "train_model", "evaluate", "log_run", "promote"]  # registration
SERVING_STEPS = ["load_model", "load_scoring_data", "apply_transforms", "predict", "publish"]
METRICS = ["roc_auc", "accuracy", "f1", "precision", "recall"]
DETERMINISTIC = ["raw_data", "train_set", "test_set", "preprocessor"]


def mbt(project: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(MBT), *args], cwd=project, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"mbt {' '.join(args)} exited {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def init_project(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    mbt(parent, "init", "demo")
    project = parent / "demo"
    assert (project / "profiles.yaml").is_file() and (project / "pipelines" / f"{TRAINING}.yaml").is_file()
    assert (project / "sample_data" / "customers.csv").is_file()
    return project


def edit_yaml(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def use_sklearn(doc: dict) -> None:
    doc["training"]["model_training"] = {
        "framework": "sklearn",
        "config": {"model": "RandomForestClassifier", "n_estimators": 60, "max_depth": 6, "seed": 42},
    }


def registry(project: Path, run_id: str, pipeline: str = TRAINING) -> dict:
    path = project / "local_artifacts" / pipeline / run_id / ".artifact_registry.json"
    return json.loads(path.read_text())["artifacts"]


def run_pipeline_cli(project: Path, name: str, *extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    proc = mbt(project, "run", "--select", name, "--target", "dev", *extra)
    results = json.loads((project / "target" / name / "run_results.json").read_text())
    return results, proc


def check_training_run(project: Path, results: dict, proc) -> None:
    assert results["status"] == "success", results
    assert results["pipeline"] == TRAINING and results["target"] == "dev"
    assert [(s["name"], s["status"]) for s in results["steps"]] == [(s, "success") for s in TRAINING_STEPS]
    run_id = results["run_id"]
    assert run_id in proc.stdout + proc.stderr
    arts = registry(project, run_id)
    expected = {"raw_data": "load_data", "train_set": "split_data", "test_set": "split_data",
                "model": "train_model", "preprocessor": "train_model", "metrics": "evaluate",
                "plots": "evaluate", "mlflow_run": "log_run", "promotion": "promote"}
    assert {name: e["step"] for name, e in arts.items()} == expected
    for entry in arts.values():
        path = Path(entry["uri"])
        assert path.parent == project / "local_artifacts" / TRAINING / run_id / entry["step"], entry
        assert path.is_file() and path.stat().st_size == entry["size"]
    # the MLflow run exists in the dev sqlite store, with the evaluation metrics
    from mlflow.tracking import MlflowClient

    mlflow_run = json.loads(Path(arts["mlflow_run"]["uri"]).read_text())
    assert results["mlflow_run_id"] == mlflow_run["run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(results["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert set(METRICS) <= set(run.data.metrics), run.data.metrics
    assert 0.6 <= run.data.metrics["roc_auc"] <= 1.0
    assert client.get_experiment(run.info.experiment_id).name == "churn_prediction"


@pytest.fixture(scope="module")
def sklearn_project(tmp_path_factory):
    project = init_project(tmp_path_factory.mktemp("sk"))
    edit_yaml(project / "pipelines" / f"{TRAINING}.yaml", use_sklearn)
    return project


@pytest.fixture(scope="module")
def sklearn_run(sklearn_project):
    mbt(sklearn_project, "validate", TRAINING)
    mbt(sklearn_project, "compile", TRAINING, "--target", "dev")
    manifest = Manifest.read(sklearn_project / "target" / TRAINING / "manifest.json")
    assert manifest.pipeline.framework == "sklearn" and [s.name for s in manifest.steps] == TRAINING_STEPS
    results, proc = run_pipeline_cli(sklearn_project, TRAINING)
    return results, proc


def test_sklearn_training_run(sklearn_project, sklearn_run):
    check_training_run(sklearn_project, *sklearn_run)


@pytest.fixture(scope="module")
def serving_run(sklearn_project, sklearn_run):
    results, _ = sklearn_run

    def point_at_training_run(doc):
        # the run-id flow: pin this run instead of the scaffold's registry alias
        doc["serving"]["model_source"] = {"registry": "mlflow", "run_id": results["mlflow_run_id"]}
        doc["deployment"].pop("on_model_change", None)
        doc["serving"]["output"] = {"destination": "local_file", "path": "predictions.csv",
                                    "include_probabilities": True}

    edit_yaml(sklearn_project / "pipelines" / f"{SERVING}.yaml", point_at_training_run)
    mbt(sklearn_project, "validate")
    mbt(sklearn_project, "compile", SERVING, "--target", "dev")
    served, _ = run_pipeline_cli(sklearn_project, SERVING)
    return served


def read_predictions(project: Path) -> tuple[list[str], list[dict]]:
    with open(project / "predictions.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def test_serving_scores_every_customer(sklearn_project, sklearn_run, serving_run):
    assert serving_run["status"] == "success", serving_run
    assert serving_run["run_id"] != sklearn_run[0]["run_id"]
    assert [s["name"] for s in serving_run["steps"]] == SERVING_STEPS
    with open(sklearn_project / "sample_data" / "customers_to_score.csv", newline="") as fh:
        customers = [row["customer_id"] for row in csv.DictReader(fh)]
    fields, rows = read_predictions(sklearn_project)
    assert {"customer_id", "prediction", "prediction_probability"} <= set(fields)
    assert sorted(r["customer_id"] for r in rows) == sorted(customers) and len(rows) == len(customers)
    assert {r["prediction"] for r in rows} <= {"0", "1"}
    probabilities = [float(r["prediction_probability"]) for r in rows]
    assert all(0.0 <= p <= 1.0 for p in probabilities) and len(set(probabilities)) > 10


def test_serving_steps_in_parallel_processes_match_mbt_run(sklearn_project, serving_run):
    """load_model and load_scoring_data run at the same time in two processes (as two pods
    would) and record into one registry; the rest follow one process each."""
    _, before = read_predictions(sklearn_project)
    run_id = new_run_id()

    def step_cmd(step):
        return [str(MBT), "step", "execute", "--pipeline", SERVING, "--step", step, "--target", "dev",
                "--run-id", run_id]

    parallel = [subprocess.Popen(step_cmd(s), cwd=sklearn_project, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for s in SERVING_STEPS[:2]]
    outcomes = [(p.wait(timeout=600), p.communicate()) for p in parallel]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    for step in SERVING_STEPS[2:]:
        mbt(sklearn_project, *step_cmd(step)[1:])
    first = registry(sklearn_project, serving_run["run_id"], SERVING)
    second = registry(sklearn_project, run_id, SERVING)
    assert set(second) == set(first) == {"model", "preprocessor", "model_ref", "scoring_data", "features",
                                         "predictions", "publish_result"}
    for name in ("preprocessor", "scoring_data", "features", "predictions"):
        assert second[name]["sha256"] == first[name]["sha256"], name
    _, after = read_predictions(sklearn_project)

    def scores(rows, serving_run_id):  # one run's partition, without its stamp columns
        return sorted((r["customer_id"], r["prediction"], r["prediction_probability"])
                      for r in rows if r["serving_run_id"] == serving_run_id)

    assert scores(after, run_id) == scores(before, serving_run["run_id"]) and scores(after, run_id)


def test_step_execute_per_process_matches_mbt_run(sklearn_project, sklearn_run):
    results, _ = sklearn_run
    run_id = new_run_id()
    for step in TRAINING_STEPS:
        mbt(sklearn_project, "step", "execute", "--pipeline", TRAINING, "--step", step, "--target", "dev",
            "--run-id", run_id)
    first, second = registry(sklearn_project, results["run_id"]), registry(sklearn_project, run_id)
    assert set(second) == set(first)
    for name in DETERMINISTIC:
        assert second[name]["sha256"] == first[name]["sha256"], name
        assert second[name]["key"] == first[name]["key"].replace(results["run_id"], run_id)
    m1 = json.loads(Path(first["metrics"]["uri"]).read_text())["metrics"]
    m2 = json.loads(Path(second["metrics"]["uri"]).read_text())["metrics"]
    for metric in METRICS:
        assert m2[metric] == pytest.approx(m1[metric], abs=1e-12), metric


def test_step_execute_without_upstream_fails_cleanly(sklearn_project, sklearn_run):
    proc = subprocess.run([str(MBT), "step", "execute", "--pipeline", TRAINING, "--step", "train_model",
                           "--target", "dev", "--run-id", "run_20200101_000000_dead"],
                          cwd=sklearn_project, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "artifact 'train_set' not found for run run_20200101_000000_dead; did step 'split_data' run?" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.h2o
def test_h2o_automl_training_run(tmp_path_factory):
    project = init_project(tmp_path_factory.mktemp("h2o"))
    # a port of its own: other tests' dev-target runs use the scaffold's 54331 (H2O also takes port+1)
    profiles = project / "profiles.yaml"
    assert "port: 54331" in profiles.read_text()
    profiles.write_text(profiles.read_text().replace("port: 54331", "port: 54371"))
    # 60 s: with 20 s AutoML sometimes builds no model at all when the 2 cores are busy
    mbt(project, "compile", TRAINING, "--target", "dev", "--vars", "max_runtime_secs=60")
    results, proc = run_pipeline_cli(project, TRAINING, "--vars", "max_runtime_secs=60")
    check_training_run(project, results, proc)
    model_dir_tar = Path(registry(project, results["run_id"])["model"]["uri"])
    import tarfile

    with tarfile.open(model_dir_tar) as tar:
        names = tar.getnames()
    assert "mbt_model.json" in names and any(n.endswith(".zip") for n in names), names  # MOJO inside
