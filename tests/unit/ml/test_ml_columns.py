"""The column plan (ml/columns.py + preprocessing.fit): roles, kinds, datetime handling, ids,
high-cardinality caps and encodings, missing indicators, reference checks."""

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.ml import columns, contract
from airflow_mbt.ml import preprocessing as pp


def frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(n)],
        "account_id": np.arange(1000, 1000 + n),
        "tenure": rng.integers(1, 70, n),
        "signup": pd.date_range("2023-01-01 08:00", periods=n, freq="241h"),
        "city": [f"city_{i % 12}" for i in range(n)],
        "plan": ["a", "b", "c", "a"] * (n // 4),
        "churned": [0, 1] * (n // 2),
    })


def plan_of(pre: dict) -> dict:
    return {p["column"]: (p["role"], p["kind"]) for p in pre["columns"]}


def fit(df, **kw):
    return pp.fit(df, label_column="churned", id_column="customer_id", **kw)


def test_every_column_gets_a_role_and_kind_and_the_plan_is_json():
    pre = fit(frame())
    assert json.loads(json.dumps(pre)) == pre
    assert plan_of(pre) == {
        "customer_id": ("id", "categorical"), "account_id": ("id", "numeric"), "tenure": ("feature", "numeric"),
        "signup": ("feature", "datetime"), "city": ("feature", "categorical"), "plan": ("feature", "categorical"),
        "churned": ("label", "numeric")}
    table = columns.format_table(pre["columns"])
    assert table.splitlines()[0].split() == ["column", "role", "kind", "missing", "treatment", "note"]
    assert "integer column named like an id" in table


def test_datetime_from_csv_and_parquet_give_the_same_plan_and_features(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, from_parquet = pd.read_csv(tmp_path / "t.csv"), pd.read_parquet(tmp_path / "t.parquet")
    assert from_csv["signup"].dtype == object and str(from_parquet["signup"].dtype).startswith("datetime64")
    a, b = fit(from_csv), fit(from_parquet)
    assert a["columns"] == b["columns"] and a["datetime"] == b["datetime"] and a["output_columns"] == b["output_columns"]
    assert a["datetime"]["signup"]["parts"] == ["year", "month", "day", "dayofweek", "hour"]
    assert not any(c.startswith("signup=") for c in a["output_columns"])
    # serving replays the same numbers whichever source the scoring rows come from
    pd.testing.assert_frame_equal(pp.transform(from_csv, a), pp.transform(from_parquet, a))
    # a timezone-aware PostgreSQL timestamp gives the same features as naive UTC text
    aware = from_parquet.assign(signup=from_parquet["signup"].dt.tz_localize("UTC"))
    pd.testing.assert_frame_equal(pp.transform(aware, a), pp.transform(from_csv, a))


def test_datetime_age_days_and_exclude():
    df = frame()
    pre = fit(df, datetime_features="age_days", datetime_reference="2024-01-01")
    assert pre["datetime"]["signup"]["reference"].startswith("2024-01-01")
    out = pp.transform(df, pre)
    raw = (pd.Timestamp("2024-01-01") - df["signup"]).dt.total_seconds() / 86400
    spec = pre["numeric"]["signup__age_days"]
    assert np.allclose(out["signup__age_days"] * spec["scale"] + spec["center"], raw)
    excluded = fit(df, datetime_features="exclude")
    assert plan_of(excluded)["signup"] == ("ignored", "datetime")
    assert "signup" in excluded["excluded_columns"] and "signup" not in excluded["input_columns"]
    assert contract.problems(df.drop(columns=["churned"]), excluded) == []  # present in serving: fine


def test_declared_ids_and_integer_id_names_are_never_features():
    df = frame().assign(id=np.arange(40), store_code=np.arange(40) % 5)
    pre = fit(df, id_columns=["store_code"])
    assert plan_of(pre)["id"] == ("id", "numeric") and plan_of(pre)["store_code"][0] == "id"
    assert not {"id", "account_id", "store_code"} & set(pre["input_columns"])
    # an explicit kind override makes a named integer a feature again
    kept = fit(df, kinds={"account_id": "numeric"})
    assert plan_of(kept)["account_id"] == ("feature", "numeric")


def test_high_cardinality_cap_is_configurable_and_top_k_keeps_k_levels():
    df = frame()
    assert plan_of(fit(df))["city"] == ("feature", "categorical")  # 12 levels <= 50
    pre = fit(df, max_levels=5)
    assert plan_of(pre)["city"] == ("feature", "text")
    assert len(pre["categorical"]["city"]["levels"]) == 5
    assert [c for c in pre["output_columns"] if c.startswith("city=")][-1] == "city=__other__"


def test_frequency_and_target_encodings_are_fitted_on_the_training_rows():
    df = frame()
    train, new = df.iloc[:30], df.iloc[30:]
    freq = fit(train, max_levels=5, high_cardinality="frequency")
    assert "city__freq" in freq["output_columns"]
    expected = train["city"].value_counts(normalize=True)
    out = pp.transform(new.assign(city=["city_0"] * 9 + ["never_seen"]), freq)
    assert out["city__freq"].iloc[0] == pytest.approx(expected["city_0"]) and out["city__freq"].iloc[-1] == 0.0
    target = pd.DataFrame({"y": train["churned"].astype(float)})
    te = fit(train, max_levels=5, high_cardinality="target", target=target)
    spec = te["encoded"]["city"]
    rows = train[train["city"] == "city_1"]["churned"]
    prior = train["churned"].mean()
    assert spec["outputs"]["city__target"]["city_1"] == pytest.approx((rows.sum() + 10 * prior) / (len(rows) + 10))
    assert spec["default"]["city__target"] == pytest.approx(prior)
    with pytest.raises(MBTInputError, match="needs the label"):
        fit(train, max_levels=5, high_cardinality="target")


def test_missing_indicator_appears_above_the_threshold_only():
    df = frame()
    df.loc[:5, "tenure"] = np.nan  # 6 of 40 = 15 %
    df.loc[:1, "plan"] = None  # 2 of 40 = 5 %
    pre = fit(df, missing_indicator_threshold=0.1)
    assert pre["missing_indicators"] == ["tenure"] and "tenure__missing" in pre["output_columns"]
    out = pp.transform(df, pre)
    assert out["tenure__missing"].tolist() == [1.0] * 6 + [0.0] * 34
    assert fit(df, missing_indicator_threshold=0.01)["missing_indicators"] == ["tenure", "plan"]
    assert fit(df, missing_indicator_threshold=None)["missing_indicators"] == []


def test_entirely_missing_column_is_excluded_with_a_note():
    pre = fit(frame().assign(empty=np.nan))
    entry = next(p for p in pre["columns"] if p["column"] == "empty")
    assert entry["role"] == "ignored" and "entirely missing" in entry["note"]


def config(**schema):
    base = {"target": {"label_column": "churned"}, "identifiers": {"primary_key": "customer_id"}}
    base.update(schema)
    return {"training": {"schema": base}}


def test_ignored_columns_typo_is_an_error_with_did_you_mean():
    with pytest.raises(DataContractError) as err:
        columns.check_references(frame(), config(ignored_columns=["plan", "tenur"]))
    assert err.value.field == "training.schema.ignored_columns[1]"
    assert "'tenur'" in str(err.value) and "did you mean 'tenure'" in err.value.hint


def test_an_ignored_column_only_scoring_data_has_is_a_warning_not_an_error(caplog):
    import logging

    log = logging.getLogger("airflow_mbt.test_columns")
    with caplog.at_level(logging.WARNING, logger="airflow_mbt.test_columns"):
        columns.check_references(frame(), config(ignored_columns=["snapshot_date"]), log)
    assert "'snapshot_date' is not in the training data" in caplog.text


def test_every_column_reference_is_checked():
    cfg = config(identifiers={"primary_key": "customer_id", "id_columns": ["acount_id"]})
    with pytest.raises(DataContractError) as err:
        columns.check_references(frame(), cfg)
    assert err.value.field == "training.schema.identifiers.id_columns[0]" and "account_id" in err.value.hint
    cfg = config()
    cfg["training"]["split"] = {"method": "time", "time_column": "sigup"}
    with pytest.raises(DataContractError, match="sigup"):
        columns.check_references(frame(), cfg)


def test_non_unique_or_missing_primary_key_is_an_input_error():
    df = frame()
    df.loc[3, "customer_id"] = "C000"
    with pytest.raises(DataContractError) as err:
        columns.check_references(df, config())
    assert "not unique: 2 of 40 rows" in str(err.value) and err.value.field == "training.schema.identifiers.primary_key"
    df.loc[3, "customer_id"] = None
    with pytest.raises(DataContractError, match="missing in 1 of 40 rows"):
        columns.check_references(df, config())


def test_plan_settings_are_validated():
    with pytest.raises(MBTInputError) as err:
        columns.settings_from_config({"training": {"preprocessing": {"high_cardinality": {"encode": "hash"}}}})
    assert err.value.field == "training.preprocessing.high_cardinality.encode"
    with pytest.raises(MBTInputError) as err:
        columns.settings_from_config({"training": {"preprocessing": {"datetime": {"parts": ["year", "week"]}}}})
    assert err.value.field == "training.preprocessing.datetime.parts[1]"


def test_contract_flags_text_that_is_not_a_date():
    df = frame()
    pre = fit(df)
    bad = df.drop(columns=["churned"]).astype({"signup": str})
    bad.loc[2, "signup"] = "next tuesday"
    found = contract.problems(bad, pre)
    assert len(found) == 1 and "signup (expected dates, got 'next tuesday')" in found[0]


def test_version_1_preprocessor_replays():
    df = frame().drop(columns=["signup"])
    pre = fit(df, missing_indicator_threshold=None)
    legacy = {k: pre[k] for k in ("version", "input_columns", "id_column", "label_column", "ignored_columns",
                                  "custom_transforms", "encode", "numeric", "categorical", "output_columns")}
    pd.testing.assert_frame_equal(pp.transform(df, legacy), pp.transform(df, pre))
