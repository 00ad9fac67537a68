"""Row filters: SQL expressions with bound run parameters, drop_duplicates, row-filter
functions, counted per field; validate checks the expressions."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.ml import row_filters
from airflow_mbt.runtime.context import RunContext

LOG = logging.getLogger("test")


def frame():
    return pd.DataFrame({"id": [1, 2, 2, 3, 4], "y": [1, None, None, 0, 1], "amount": [5, 50, 50, 500, 5000],
                         "day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03", "2024-01-04"])})


def test_sql_filters_keep_rows_where_every_expression_holds_and_count_each():
    config = {"training": {"filters": ["y IS NOT NULL", "amount < 1000"]}}
    out, counts = row_filters.apply_sql(frame(), "training", config)
    assert out["id"].tolist() == [1, 3]
    assert counts == {"training.filters[0]": 2, "training.filters[1]": 1}


def test_run_parameters_are_bound_not_pasted():
    run = RunContext(run_id="r", logical_date=dt.datetime(2024, 1, 3, tzinfo=dt.timezone.utc))
    config = {"serving": {"filters": ["CAST(day AS DATE) <= {{ ds }}"]}}
    out, counts = row_filters.apply_sql(frame(), "serving", config, run)
    assert out["id"].tolist() == [1, 2, 2, 3] and counts == {"serving.filters[0]": 1}


def test_a_filter_on_a_missing_column_is_a_data_error_naming_the_field():
    with pytest.raises(DataContractError) as err:
        row_filters.apply_sql(frame(), "training", {"training": {"filters": ["nope > 1"]}})
    assert err.value.field == "training.filters[0]"


def test_drop_duplicates_whole_rows_or_subset():
    out, counts = row_filters.drop_duplicates(frame(), True)
    assert len(out) == 4 and counts == {"training.drop_duplicates": 1}
    out, counts = row_filters.drop_duplicates(frame().assign(amount=range(5)), ["id"])
    assert out["amount"].tolist() == [0, 1, 3, 4]
    with pytest.raises(MBTInputError, match="amont"):
        row_filters.drop_duplicates(frame(), ["amont"])


def test_training_rows_runs_all_filters_and_row_filter_functions(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "clean.py").write_text("def no_outliers(df):\n    return df[df['amount'] < 1000]\n")
    config = {"training": {"filters": ["y IS NOT NULL"], "drop_duplicates": True,
                           "preprocessing": {"row_filters": ["lib.clean:no_outliers"]}}}
    out, removed = row_filters.training_rows(frame(), config, None, tmp_path, LOG)
    assert out["id"].tolist() == [1, 3]
    assert removed == {"training.filters[0]": 2, "training.drop_duplicates": 0,
                       "training.preprocessing.row_filters[0]": 1}
    with pytest.raises(DataContractError, match="every row"):
        row_filters.training_rows(frame(), {"training": {"filters": ["FALSE"]}}, None, tmp_path, LOG)
