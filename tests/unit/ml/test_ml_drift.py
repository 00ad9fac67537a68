"""Drift maths (ml/drift.py): bins, category buckets, PSI, the chunked accumulator."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mbt.ml import drift

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
share_vectors = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.tuples(*[st.lists(st.floats(min_value=0, max_value=1), min_size=n, max_size=n)] * 2))


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300), st.lists(floats, min_size=0, max_size=300))
def test_bins_cover_every_value(train, served):
    edges = drift.numeric_edges(np.array(train))
    assert edges == sorted(set(edges)) and len(edges) <= drift.BINS - 1
    counts = drift.numeric_counts(np.array(served, dtype="float64"), edges)
    assert len(counts) == len(edges) + 2
    assert counts.sum() == len(served)  # NaN, +-inf and values outside the training range all land in a bin
    assert counts[-1] == sum(1 for v in served if math.isnan(v))


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300))
def test_psi_of_the_training_data_against_itself_is_zero(train):
    values = np.array(train)
    spec = drift.numeric_spec(values)
    assert drift.accumulate({"x": spec}, [pd.DataFrame({"x": values})])[0].psi == pytest.approx(0, abs=1e-8)


@settings(max_examples=150, deadline=None)
@given(share_vectors)
def test_psi_is_non_negative_and_zero_only_for_equal_shares(pair):
    e, a = (np.array(v) for v in pair)
    assert drift.psi(e, a) >= 0
    assert drift.psi(e, e) == 0
    assert 0 <= drift.share_shift(e / max(e.sum(), 1e-12), e / max(e.sum(), 1e-12)) < 1e-12


def test_psi_formula_on_known_shares():
    e, a = [0.5, 0.5], [0.9, 0.1]
    assert drift.psi(e, a) == pytest.approx((0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5))
    assert drift.share_shift(e, a) == pytest.approx(0.4)
    assert drift.psi([1.0, 0.0], [0.0, 1.0]) == pytest.approx(2 * (1 - 1e-4) * math.log(1 / 1e-4))


def test_bins_are_right_closed_with_open_ends():
    edges = [1.0, 2.0]
    counts = drift.numeric_counts(np.array([-np.inf, 1.0, 1.5, 2.0, 2.5, np.inf, np.nan]), edges)
    assert counts.tolist() == [2, 2, 2, 1]


def test_shifted_numeric_batch_has_a_large_psi_and_chunks_equal_the_whole():
    rng = np.random.default_rng(0)
    spec = drift.numeric_spec(rng.normal(0, 1, 20_000))
    same = rng.normal(0, 1, 10_000)
    shifted = rng.normal(1.5, 1, 10_000)
    assert drift.accumulate({"x": spec}, [pd.DataFrame({"x": same})])[0].psi < 0.02
    whole = drift.accumulate({"x": spec}, [pd.DataFrame({"x": shifted})])[0]
    chunked = drift.accumulate({"x": spec}, [pd.DataFrame({"x": c}) for c in np.array_split(shifted, 7)])[0]
    assert whole.psi > 0.25 and whole == chunked


def test_categories_keep_the_top_levels_and_bucket_the_rest():
    train = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 10)
    spec = drift.categorical_spec(drift.as_text(train), max_levels=2)
    assert spec["levels"] == ["a", "b"]
    assert spec["shares"] == pytest.approx([50 / 110, 30 / 110, 20 / 110, 10 / 110])
    served = pd.Series(["a", "zzz", None, "b", "c", 7])  # unseen values and other types go to "other"
    counts = drift.category_counts(drift.as_text(served), spec["levels"])
    assert counts.tolist() == [1, 1, 3, 1]
    result = drift.accumulate({"k": spec}, [pd.DataFrame({"k": served})])[0]
    assert result.kind == drift.CATEGORICAL and result.missing_share == pytest.approx(1 / 6)
    assert result.share_shift == pytest.approx(0.5 * sum(abs(x - y) for x, y in
                                                         zip(spec["shares"], [1 / 6, 1 / 6, 3 / 6, 1 / 6])))


def test_reference_of_features_and_predictions():
    train = pd.DataFrame({"id": ["a", "b", "c", "d"], "n": [1, 2, 3, None], "flag": [True, False, True, True],
                          "k": ["x", "y", "x", "x"], "when": pd.to_datetime(["2024-01-01"] * 4), "y": [0, 1, 0, 1]})
    pre = {"input_columns": {"n": "float", "flag": "boolean", "k": "string", "when": "datetime"}}
    ref = drift.reference_features(train, pre)
    assert set(ref) == {"n", "flag", "k"}  # no id, label or datetime
    assert ref["n"]["kind"] == drift.NUMERIC and ref["n"]["shares"][-1] == pytest.approx(0.25)
    assert ref["k"] == {"kind": drift.CATEGORICAL, "levels": ["x", "y"], "shares": [0.75, 0.25, 0.0, 0.0]}
    preds = pd.DataFrame({"prediction": [0, 1, 1, 1], "prediction_probability": [0.1, 0.6, 0.7, 0.9]})
    pref = drift.reference_predictions(preds, classes=[0, 1])
    assert pref["prediction"]["levels"] == ["0", "1"] and pref["prediction"]["shares"][:2] == [0.25, 0.75]
    assert pref["prediction_probability"]["kind"] == drift.NUMERIC
    assert drift.reference_predictions(pd.DataFrame({"prediction": [1.5, 2.5]}))["prediction"]["kind"] == "numeric"


def test_a_column_absent_from_every_chunk_has_no_result():
    acc = drift.Accumulator({"x": drift.numeric_spec(np.arange(10.0))})
    acc.add(pd.DataFrame({"y": [1.0]}))
    assert acc.results() == []


def test_streamed_table_reads_only_the_asked_columns(tmp_path):
    from airflow_mbt.runtime.table_stream import TableWriter

    writer = TableWriter(tmp_path / "t.parquet", "t")
    with writer:
        writer.write(pd.DataFrame({"id": ["a", "b", "c"], "n": pd.array([1, None, 3], dtype="Int64"), "k": list("xyz")}))
    table = writer.table()
    chunks = list(table.iter_frames(2, ["k", "n", "absent"]))
    assert [list(c.columns) for c in chunks] == [["n", "k"], ["n", "k"]]  # file order; unknown names ignored
    whole = pd.concat(list(table.iter_frames(2)), ignore_index=True)
    assert pd.concat(chunks, ignore_index=True).equals(whole[["n", "k"]])
