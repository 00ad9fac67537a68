"""Preprocessing fit/replay: JSON-only state, identical replay, unseen categories, missing values."""

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.ml import preprocessing as pp


@pytest.fixture
def frame():
    return pd.DataFrame({
        "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
        "tenure": [1, 5, 10, 20, 40, 60],
        "charges": [10.0, np.nan, 30.0, 40.0, np.nan, 60.0],
        "contract": ["m2m", "m2m", "one", "two", None, "m2m"],
        "flag": [True, False, True, True, False, False],
        "churned": [1, 1, 0, 0, 0, 1],
    })


def fit(df, **kw):
    kw.setdefault("missing_indicator_threshold", None)  # indicators: tests/unit/ml/test_ml_columns.py
    return pp.fit(df, label_column="churned", id_column="customer_id", **kw)


def test_fit_is_pure_json_and_excludes_label_and_id(frame):
    pre = fit(frame)
    assert json.loads(json.dumps(pre)) == pre
    assert pre["input_columns"] == {"tenure": "integer", "charges": "float", "contract": "string", "flag": "boolean"}
    assert pre["output_columns"] == ["tenure", "charges", "contract=m2m", "contract=one", "contract=two",
                                     "contract=__other__", "flag"]
    assert pre["id_column"] == "customer_id" and pre["label_column"] == "churned"


def test_transform_replays_training_statistics(frame):
    pre = fit(frame)
    out = pp.transform(frame, pre)
    assert list(out.columns) == pre["output_columns"]
    # standard scaling of the imputed training column gives mean 0, std 1
    assert out["tenure"].mean() == pytest.approx(0.0, abs=1e-12)
    assert out["tenure"].std(ddof=0) == pytest.approx(1.0)
    # the median of the present values (35.0) fills the gaps before scaling
    spec = pre["numeric"]["charges"]
    assert spec["impute"] == pytest.approx(35.0)
    assert out.loc[1, "charges"] == pytest.approx((35.0 - spec["center"]) / spec["scale"])
    # a JSON round trip of the preprocessor replays to the identical frame
    again = pp.transform(frame, json.loads(json.dumps(pre)))
    pd.testing.assert_frame_equal(out, again)


def test_missing_category_takes_most_frequent_and_unseen_goes_to_other(frame):
    pre = fit(frame)
    out = pp.transform(frame, pre)
    assert out.loc[4, ["contract=m2m", "contract=__other__"]].tolist() == [1.0, 0.0]  # None -> "m2m"
    new = frame.head(2).assign(contract=["brand_new", "one"])
    out2 = pp.transform(new, pre)
    assert out2.loc[0, ["contract=m2m", "contract=one", "contract=two", "contract=__other__"]].tolist() == [0, 0, 0, 1]
    assert out2.loc[1, "contract=one"] == 1.0
    assert out2.filter(like="contract=").sum(axis=1).tolist() == [1.0, 1.0]


def test_column_order_of_the_input_does_not_matter(frame):
    pre = fit(frame)
    shuffled = frame[list(reversed(frame.columns))]
    pd.testing.assert_frame_equal(pp.transform(shuffled, pre), pp.transform(frame, pre))


@pytest.mark.parametrize("impute,expected", [("mean", 35.0), ("zero", 0.0)])
def test_numeric_impute_modes(frame, impute, expected):
    pre = fit(frame, impute_numeric=impute, scale="none")
    assert pre["numeric"]["charges"]["impute"] == pytest.approx(expected)
    assert pp.transform(frame, pre).loc[1, "charges"] == pytest.approx(expected)


def test_impute_none_keeps_missing(frame):
    pre = fit(frame, impute_numeric="none", scale="none")
    assert pp.transform(frame, pre)["charges"].isna().sum() == 2


def test_minmax_scaling(frame):
    pre = fit(frame, scale="minmax")
    out = pp.transform(frame, pre)
    assert out["tenure"].min() == 0.0 and out["tenure"].max() == 1.0


def test_constant_column_does_not_divide_by_zero():
    df = pd.DataFrame({"x": [3.0, 3.0, 3.0], "y": [0, 1, 0]})
    pre = pp.fit(df, label_column="y")
    assert pp.transform(df, pre)["x"].tolist() == [0.0, 0.0, 0.0]


def test_encode_none_keeps_text_for_native_categorical_frameworks(frame):
    pre = fit(frame, encode="none")
    out = pp.transform(frame.assign(contract=["m2m", None, "zzz", "two", "one", "m2m"]), pre)
    assert "contract" in out.columns and out["contract"].tolist() == ["m2m", "m2m", "zzz", "two", "one", "m2m"]


def test_ignored_columns_are_not_features(frame):
    pre = fit(frame, ignored_columns=["flag"])
    assert "flag" not in pre["input_columns"] and pre["ignored_columns"] == ["flag"]


def test_datetime_column_becomes_derived_numbers_not_onehot(frame):
    pre = fit(frame.assign(signup=pd.to_datetime(["2024-01-01", "2024-02-03", "2024-03-05", "2024-04-07",
                                                 "2025-05-09", "2025-06-11"])))
    assert pre["input_columns"]["signup"] == "datetime"
    assert [c for c in pre["output_columns"] if c.startswith("signup")] == [
        "signup__year", "signup__month", "signup__day", "signup__dayofweek"]  # hour is constant: dropped
    assert not any(c.startswith("signup=") for c in pre["output_columns"])


def test_transform_of_a_frame_without_a_feature_raises(frame):
    pre = fit(frame)
    with pytest.raises(DataContractError, match="tenure"):
        pp.transform(frame.drop(columns=["tenure"]), pre)


def test_settings_from_config_defaults_and_validation():
    settings = pp.settings_from_config({})
    assert {k: settings[k] for k in ("impute_numeric", "impute_categorical", "scale", "encode",
                                     "custom_transforms", "max_levels", "high_cardinality")} == {
        "impute_numeric": "median", "impute_categorical": "most_frequent", "scale": "standard",
        "encode": "onehot", "custom_transforms": [], "max_levels": 50, "high_cardinality": "top_k"}
    with pytest.raises(MBTInputError) as err:
        pp.settings_from_config({"training": {"preprocessing": {"scale": "robust"}}})
    assert err.value.field == "training.preprocessing.scale" and "standard" in err.value.hint


def test_nullable_and_categorical_dtypes_from_databases():
    df = pd.DataFrame({"id": ["a", "b", "c", "d"],
                       "t": pd.array([1, None, 3, 4], dtype="Int64"),
                       "c": pd.array(["x", None, "y", "x"], dtype="string"),
                       "b": pd.array([True, None, False, True], dtype="boolean"),
                       "k": pd.Categorical(["u", "v", None, "u"]),
                       "y": [0, 1, 0, 1]})
    pre = pp.fit(df, label_column="y", id_column="id", scale="none", missing_indicator_threshold=None)
    assert pre["input_columns"] == {"t": "integer", "c": "string", "b": "boolean", "k": "string"}
    out = pp.transform(df, pre)
    assert out["t"].tolist() == [1.0, 3.0, 3.0, 4.0]  # <NA> -> median 3
    assert out["b"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert out.loc[1, ["c=x", "c=__other__"]].tolist() == [1.0, 0.0]  # <NA> -> most frequent "x"
    assert out.loc[2, "k=u"] == 1.0
    assert not out.isna().any().any()


def test_categorical_impute_missing_is_a_level_of_its_own(frame):
    pre = fit(frame, impute_categorical="missing")
    assert pre["categorical"]["contract"] == {"impute": "__missing__", "levels": ["__missing__", "m2m", "one", "two"]}
    out = pp.transform(frame, pre)
    assert out.loc[4, "contract=__missing__"] == 1.0 and out.loc[4, "contract=__other__"] == 0.0
    # impute none: a missing category is "other"
    out = pp.transform(frame, fit(frame, impute_categorical="none"))
    assert out.loc[4, "contract=__other__"] == 1.0
