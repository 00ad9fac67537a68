"""Real data sets bundled with scikit-learn (wine, iris, digits, breast_cancer, diabetes) through
the ``mbt`` CLI in one fresh project on the dev target (local files, sqlite MLflow): every problem
type trains with sane metrics and the column plan we expect, and serving reproduces the
training-time transform. The wine model has a custom transform in ``lib/``; after the training
run ``lib/`` is edited, and serving still scores with the code logged with the model (same
features and predictions as before the edit, and a warning naming the changed file).

The CLI runs in this process (``airflow_mbt.cli.main.main``), one project, small estimators, to
keep the module well under the integration budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from airflow_mbt.ml import custom_transforms, preprocessing
from cli_in_process import run_cli
from airflow_mbt.scaffold.project_init import init_project

LOGREG = {"model": "LogisticRegression", "max_iter": 1000}
DATASETS = {  # name: (loader, problem_type, config, metric, minimum)
    "wine": ("load_wine", "multiclass_classification", LOGREG, "accuracy", 0.85),
    "iris": ("load_iris", "multiclass_classification", LOGREG, "accuracy", 0.85),
    "digits": ("load_digits", "multiclass_classification", LOGREG, "accuracy", 0.85),
    "cancer": ("load_breast_cancer", "binary_classification", LOGREG, "roc_auc", 0.95),
    "diabetes": ("load_diabetes", "regression", {"model": "Ridge", "alpha": 1.0}, "r2", 0.3),
}
TRANSFORM_V1 = "def add_ratio(df):\n    df['flav_ratio'] = df['flavanoids'] / df['total_phenols']\n    return df\n"
TRANSFORM_V2 = TRANSFORM_V1.replace("/ df['total_phenols']", "* 100.0")


def frame(loader: str) -> pd.DataFrame:
    import sklearn.datasets

    data = getattr(sklearn.datasets, loader)(as_frame=True)
    df = data.frame.rename(columns=lambda c: str(c).replace(" ", "_").replace("(", "").replace(")", "")
                           .replace("/", "_").lower())
    df.insert(0, "row_id", [f"r{i:05d}" for i in range(len(df))])
    return df


def training_yaml(name: str, problem_type: str, config: dict, transforms: list[str]) -> dict:
    return {"project": {"name": f"training_{name}", "problem_type": problem_type,
                        "experiment_name": f"h_trust_corpus_{name}"},
            "deployment": {"cadence": "daily"},
            "training": {"data_source": {"label_table": name},
                         "schema": {"target": {"label_column": "target"}, "identifiers": {"primary_key": "row_id"}},
                         "preprocessing": {"custom_transforms": transforms},
                         "split": {"test_size": 0.25, "seed": 7},
                         "model_training": {"framework": "sklearn", "config": config},
                         "evaluation": {"generate_plots": False}}}


def cli(*args: str) -> str:
    """``mbt ARGS`` in this process; returns what it printed and logged (warnings included)."""
    code, text = run_cli(*args)
    assert code == 0, f"mbt {' '.join(args)} exited {code}\n{text}"
    return text


def results(project: Path, pipeline: str) -> dict:
    return json.loads((project / "target" / pipeline / "run_results.json").read_text())


def artifact(project: Path, pipeline: str, run_id: str, step: str, name: str) -> Path:
    return project / "local_artifacts" / pipeline / run_id / step / name


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    project = init_project("corpus", tmp_path_factory.mktemp("corpus"), framework="sklearn")
    shutil.rmtree(project / "pipelines")
    (project / "pipelines").mkdir()
    (project / "lib" / "wine.py").write_text(TRANSFORM_V1)
    frames = {}
    for name, (loader, problem_type, config, _, _) in DATASETS.items():
        frames[name] = frame(loader)
        frames[name].to_csv(project / "sample_data" / f"{name}.csv", index=False)
        transforms = ["lib.wine:add_ratio"] if name == "wine" else []
        (project / "pipelines" / f"training_{name}.yaml").write_text(
            yaml.safe_dump(training_yaml(name, problem_type, config, transforms), sort_keys=False))
    return project, frames


@pytest.fixture(scope="module")
def trained(corpus, monkeypatch_module):
    project, frames = corpus
    monkeypatch_module.chdir(project)
    out = {}
    for name in DATASETS:
        cli("run", "--select", f"training_{name}", "--target", "dev")
        out[name] = results(project, f"training_{name}")
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_problem_type_trains_with_sane_metrics_and_plan(corpus, trained, name):
    project, frames = corpus
    run = trained[name]
    assert run["status"] == "success", run
    _, problem_type, _, metric, minimum = DATASETS[name]
    metrics = json.loads(artifact(project, f"training_{name}", run["run_id"], "evaluate", "metrics.json").read_text())
    assert metrics["metrics"][metric] >= minimum, metrics["metrics"]
    pre = json.loads(artifact(project, f"training_{name}", run["run_id"], "train_model", "preprocessor.json")
                     .read_text())
    roles = {c["column"]: (c["role"], c["kind"]) for c in pre["columns"]}
    features = [c for c in frames[name].columns if c not in ("row_id", "target")]
    assert roles["row_id"][0] == "id" and roles["target"][0] == "label"
    assert all(roles[c] == ("feature", "numeric") for c in features), roles
    if name == "wine":
        assert roles["flav_ratio"] == ("feature", "numeric")


def test_serving_replays_the_logged_transform_after_a_lib_edit(corpus, trained):
    project, frames = corpus
    run_id = trained["wine"]["mlflow_run_id"]
    scoring = frames["wine"].drop(columns=["target"])
    scoring.to_csv(project / "sample_data" / "wine_score.csv", index=False)
    serving = {"project": {"name": "serving_wine"}, "deployment": {"cadence": "daily"},
               "serving": {"model_source": {"run_id": run_id}, "data_source": {"scoring_table": "wine_score"},
                           "output": {"destination": "local_file", "path": "wine_predictions.csv",
                                      "include_probabilities": "all"}}}
    (project / "pipelines" / "serving_wine.yaml").write_text(yaml.safe_dump(serving, sort_keys=False))

    def serve() -> tuple[pd.DataFrame, pd.DataFrame, str]:
        err = cli("run", "--select", "serving_wine", "--target", "dev")
        res = results(project, "serving_wine")
        assert res["status"] == "success", res
        feats = pd.read_parquet(artifact(project, "serving_wine", res["run_id"], "apply_transforms", "features.parquet"))
        preds = pd.read_csv(project / "wine_predictions.csv")
        preds = preds[preds["serving_run_id"] == res["run_id"]]
        return feats, preds.drop(columns=["serving_run_id", "execution_date"]).reset_index(drop=True), err

    before_feats, before_preds, _ = serve()
    # serving reproduces the training-time transform: the fitted training preprocessor on the raw rows
    train_run = trained["wine"]["run_id"]
    pre = json.loads(artifact(project, "training_wine", train_run, "train_model", "preprocessor.json").read_text())
    expected = preprocessing.transform(custom_transforms.apply(scoring, ["lib.wine:add_ratio"], project), pre)
    pd.testing.assert_frame_equal(before_feats[pre["output_columns"]].reset_index(drop=True),
                                  expected.reset_index(drop=True), check_dtype=False)
    proba = before_preds[[c for c in before_preds.columns if c.startswith("prediction_probability_")]]
    assert proba.shape[1] == 3 and ((proba.sum(axis=1) - 1).abs() < 1e-9).all()

    (project / "lib" / "wine.py").write_text(TRANSFORM_V2)  # the edit after training
    edited = preprocessing.transform(custom_transforms.apply(scoring, ["lib.wine:add_ratio"], project), pre)
    assert not edited.equals(expected)  # the edit would change the features if serving used it
    after_feats, after_preds, err = serve()
    pd.testing.assert_frame_equal(after_feats, before_feats)
    pd.testing.assert_frame_equal(after_preds, before_preds)
    assert "lib/wine.py changed since the model was trained" in err
