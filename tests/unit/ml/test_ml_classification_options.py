"""Classification options: per-class probabilities, one-vs-rest multiclass ROC AUC, the binary
decision threshold (fixed or chosen on validation rows) stored with the model and applied when scoring."""


import numpy as np
import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, train_once, \
    training_config

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import metrics, preprocessing, scoring, threshold

UP_TO_TRAIN = ["load_data", "split_data", "train_model"]


def test_include_probabilities_all_gives_one_column_per_class_summing_to_one():
    scored = pd.DataFrame({"prediction": ["b", "a"], "proba_a": [0.2, 0.5], "proba_b": [0.5, 0.3],
                           "proba_c": [0.3, 0.2]})
    meta = {"problem_type": "multiclass_classification", "classes": ["a", "b", "c"], "positive_class": None}
    table = scoring.predictions_table(pd.Series(["x", "y"], name="id"), scored, meta, "all")
    cols = ["prediction_probability_a", "prediction_probability_b", "prediction_probability_c"]
    assert list(table.columns) == ["id", "prediction", "prediction_probability", *cols]
    assert np.allclose(table[cols].sum(axis=1), 1.0) and table["prediction_probability"].tolist() == [0.5, 0.5]
    assert "prediction_probability_a" not in scoring.predictions_table(None, scored, meta, True).columns


def test_multiclass_roc_auc_one_vs_rest():
    y = pd.Series(["a", "b", "c", "a", "b", "c"])
    perfect = pd.DataFrame(np.eye(3)[[0, 1, 2, 0, 1, 2]], columns=["proba_a", "proba_b", "proba_c"])
    perfect["prediction"] = y
    out = metrics.compute("multiclass_classification", y, perfect, classes=["a", "b", "c"])
    assert out["roc_auc_ovr"] == pytest.approx(1.0)
    wrong = perfect.copy()
    wrong[["proba_a", "proba_b", "proba_c"]] = np.eye(3)[[1, 2, 0, 1, 2, 0]]
    assert metrics.compute("multiclass_classification", y, wrong, classes=["a", "b", "c"])["roc_auc_ovr"] < 0.5
    one_class = metrics.compute("multiclass_classification", y[:1], perfect[:1], classes=["a", "b", "c"])
    assert one_class["roc_auc_ovr"] is None


def test_threshold_choose_meets_the_rule_with_the_best_f1():
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    p = np.clip(y * 0.35 + rng.random(400) * 0.65, 0, 1)
    rule = threshold.Rule("precision", ">=", 0.9)
    t, note = threshold.choose(rule, y, p)
    pred = p >= t
    assert (pred & y).sum() / pred.sum() >= 0.9 and "met on 400 validation rows" in note
    from sklearn.metrics import f1_score, precision_score

    meeting = [c for c in np.unique(p) if precision_score(y, p >= c, zero_division=0) >= 0.9]
    assert f1_score(y, p >= t) == pytest.approx(max(f1_score(y, p >= c) for c in meeting))
    t2, note2 = threshold.choose(threshold.Rule("precision", ">=", 1.01), y, p)
    assert "not reachable" in note2 and 0 <= t2 <= 1


def test_threshold_settings_are_validated():
    cfg = training_config(training={"evaluation": {"threshold": {"choose": "log_loss >= 0.2"}}})
    with pytest.raises(MBTInputError) as err:
        threshold.settings(cfg)
    assert err.value.field == "training.evaluation.threshold.choose"
    cfg = training_config(project={"problem_type": "regression"}, training={"evaluation": {"threshold": 0.4}})
    with pytest.raises(MBTInputError, match="binary_classification"):
        threshold.settings(cfg)
    assert threshold.settings(training_config(training={"evaluation": {"threshold": 0.3}})) == 0.3


def _model_and_test(root, manifest, run_id, tmp_path):
    model_dir = fetch(root, manifest, run_id, "model", tmp_path / "m")
    pre = fetch(root, manifest, run_id, "preprocessor")
    test = fetch(root, manifest, run_id, "test_set")
    framework, model, meta = scoring.load(model_dir)
    return scoring.score(framework, model, meta, preprocessing.transform(test, pre)), meta


def test_fixed_threshold_is_stored_and_applied(tmp_path):
    root = make_project(tmp_path)
    manifest = make_manifest(training_config(training={"evaluation": {"threshold": 0.8}}))
    run_id = run_steps(manifest, root, UP_TO_TRAIN)
    scored, meta = _model_and_test(root, manifest, run_id, tmp_path)
    assert meta["threshold"] == 0.8
    assert ((scored["proba_1"] >= 0.8) == (scored["prediction"] == 1)).all()
    assert (scored["proba_1"].between(0.5, 0.8, inclusive="left")).any()  # argmax would have said 1 here


def test_chosen_threshold_on_validation_rows(tmp_path):
    root = make_project(tmp_path)
    cfg = training_config(training={"evaluation": {"threshold": {"choose": "precision >= 0.7",
                                                                 "validation_size": 0.25}}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, root, UP_TO_TRAIN)
    scored, meta = _model_and_test(root, manifest, run_id, tmp_path)
    assert 0 < meta["threshold"] < 1 and meta["threshold_rule"].startswith("precision >= 0.7: ")
    assert ((scored["proba_1"] >= meta["threshold"]) == (scored["prediction"] == 1)).all()


def test_serving_writes_per_class_probabilities(tmp_path):
    root = make_project(tmp_path)
    _, _, mlflow_run = train_once(root, training_config(training={"evaluation": {"threshold": 0.6}}))
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {"include_probabilities": "all"}})
    run_steps(make_manifest(cfg), root)
    preds = pd.read_csv(root / "predictions.csv")
    assert list(preds.columns)[:5] == ["customer_id", "prediction", "prediction_probability",
                                       "prediction_probability_0", "prediction_probability_1"]
    # then the partition stamp columns every publish writes (docs/runs.md)
    assert {"execution_date", "pipeline_name", "serving_run_id"} <= set(preds.columns[5:])
    assert np.allclose(preds["prediction_probability_0"] + preds["prediction_probability_1"], 1.0)
    assert ((preds["prediction_probability_1"] >= 0.6) == (preds["prediction"] == 1)).all()  # threshold in serving
