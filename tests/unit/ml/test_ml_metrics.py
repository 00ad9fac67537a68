"""Metrics per problem type and validation criteria."""

import math

import pandas as pd
import pytest

from airflow_mbt.errors import MBTInputError, ValidationCriteriaError
from airflow_mbt.ml import criteria, metrics


def binary_pred():
    y = pd.Series([0, 0, 1, 1, 1, 0])
    pred = pd.DataFrame({"prediction": [0, 1, 1, 1, 0, 0],
                         "proba_0": [0.9, 0.4, 0.2, 0.1, 0.6, 0.8],
                         "proba_1": [0.1, 0.6, 0.8, 0.9, 0.4, 0.2]})
    return y, pred


def test_binary_metrics_against_hand_computed_values():
    y, pred = binary_pred()
    m = metrics.compute("binary_classification", y, pred, classes=[0, 1], positive_class=1)
    assert list(m) == list(metrics.METRICS["binary_classification"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # positives scores 0.8, 0.9, 0.4 vs negatives 0.1, 0.6, 0.2: 8 of 9 pairs ordered
    assert m["roc_auc"] == pytest.approx(8 / 9)
    expected_ll = -sum(math.log(p) for p in [0.9, 0.4, 0.8, 0.9, 0.4, 0.8]) / 6
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert 0 < m["pr_auc"] <= 1


def test_positive_class_other_than_the_last():
    y, pred = binary_pred()
    m = metrics.compute("binary_classification", y, pred, classes=[0, 1], positive_class=0)
    assert m["roc_auc"] == pytest.approx(8 / 9)  # symmetric
    assert m["recall"] == pytest.approx(2 / 3)


def test_single_class_test_set_gives_none_not_nan():
    pred = pd.DataFrame({"prediction": [1, 1], "proba_0": [0.2, 0.3], "proba_1": [0.8, 0.7]})
    m = metrics.compute("binary_classification", pd.Series([1, 1]), pred, classes=[0, 1], positive_class=1)
    assert m["roc_auc"] is None and m["accuracy"] == 1.0


def test_binary_without_probabilities():
    y, pred = binary_pred()
    m = metrics.compute("binary_classification", y, pred[["prediction"]], classes=[0, 1], positive_class=1)
    assert m["roc_auc"] is None and m["log_loss"] is None and m["accuracy"] == pytest.approx(4 / 6)


def test_multiclass_metrics_with_text_labels():
    y = pd.Series(["a", "b", "c", "a"])
    pred = pd.DataFrame({"prediction": ["a", "b", "b", "a"], "proba_a": [0.8, 0.1, 0.1, 0.7],
                         "proba_b": [0.1, 0.8, 0.5, 0.2], "proba_c": [0.1, 0.1, 0.4, 0.1]})
    m = metrics.compute("multiclass_classification", y, pred, classes=["a", "b", "c"])
    assert list(m) == list(metrics.METRICS["multiclass_classification"])
    assert m["accuracy"] == 0.75
    assert m["recall_macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4)


def test_regression_metrics():
    y = pd.Series([1.0, 2.0, 4.0])
    pred = pd.DataFrame({"prediction": [1.0, 3.0, 2.0]})
    m = metrics.compute("regression", y, pred)
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["mape"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert m["r2"] == pytest.approx(1 - 5 / (14 / 3))


def test_criteria_parse_and_enforce():
    checks = criteria.parse_all(["roc_auc >= 0.7", "log_loss<0.5", "f1 == 1"], "binary_classification")
    assert [str(c) for c in checks] == ["roc_auc >= 0.7", "log_loss < 0.5", "f1 == 1"]
    results = criteria.evaluate(checks, {"roc_auc": 0.65, "log_loss": 0.3, "f1": None})
    assert [r["passed"] for r in results] == [False, True, False]
    with pytest.raises(ValidationCriteriaError) as err:
        criteria.enforce(results)
    text = str(err.value)
    assert "roc_auc >= 0.7 (actual 0.6500)" in text and "f1 == 1 (actual not available)" in text
    assert "log_loss < 0.5 (actual 0.3000): passed" in text  # every criterion is listed
    criteria.enforce(results[1:2])  # all passing: no error


@pytest.mark.parametrize("bad,needle", [("roc_auc => 0.7", "cannot parse"), ("roc_auc >= high", "cannot parse"),
                                        ("rmse <= 3", "not computed for binary_classification")])
def test_bad_criteria_name_the_list_item(bad, needle):
    with pytest.raises(MBTInputError) as err:
        criteria.parse_all(["accuracy > 0.5", bad], "binary_classification")
    assert needle in str(err.value)
    assert err.value.field == "training.evaluation.validation_criteria[1]"
