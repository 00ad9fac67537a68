"""Streamed tables (kind ``table_stream``) and chunked serving: chunk by chunk gives exactly the
whole-frame result, the sha256 recorded while streaming is the file's and is verified on read."""

import hashlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, train_once

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.ml import preprocessing, scoring
from airflow_mbt.plugins.storage.local import LocalStorage
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.artifacts import ArtifactError
from airflow_mbt.runtime.table_stream import (StreamedTable, StreamError, TableWriter, default_chunk_rows,
                                              frames)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("streams"))
    _manifest, _run_id, mlflow_run = train_once(root)
    return root, mlflow_run


def _serve(root, mlflow_run, monkeypatch, chunk_rows, out_name, **output):
    monkeypatch.setenv("MBT_CHUNK_ROWS", str(chunk_rows))
    manifest = make_manifest(serving_config(mlflow_run["run_id"], serving={"output": {"path": out_name, **output}}))
    return manifest, run_steps(manifest, root)


def _whole_frame_predictions(root, manifest, run_id, tmp_path):
    """The predictions of the former whole-frame path: every step on the full DataFrame."""
    raw = pd.read_csv(root / "sample_data" / "customers_to_score.csv")
    pre = fetch(root, manifest, run_id, "preprocessor")
    features = preprocessing.transform(raw, pre)
    features.insert(0, "customer_id", raw["customer_id"].to_numpy())
    framework, model, meta = scoring.load(fetch(root, manifest, run_id, "model", tmp_path / "model"))
    scored = scoring.score(framework, model, meta, features)
    return scoring.predictions_table(features["customer_id"], scored, meta)


def test_chunks_of_7_rows_give_exactly_the_whole_frame_predictions(trained, monkeypatch, tmp_path):
    root, mlflow_run = trained
    manifest, chunked = _serve(root, mlflow_run, monkeypatch, 7, "chunked.csv")
    _, whole = _serve(root, mlflow_run, monkeypatch, 1_000_000, "whole.csv")
    stream = fetch(root, manifest, chunked, "predictions")
    assert isinstance(stream, StreamedTable) and stream.num_rows == 200
    assert pq.ParquetFile(stream.path).metadata.num_row_groups == 29  # 28 chunks of 7 rows + 4 rows
    expected = _whole_frame_predictions(root, manifest, chunked, tmp_path)
    pd.testing.assert_frame_equal(stream.to_pandas(), expected, check_exact=True)
    pd.testing.assert_frame_equal(fetch(root, manifest, whole, "predictions").to_pandas(), expected,
                                  check_exact=True)
    pd.testing.assert_frame_equal(fetch(root, manifest, chunked, "features").to_pandas(),
                                  fetch(root, manifest, whole, "features").to_pandas(), check_exact=True)
    per_run = ["execution_date", "serving_run_id"]  # the stamp of each run differs; the rows must not
    pd.testing.assert_frame_equal(pd.read_csv(root / "chunked.csv", dtype=str).drop(columns=per_run),
                                  pd.read_csv(root / "whole.csv", dtype=str).drop(columns=per_run))
    published = pd.read_csv(root / "chunked.csv")
    assert published["customer_id"].tolist() == expected["customer_id"].tolist()
    assert fetch(root, manifest, chunked, "publish_result")["rows"] == 200


def test_chunked_database_publish_without_write_chunks_concatenates(trained, monkeypatch):
    # local_file has no write_chunks: publish concatenates the chunks into one write_table
    root, mlflow_run = trained
    manifest, run_id = _serve(root, mlflow_run, monkeypatch, 7, "unused.csv", destination="database",
                              table="streamed_predictions")
    table = pd.read_csv(root / "output" / "streamed_predictions.csv")
    assert len(table) == 200 and set(table["serving_run_id"]) == {run_id}
    assert table["execution_date"].nunique() == 1  # one timestamp for every chunk of the run
    run_steps(manifest, root, ["publish"], run_id=run_id)  # a retry replaces its own rows
    assert len(pd.read_csv(root / "output" / "streamed_predictions.csv")) == 200


def test_contract_problems_are_found_with_chunks(trained, monkeypatch):
    root, mlflow_run = trained
    bad = pd.read_csv(root / "sample_data" / "customers_to_score.csv")
    bad["tenure"] = bad["tenure"].astype(object)
    bad.loc[150, "tenure"] = "twelve"  # text in a numeric column, in a late chunk only
    bad.to_csv(root / "sample_data" / "late_bad.csv", index=False)
    monkeypatch.setenv("MBT_CHUNK_ROWS", "7")
    cfg = serving_config(mlflow_run["run_id"], serving={"data_source": {"scoring_table": "late_bad"}})
    with pytest.raises(DataContractError) as err:
        run_steps(make_manifest(cfg), root, ["load_model", "load_scoring_data", "apply_transforms"])
    assert "wrong types: tenure (expected integer, got text such as 'twelve')" in str(err.value)


def test_stream_sha256_is_computed_while_writing_and_verified_on_read(tmp_path):
    storage = LocalStorage({"base_path": str(tmp_path / "store")}, None)
    writer = TableWriter(tmp_path / "w" / "predictions.parquet", "predictions")
    with writer:
        for i in range(3):
            writer.write(pd.DataFrame({"customer_id": [f"C{i}{j}" for j in range(5)], "p": [0.5 * j for j in range(5)]}))
    assert writer.sha256 == hashlib.sha256(writer.path.read_bytes()).hexdigest()
    assert writer.size == writer.path.stat().st_size and writer.num_rows == 15
    entry = artifacts.store(storage, "run_1", "predict", "predictions", "table_stream", writer, tmp_path / "s")
    assert entry["key"] == "run_1/predict/predictions.parquet" and entry["sha256"] == writer.sha256
    assert not writer.path.exists()  # uploaded, then removed from the work dir
    back = artifacts.fetch(storage, "predictions", entry, tmp_path / "f")
    assert back.num_rows == 15 and [len(f) for f in back.iter_frames(4)] == [4, 4, 4, 3]
    stored = tmp_path / "store" / entry["key"]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a row group
    stored.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="failed verification"):
        artifacts.fetch(storage, "predictions", entry, tmp_path / "g")


def test_a_generator_of_frames_is_drained_into_one_parquet_file(tmp_path):
    storage = LocalStorage({"base_path": str(tmp_path / "store")}, None)
    gen = (pd.DataFrame({"a": range(i * 3, i * 3 + 3)}) for i in range(4))
    entry = artifacts.store(storage, "run_1", "s", "t", "table_stream", gen, tmp_path / "s")
    stored = tmp_path / "store" / entry["key"]
    assert entry["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert artifacts.fetch(storage, "t", entry, tmp_path / "f").to_pandas()["a"].tolist() == list(range(12))
    # a plain 'table' output may be written as a stream too and is read back whole
    entry = artifacts.store(storage, "run_1", "s", "u", "table", iter([pd.DataFrame({"a": [1]})]), tmp_path / "s")
    pd.testing.assert_frame_equal(artifacts.fetch(storage, "u", entry, tmp_path / "g"), pd.DataFrame({"a": [1]}))


def test_chunks_keep_the_whole_table_dtypes(tmp_path):
    # an integer column with a null in one row group only reads as float64 in every chunk
    table = pa.table({"n": pa.array([1, 2, 3, None, 5, 6], pa.int64()), "b": [True, False, None, True, True, False],
                      "s": ["x", None, "y", "z", "x", "y"]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=3)
    stream = StreamedTable(tmp_path / "t.parquet")
    whole = stream.to_pandas()
    chunks = list(stream.iter_frames(2))
    assert [c["n"].dtype for c in chunks] == ["float64"] * 3 and all(c["b"].dtype == object for c in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_exact=True)
    assert whole.equals(pd.read_parquet(tmp_path / "t.parquet"))


def test_writer_rejects_chunks_that_do_not_fit_the_first(tmp_path):
    writer = TableWriter(tmp_path / "t.parquet", "features")
    writer.write(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    with pytest.raises(StreamError, match="differ from the first chunk"):
        writer.write(pd.DataFrame({"b": ["x"], "a": [1.0]}))
    with pytest.raises(StreamError, match="cannot be written"):
        writer.write(pd.DataFrame({"a": ["not a number"], "b": ["x"]}))
    writer.abort()
    assert not (tmp_path / "t.parquet").exists()


def test_empty_stream_and_dataframe_frames(tmp_path):
    empty = TableWriter(tmp_path / "e.parquet").table()
    assert empty.num_rows == 0 and [len(f) for f in empty.iter_frames(5)] == [0]
    df = pd.DataFrame({"a": range(10)}, index=range(100, 110))
    parts = list(frames(df, 4))
    assert [len(p) for p in parts] == [4, 4, 2] and parts[1].index.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_bad_chunk_rows_setting_is_an_input_error(monkeypatch, value):
    monkeypatch.setenv("MBT_CHUNK_ROWS", value)
    with pytest.raises(MBTInputError) as err:
        default_chunk_rows()
    assert err.value.field == "MBT_CHUNK_ROWS"


def test_chunk_rows_default_and_setting(monkeypatch):
    monkeypatch.delenv("MBT_CHUNK_ROWS", raising=False)
    assert default_chunk_rows() == 250_000
    monkeypatch.setenv("MBT_CHUNK_ROWS", "100_000")
    assert default_chunk_rows() == 100_000


def test_a_manifest_compiled_before_table_stream_still_serves(trained, monkeypatch, tmp_path):
    # its serving outputs are kind 'table': the steps get DataFrames and still work chunk by chunk
    root, mlflow_run = trained
    monkeypatch.setenv("MBT_CHUNK_ROWS", "50")
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {"path": "old_manifest.csv"}})
    body = dict(make_manifest(cfg).data)
    body["steps"] = [{**s, "outputs": [{**o, "kind": "table" if o["kind"] == "table_stream" else o["kind"]}
                                       for o in s["outputs"]]} for s in body["steps"]]
    body.pop("content_hash")
    manifest = Manifest.build(body)
    run_id = run_steps(manifest, root)
    predictions = fetch(root, manifest, run_id, "predictions")
    assert isinstance(predictions, pd.DataFrame)
    pd.testing.assert_frame_equal(predictions, _whole_frame_predictions(root, manifest, run_id, tmp_path),
                                  check_exact=True)
    assert len(pd.read_csv(root / "old_manifest.csv")) == 200
