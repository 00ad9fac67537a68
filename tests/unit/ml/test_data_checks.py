"""Data no imputation can fix: infinite values (error or drop in training, always an error in
serving) and a single-class label, each an input error naming the column and the row count; and
a custom transform that calls sys.exit(0) fails its step instead of faking success."""

from __future__ import annotations

import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, train_once, \
    training_config

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.runtime.context import RunContext
from airflow_mbt.runtime.invocation import invoke


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def _poison(project, table, column, rows, value=float("inf")):
    path = project / "sample_data" / f"{table}.csv"
    df = pd.read_csv(path)
    df[column] = df[column].astype("float64")
    df.loc[list(rows), column] = value
    df.to_csv(path, index=False)
    return len(df)


def test_infinite_training_values_are_an_input_error_naming_column_and_rows(project):
    _poison(project, "customers", "monthly_charges", [1, 5, 9])
    with pytest.raises(DataContractError) as err:
        run_steps(make_manifest(training_config()), project, ["load_data", "split_data"])
    text = str(err.value)
    assert "infinite values in 'monthly_charges' (3 rows)" in text and err.value.field == \
        "training.preprocessing.non_finite" and "non_finite: drop" in err.value.hint


def test_non_finite_drop_drops_exactly_those_rows(project):
    total = _poison(project, "customers", "tenure", [0, 2], value=float("-inf"))
    cfg = training_config(training={"preprocessing": {"non_finite": "drop"}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, project, ["load_data", "split_data"])
    train, test = fetch(project, manifest, run_id, "train_set"), fetch(project, manifest, run_id, "test_set")
    assert len(train) + len(test) == total - 2
    assert not (train["tenure"].abs() == float("inf")).any()


def test_single_class_label_is_an_input_error_on_the_label(project):
    path = project / "sample_data" / "customers.csv"
    df = pd.read_csv(path)
    df["churned"] = 0
    df.to_csv(path, index=False)
    with pytest.raises(DataContractError) as err:
        run_steps(make_manifest(training_config()), project, ["load_data", "split_data"])
    assert err.value.field == "training.schema.target.label_column"
    assert "has 0 in every row" in str(err.value) and err.value.hint


def test_infinite_scoring_values_are_an_input_error(project):
    _, _, mlflow_run = train_once(project)
    _poison(project, "customers_to_score", "total_charges", [3])
    serving = make_manifest(serving_config(mlflow_run["run_id"]))
    with pytest.raises(DataContractError, match=r"infinite values in 'total_charges' \(1 row\)"):
        run_steps(serving, project, ["load_model", "load_scoring_data", "apply_transforms"])


def test_custom_transform_calling_sys_exit_fails_the_step(project):
    (project / "lib").mkdir()  # a namespace package, as in the other transform tests
    (project / "lib" / "quit.py").write_text("import sys\n\ndef run(df):\n    sys.exit(0)\n")
    cfg = training_config(training={"preprocessing": {"custom_transforms": ["lib.quit:run"]}})
    manifest = make_manifest(cfg)
    run = RunContext(run_id="run_20260101_000000_5e11")
    invoke(manifest, "load_data", run, project_dir=project)
    with pytest.raises(MBTInputError) as err:
        invoke(manifest, "split_data", run, project_dir=project)
    assert "sys.exit(0)" in str(err.value) and err.value.step == "split_data"
