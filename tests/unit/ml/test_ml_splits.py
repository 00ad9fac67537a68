"""``split.method: time`` (cutoff or fraction; no training row later than a test row) and
``split.cv.folds`` (k-fold metrics on the training set)."""

import numpy as np
import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, training_config

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.steps.split_data import time_split

UP_TO_EVALUATE = ["load_data", "split_data", "train_model", "evaluate"]


def frame(n=50):
    rng = np.random.default_rng(1)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    return pd.DataFrame({"k": range(n), "when": days.strftime("%Y-%m-%d")})


def test_time_split_by_fraction_puts_no_later_row_in_training():
    df = frame()
    train, test = time_split(df, {"time_column": "when"}, 0.2)
    assert len(train) + len(test) == 50 and len(test) >= 10
    assert pd.to_datetime(train["when"]).max() < pd.to_datetime(test["when"]).min()
    assert sorted(train["k"].tolist() + test["k"].tolist()) == list(range(50))


def test_time_split_by_cutoff():
    df = frame()
    train, test = time_split(df, {"time_column": "when", "cutoff": "2024-05-01"}, 0.2)
    assert (pd.to_datetime(train["when"]) < "2024-05-01").all() and (pd.to_datetime(test["when"]) >= "2024-05-01").all()
    with pytest.raises(DataContractError) as err:
        time_split(df, {"time_column": "when", "cutoff": "2030-01-01"}, 0.2)
    assert err.value.field == "training.split.cutoff" and "0 test rows" in str(err.value)
    with pytest.raises(MBTInputError) as err:
        time_split(df, {}, 0.2)
    assert err.value.field == "training.split.method"


def test_time_split_rejects_rows_without_a_time():
    df = frame()
    df.loc[3, "when"] = None
    with pytest.raises(DataContractError, match="1 of 50 rows have no parsable time"):
        time_split(df, {"time_column": "when"}, 0.2)


def with_signup(root):
    path = root / "sample_data" / "customers.csv"
    df = pd.read_csv(path)
    df["signup_date"] = (pd.Timestamp("2022-01-01") + pd.to_timedelta(np.arange(len(df)) % 700, unit="D")
                         ).strftime("%Y-%m-%d")
    df.to_csv(path, index=False)
    return root


def test_time_split_step_and_time_ordered_cv(tmp_path):
    root = with_signup(make_project(tmp_path))
    cfg = training_config(training={"split": {"method": "time", "time_column": "signup_date", "cv": {"folds": 3}}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, root, UP_TO_EVALUATE)
    train, test = fetch(root, manifest, run_id, "train_set"), fetch(root, manifest, run_id, "test_set")
    assert pd.to_datetime(train["signup_date"]).max() < pd.to_datetime(test["signup_date"]).min()
    pre = fetch(root, manifest, run_id, "preprocessor")
    assert {p["column"]: p["role"] for p in pre["columns"]}["signup_date"] == "time"
    doc = fetch(root, manifest, run_id, "metrics")
    assert doc["cv"]["folds"] == 3 and doc["cv"]["splitter"] == "TimeSeriesSplit"
    auc = doc["cv"]["metrics"]["roc_auc"]
    assert len(auc["values"]) == 3 and auc["mean"] == pytest.approx(np.mean(auc["values"]))


def test_random_split_cv_is_stratified_and_the_run_params_are_complete(tmp_path):
    import mlflow

    root = make_project(tmp_path)
    manifest = make_manifest(training_config(training={"split": {"cv": {"folds": 4}}}))
    run_id = run_steps(manifest, root)
    cv = fetch(root, manifest, run_id, "metrics")["cv"]
    assert cv["splitter"] == "StratifiedKFold" and len(cv["metrics"]["accuracy"]["values"]) == 4
    assert 0.5 < cv["metrics"]["roc_auc"]["mean"] <= 1.0
    out = fetch(root, manifest, run_id, "mlflow_run")
    run = mlflow.MlflowClient(out["tracking_uri"]).get_run(out["run_id"])
    params, train = run.data.params, fetch(root, manifest, run_id, "train_set")
    assert params["split.seed"] == "42" and params["split.test_size"] == "0.25" and params["split.cv.folds"] == "4"
    assert params["split.method"] == "random" and params["split.stratify"] == "true"
    assert params["rows.train"] == str(len(train)) and params["rows.test"] == "200"
    assert float(params["class_balance.train.1"]) == pytest.approx(train["churned"].mean(), abs=1e-6)
    assert params["preprocessing.scale"] == "standard" and params["preprocessing.max_levels"] == "50"
    assert params["column.tenure"] == "feature/numeric/impute median, scale standard"
    assert params["column.customer_id"].startswith("id/")
    assert run.data.metrics["cv_roc_auc_mean"] == pytest.approx(cv["metrics"]["roc_auc"]["mean"])
    assert run.data.tags["mbt_status"] == "passed"


def test_time_split_params_carry_no_seed_or_stratification():
    """A time split is ordered, not sampled: its MLflow params name the time column and the
    cutoff rule, and no ``split.seed`` / ``split.stratify`` (the compile default) that did not apply."""
    from airflow_mbt.tracking.run_logger import run_params

    config = {"training": {"split": {"method": "time", "time_column": "signup_date", "test_size": 0.25,
                                     "stratify": True, "seed": 42}}}
    meta = {"framework": "sklearn", "problem_type": "binary_classification"}
    params = run_params(config, meta, {}, {})
    assert params["split.method"] == "time" and params["split.time_column"] == "signup_date"
    assert params["split.test_size"] == "0.25"
    assert "split.stratify" not in params and "split.seed" not in params
    random = run_params({"training": {"split": {}}}, meta, {}, {})
    assert random["split.stratify"] == "true" and random["split.seed"] == "42"
