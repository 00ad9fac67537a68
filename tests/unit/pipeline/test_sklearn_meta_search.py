"""sklearn meta-estimators (nested estimator config) and ``search:`` (GridSearchCV) are checked at
validate against the estimator signatures, and train through the framework."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from hostile_cases import PROFILES, SK

from airflow_mbt.cli.main import main
from airflow_mbt.plugins.frameworks.sklearn import SklearnFramework, build_estimator
from airflow_mbt.scaffold.project_init import init_project

P = "pipelines/training_churn_model_v1.yaml"
OLD = "      model: LogisticRegression\n      max_iter: 100\n"
CALIBRATED = "      model: CalibratedClassifierCV\n      cv: 3\n      estimator: {model: LinearSVC, C: 0.5}\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = init_project("proj", tmp_path_factory.mktemp("meta"))
    (root / "profiles.yaml").write_text(PROFILES, encoding="utf-8")
    return root


def validate(template, tmp_path, monkeypatch, capsys, config: str) -> tuple[int, str]:
    assert OLD in SK
    project = tmp_path / "proj"
    shutil.copytree(template, project)
    (project / P).write_text(SK.replace(OLD, config), encoding="utf-8")
    monkeypatch.chdir(project)
    code = main(["validate", "training_churn_model_v1"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("config", [
    CALIBRATED,
    CALIBRATED + "      search: {param_grid: {estimator__C: [0.1, 1.0], method: [sigmoid]}, cv: 2}\n",
    OLD + "      search: {param_grid: {C: [0.1, 1.0]}}\n",
])
def test_valid_meta_and_search_configs_pass(template, tmp_path, monkeypatch, capsys, config):
    assert validate(template, tmp_path, monkeypatch, capsys, config) == (0, "")


@pytest.mark.parametrize("config,field,needle", [
    (CALIBRATED.replace("C: 0.5", "Cc: 0.5"), "config.estimator.Cc", "LinearSVC has no parameter 'Cc'"),
    (CALIBRATED.replace("C: 0.5", 'C: "strong"'), "config.estimator.C", "must be a float"),
    (CALIBRATED.replace("LinearSVC", "LinearSVX"), "config.estimator.model", "LinearSVC"),
    (OLD + "      search: {param_grid: {max_iters: [10, 20]}}\n", "config.search.param_grid.max_iters", "max_iter"),
    (CALIBRATED + "      search: {param_grid: {estimator__C: [0.1, \"big\"]}}\n",
     "config.search.param_grid.estimator__C[1]", "must be a float"),
    (OLD + "      search: {param_grid: {C: []}}\n", "config.search.param_grid.C", "non-empty list"),
    (OLD + "      search: {param_grid: {C: [1.0]}, cv: 1}\n", "config.search.cv", ">= 2"),
    (OLD + "      search: {grid: {C: [1.0]}}\n", "config.search", "param_grid"),
])
def test_bad_meta_and_search_configs_exit_2_at_the_key(template, tmp_path, monkeypatch, capsys, config, field,
                                                       needle):
    code, err = validate(template, tmp_path, monkeypatch, capsys, config)
    assert code == 2, err
    assert err.startswith(f"error: {P}:") and f"training.model_training.{field}:" in err and needle in err, err
    assert "Traceback" not in err and err.count("error:") == 1


def test_nested_estimator_is_built_and_search_keeps_the_best(tmp_path):
    from sklearn.datasets import load_iris

    est = build_estimator("multiclass_classification", {"model": "CalibratedClassifierCV", "cv": 3,
                                                        "estimator": {"model": "LinearSVC", "C": 0.5}})
    assert type(est.estimator).__name__ == "LinearSVC" and est.estimator.C == 0.5
    X, y = load_iris(return_X_y=True, as_frame=True)

    class Ctx:
        config = {"training": {"evaluation": {"primary_metric": "accuracy"}}}
        log = None

    config = {"model": "LogisticRegression", "max_iter": 500,
              "search": {"param_grid": {"C": [0.001, 10.0]}, "cv": 3}}
    framework = SklearnFramework(None)
    model = framework.train(X, y, "multiclass_classification", config, Ctx())
    assert type(model).__name__ == "LogisticRegression" and model.C == 10.0  # 0.001 underfits iris
    assert model.mbt_search_["candidates"] == 2 and model.mbt_search_["best_params"] == {"C": 10.0}
    framework.save(model, tmp_path / "m")
    assert (tmp_path / "m" / "sklearn_model.json").read_text().count('"best_params"') == 1
    assert len(framework.predict(framework.load(tmp_path / "m"), X, "multiclass_classification")) == len(y)
    assert isinstance(X, pd.DataFrame)
