"""Artifact serialization: round trips by kind, determinism, type checks, sha256 verification."""

import math
import os
import tarfile

import numpy as np
import pandas as pd
import pytest

from airflow_mbt.plugins.storage.local import LocalStorage
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.artifacts import ArtifactError, artifact_key, deserialize, serialize
from airflow_mbt._fs import sha256_file


def _frame(n=50):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer_id": [f"CUST_{i:05d}" for i in range(n)],
        "tenure": np.arange(n, dtype="int64"),
        "small": np.arange(n, dtype="int32"),
        "nullable_int": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
        "charges": [math.nan if i % 5 == 0 else float(i) * 1.5 for i in range(n)],
        "contract": pd.Categorical(rng.choice(["month-to-month", "one_year", "two_year"], n)),
        "signup": pd.date_range("2024-01-01", periods=n, freq="D"),
        "signup_tz": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        "flag": [bool(i % 2) for i in range(n)],
    })


def test_table_round_trip_preserves_values_and_dtypes(tmp_path):
    df = _frame()
    serialize("raw_data", "table", df, tmp_path / "t.parquet")
    back = deserialize("raw_data", "table", tmp_path / "t.parquet", tmp_path / "unused")
    pd.testing.assert_frame_equal(back, df)
    assert back["charges"].isna().sum() == 10
    assert str(back["contract"].dtype) == "category" and str(back["nullable_int"].dtype) == "Int64"
    assert str(back["small"].dtype) == "int32"


def test_table_bytes_are_deterministic_and_not_pickle(tmp_path):
    serialize("t", "table", _frame(), tmp_path / "a.parquet")
    serialize("t", "table", _frame(), tmp_path / "b.parquet")
    assert sha256_file(tmp_path / "a.parquet") == sha256_file(tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes()[:4] == b"PAR1"


def test_table_keeps_a_non_default_index(tmp_path):
    df = _frame(5).set_index("customer_id")
    serialize("t", "table", df, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(deserialize("t", "table", tmp_path / "t.parquet", tmp_path), df)


def test_json_round_trip_is_canonical_and_accepts_numpy_scalars(tmp_path):
    value = {"b": 1, "a": {"z": [1, 2.5, None], "y": "é"}, "n": np.float64(0.25), "i": np.int64(3),
             "arr": np.array([1, 2])}
    serialize("metrics", "json", value, tmp_path / "m.json")
    raw = (tmp_path / "m.json").read_bytes()
    assert raw == '{"a":{"y":"é","z":[1,2.5,null]},"arr":[1,2],"b":1,"i":3,"n":0.25}'.encode()
    assert deserialize("metrics", "json", tmp_path / "m.json", tmp_path) == {
        "a": {"y": "é", "z": [1, 2.5, None]}, "arr": [1, 2], "b": 1, "i": 3, "n": 0.25}


def _make_dir(root, mtime):
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "MLmodel").write_text("flavor: x\n")
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "deeper" / "run.sh", 0o700)
    (root / "empty").mkdir()
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime))


def test_dir_tar_is_deterministic_and_round_trips(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _make_dir(a, 1_000_000)
    _make_dir(b, 2_000_000)  # other mtimes, same content
    serialize("model", "dir", a, tmp_path / "a.tar")
    serialize("model", "dir", b, tmp_path / "b.tar")
    assert sha256_file(tmp_path / "a.tar") == sha256_file(tmp_path / "b.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
    out = deserialize("model", "dir", tmp_path / "a.tar", tmp_path / "out")
    assert (out / "MLmodel").read_text() == "flavor: x\n"
    assert (out / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 10
    assert (out / "empty").is_dir()
    assert os.access(out / "sub" / "deeper" / "run.sh", os.X_OK)


@pytest.mark.parametrize("kind,value,match", [
    ("table", {"a": 1}, "must be a pandas DataFrame"),
    ("json", pd.DataFrame(), "must be a dict"),
    ("json", {"x": object()}, "not JSON serializable"),
    ("dir", "/nonexistent/dir", "existing directory"),
    ("table", pd.DataFrame({"mixed": [1, "a", 2.5]}), "cannot be written as Parquet"),
])
def test_wrong_values_raise_clear_errors(tmp_path, kind, value, match):
    with pytest.raises(ArtifactError, match=match) as err:
        serialize("thing", kind, value, tmp_path / "x")
    assert "'thing'" in str(err.value)


def test_store_fetch_and_tamper_detection(tmp_path):
    storage = LocalStorage({"base_path": str(tmp_path / "store")})
    entry = artifacts.store(storage, "run_1", "load_data", "raw_data", "table", _frame(), tmp_path)
    assert entry["key"] == artifact_key("run_1", "load_data", "raw_data", "table") == \
        "run_1/load_data/raw_data.parquet"
    assert entry["uri"] == str(tmp_path / "store" / "run_1/load_data/raw_data.parquet")
    assert entry["size"] == os.path.getsize(entry["uri"]) and entry["step"] == "load_data"
    pd.testing.assert_frame_equal(artifacts.fetch(storage, "raw_data", entry, tmp_path / "s1"), _frame())

    data = bytearray(open(entry["uri"], "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(entry["uri"], "wb").write(bytes(data))
    with pytest.raises(ArtifactError) as err:
        artifacts.fetch(storage, "raw_data", entry, tmp_path / "s2")
    text = str(err.value)
    assert "'raw_data'" in text and entry["uri"] in text and "sha256" in text and "load_data" in text

    os.remove(entry["uri"])
    with pytest.raises(ArtifactError, match="registered but missing"):
        artifacts.fetch(storage, "raw_data", entry, tmp_path / "s3")
