"""The feature contract reports every problem of a scoring frame in one DataContractError."""

import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError
from airflow_mbt.ml import contract
from airflow_mbt.ml import preprocessing as pp


@pytest.fixture
def pre():
    train = pd.DataFrame({"customer_id": ["a", "b", "c"], "tenure": [1, 2, 3], "charges": [1.5, 2.5, None],
                          "contract": ["m2m", "one", "two"], "note": ["x", "y", "z"], "churned": [0, 1, 0]})
    return pp.fit(train, label_column="churned", id_column="customer_id", ignored_columns=["note"])


def good_frame():
    return pd.DataFrame({"customer_id": ["n1", "n2"], "tenure": [4, 5], "charges": [3.0, 4.0],
                         "contract": ["one", "m2m"]})


def test_conforming_frame_passes_with_id_label_and_ignored_columns(pre):
    df = good_frame().assign(churned=[0, 1], note=["p", "q"])
    contract.check(df, pre)
    assert contract.problems(df, pre) == []


def test_all_problems_in_one_error(pre):
    df = good_frame().drop(columns=["charges"]).assign(tenure=["four", "5"], surprise=[1, 2])
    with pytest.raises(DataContractError) as err:
        contract.check(df, pre, source="table 'customers_to_score'")
    text = str(err.value)
    assert "customers_to_score" in text
    assert "missing columns: charges" in text
    assert "unexpected columns: surprise" in text
    assert "tenure (expected integer, got text such as 'four')" in text
    assert "ignored_columns" in err.value.hint


def test_missing_id_column_is_reported_unless_not_required(pre):
    df = good_frame().drop(columns=["customer_id"])
    assert contract.problems(df, pre) == ["missing columns: customer_id"]
    assert contract.problems(df, pre, require_id=False) == []


def test_numbers_as_text_are_accepted_numbers_in_a_category_are_not(pre):
    df = good_frame().assign(tenure=["4", "5"])
    assert contract.problems(df, pre) == []
    df = good_frame().assign(contract=[1, 2])
    assert contract.problems(df, pre) == ["wrong types: contract (expected text categories, got numbers integer)"]


def test_all_null_column_is_not_a_type_error(pre):
    df = good_frame().assign(contract=[None, None])
    assert contract.problems(df, pre) == []
