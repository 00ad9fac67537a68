"""The sklearn framework: estimator resolution, config errors, save/load/predict round trip."""

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.plugins import registry
from airflow_mbt.plugins.frameworks.sklearn import SklearnFramework, build_estimator


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = pd.Series((X["a"] + 0.5 * X["b"] + rng.normal(scale=0.3, size=300) > 0).astype(int))
    return X, y


def test_registered_under_its_entry_point():
    assert registry.get("frameworks", "sklearn") is SklearnFramework


def test_round_trip_predictions_are_identical(tmp_path, data):
    X, y = data
    fw = SklearnFramework(None)
    model = fw.train(X, y, "binary_classification", {"model": "RandomForestClassifier", "n_estimators": 20}, None)
    fw.save(model, tmp_path / "m")
    info = json.loads((tmp_path / "m" / "sklearn_model.json").read_text())
    assert info["estimator"] == "RandomForestClassifier" and info["params"]["random_state"] == 42
    loaded = fw.load(tmp_path / "m")
    before, after = fw.predict(model, X, "binary_classification"), fw.predict(loaded, X, "binary_classification")
    pd.testing.assert_frame_equal(before, after)
    assert list(after.columns) == ["prediction", "proba_0", "proba_1"]
    assert (after["prediction"] == y).mean() > 0.8
    imp = fw.feature_importance(loaded)
    assert set(imp) == {"a", "b"} and imp["a"] > imp["b"]


def test_linear_model_importance_and_regression(data):
    X, y = data
    fw = SklearnFramework(None)
    model = fw.train(X, X["a"] * 3 + 1, "regression", {"model": "LinearRegression"}, None)
    out = fw.predict(model, X, "regression")
    assert list(out.columns) == ["prediction"]
    assert np.allclose(out["prediction"], X["a"] * 3 + 1)
    assert fw.feature_importance(model)["a"] == pytest.approx(3.0)


def test_seed_sets_random_state_and_defaults():
    est = build_estimator("binary_classification", {"seed": 7})
    assert type(est).__name__ == "RandomForestClassifier" and est.random_state == 7
    assert type(build_estimator("regression", {})).__name__ == "RandomForestRegressor"


@pytest.mark.parametrize("config,field,needle", [
    ({"model": "RandomForestClasifier"}, "training.model_training.config.model", "RandomForestClassifier"),
    ({"model": "LinearRegression"}, "training.model_training.config.model", "not a scikit-learn classifier"),
    ({"model": "RandomForestClassifier", "n_trees": 5}, "training.model_training.config.n_trees", "n_estimators"),
])
def test_config_mistakes_are_input_errors(config, field, needle):
    with pytest.raises(MBTInputError) as err:
        build_estimator("binary_classification", config)
    assert err.value.field == field and needle in str(err.value)


def test_bad_parameter_value_is_an_input_error(data):
    X, y = data
    with pytest.raises(MBTInputError) as err:
        SklearnFramework(None).train(X, y, "binary_classification",
                                     {"model": "RandomForestClassifier", "n_estimators": -3}, None)
    assert err.value.field == "training.model_training.config" and "n_estimators" in str(err.value)


def test_text_features_get_a_hint(data):
    X, y = data
    with pytest.raises(MBTInputError) as err:
        SklearnFramework(None).train(X.assign(c="x"), y, "binary_classification", {"model": "LogisticRegression"}, None)
    assert "encode: onehot" in err.value.hint


@pytest.mark.parametrize("estimator", ["RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier",
                                       "HistGradientBoostingClassifier"])
@pytest.mark.parametrize("labels", ["binary", "multiclass"])
def test_argmax_estimators_are_evaluated_once_with_sklearns_own_predictions(data, estimator, labels, monkeypatch):
    """For these estimators predict() is the argmax of predict_proba(): the framework takes the
    prediction from the probabilities (the forest is evaluated once per chunk), and it equals
    sklearn's own predict() exactly."""
    from airflow_mbt.plugins.frameworks.sklearn import argmax_predict

    X, y = data
    if labels == "multiclass":
        y = pd.Series(np.digitize(X["a"], [-0.5, 0.5])).map({0: "low", 1: "mid", 2: "high"})
    problem = "binary_classification" if labels == "binary" else "multiclass_classification"
    fw = SklearnFramework(None)
    model = fw.train(X, y, problem, {"model": estimator}, None)
    assert argmax_predict(model)
    expected = model.predict(X)
    calls = []
    real = type(model).predict_proba
    monkeypatch.setattr(type(model), "predict_proba", lambda self, X: calls.append(len(X)) or real(self, X))

    def second_pass(self, X):
        raise AssertionError("predict() evaluated the model a second time")

    monkeypatch.setattr(type(model), "predict", second_pass)
    out = fw.predict(model, X, problem)
    assert calls == [len(X)]
    assert out["prediction"].tolist() == expected.tolist()
    np.testing.assert_allclose(out[[c for c in out.columns if c.startswith("proba_")]].sum(axis=1), 1.0)


def test_other_classifiers_keep_their_own_predict(data):
    """LogisticRegression's predict() thresholds the decision function: it is called, not replaced,
    and neither is a subclass's predict() of an argmax estimator."""
    from sklearn.ensemble import RandomForestClassifier

    from airflow_mbt.plugins.frameworks.sklearn import argmax_predict

    X, y = data
    fw = SklearnFramework(None)
    model = fw.train(X, y, "binary_classification", {"model": "LogisticRegression"}, None)
    assert not argmax_predict(model)
    assert fw.predict(model, X, "binary_classification")["prediction"].tolist() == model.predict(X).tolist()

    class AlwaysOne(RandomForestClassifier):
        def predict(self, X):
            return np.ones(len(X), dtype=int)

    custom = AlwaysOne(n_estimators=5, random_state=0).fit(X, y)
    assert not argmax_predict(custom)
    assert set(fw.predict(custom, X, "binary_classification")["prediction"]) == {1}
