"""LocalStorage (keys, atomic writes, CAS) and LocalFileConnector (read/iter/write)."""

import math
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from airflow_mbt.errors import DataContractError, MBTInputError, RegistryConflictError
from airflow_mbt.plugins import registry as plugin_registry
from airflow_mbt.plugins.connectors.local_file import LocalFileConnector
from airflow_mbt.plugins.storage.local import LocalStorage
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt._fs import sha256_bytes


@pytest.fixture
def runtime(tmp_path):
    target = {"name": "dev", "storage": {"type": "local", "config": {"base_path": "./arts"}},
              "data_connector": {"type": "local_file", "config": {}}}
    return TargetRuntime(target=target, project_dir=tmp_path)


# ---- storage ----------------------------------------------------------------------------------
def test_plugins_resolve_through_entry_points_relative_to_project(runtime, tmp_path):
    assert plugin_registry.get("storage", "local") is LocalStorage
    assert plugin_registry.get("data_connectors", "local_file") is LocalFileConnector
    assert runtime.storage().base_path == tmp_path / "arts"
    assert runtime.connector().data_path == tmp_path / "sample_data"
    assert LocalStorage({}, runtime).base_path == tmp_path / "local_artifacts"


def test_put_get_list_exists_and_files(tmp_path):
    s = LocalStorage({"base_path": str(tmp_path / "b")})
    uri = s.put("run_1/load_data/raw_data.parquet", b"abc")
    assert uri == str(tmp_path / "b/run_1/load_data/raw_data.parquet") == s.uri("run_1/load_data/raw_data.parquet")
    assert s.get("run_1/load_data/raw_data.parquet") == b"abc"
    s.put("run_1/.artifact_registry.json", b"{}")
    s.write_conditional("run_1/x/y.json", b"1", None)  # leaves a lock file behind
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 << 20))
    s.put_file("run_1/train_model/model.tar", src)
    s.get_file("run_1/train_model/model.tar", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    s.put("run_10/a.json", b"1")
    assert s.list("run_1/") == ["run_1/.artifact_registry.json", "run_1/load_data/raw_data.parquet",
                                "run_1/train_model/model.tar", "run_1/x/y.json"]
    assert s.list("run_1") == s.list("run_1/") + ["run_10/a.json"]
    assert s.list("run_1/load") == ["run_1/load_data/raw_data.parquet"]
    assert s.list("nothing/") == []
    assert s.exists("run_1/x/y.json") and not s.exists("run_1/x/z.json")
    with pytest.raises(FileNotFoundError):
        s.get("run_1/missing")
    with pytest.raises(FileNotFoundError):
        s.get_file("run_1/missing", tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "a/../../b", "", "a/./b", "a\\b"])
def test_unsafe_keys_are_rejected(tmp_path, key):
    with pytest.raises(MBTInputError, match="invalid storage key"):
        LocalStorage({"base_path": str(tmp_path)}).put(key, b"x")


def test_conditional_write_versions(tmp_path):
    s = LocalStorage({"base_path": str(tmp_path)})
    assert s.read_versioned("r/reg.json") == (None, None)
    v1 = s.write_conditional("r/reg.json", b"one", None)
    assert v1 == sha256_bytes(b"one") and s.read_versioned("r/reg.json") == (b"one", v1)
    with pytest.raises(RegistryConflictError):
        s.write_conditional("r/reg.json", b"two", None)  # "only if absent"
    with pytest.raises(RegistryConflictError):
        s.write_conditional("r/reg.json", b"two", "stale")
    v2 = s.write_conditional("r/reg.json", b"two", v1)
    assert s.read_versioned("r/reg.json") == (b"two", v2)


def test_writes_are_atomic_for_concurrent_readers(tmp_path):
    """Readers racing a writer only ever see one complete version, never a mix or a partial file."""
    s = LocalStorage({"base_path": str(tmp_path)})
    versions = [bytes([i]) * (1 << 20) for i in range(1, 6)]
    s.put("k/blob", versions[0])
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(s.get("k/blob"))

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(10):
        for v in versions:
            s.put("k/blob", v)
    stop.set()
    t.join()
    assert seen and all(b in versions for b in seen)
    assert sorted(os.listdir(tmp_path / "k")) == ["blob"]  # no temp files left


def test_failed_put_file_leaves_old_content_and_no_temp(tmp_path):
    s = LocalStorage({"base_path": str(tmp_path)})
    s.put("k/a", b"old")
    with pytest.raises(FileNotFoundError):
        s.put_file("k/a", tmp_path / "does-not-exist")
    assert s.get("k/a") == b"old" and os.listdir(tmp_path / "k") == ["a"]


# ---- local_file connector ---------------------------------------------------------------------
CSV = "customer_id,tenure,monthly_charges,total_charges,contract_type,churned\n" \
      "CUST_00001,1,70.5,70.5,month-to-month,1\nCUST_00002,40,20.0,,two_year,0\n" \
      "CUST_00003,12,50.25,603.0,one_year,0\n"


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "sample_data"
    d.mkdir()
    (d / "customers.csv").write_text(CSV)
    return d


def test_read_csv_with_missing_values_and_schema_prefix(runtime, data_dir):
    conn = runtime.connector()
    df = conn.read_table("customers")
    assert list(df.columns) == ["customer_id", "tenure", "monthly_charges", "total_charges",
                                "contract_type", "churned"]
    assert len(df) == 3 and math.isnan(df.loc[1, "total_charges"]) and df["tenure"].dtype == "int64"
    pd.testing.assert_frame_equal(conn.read_table("public.customers"), df)
    pd.testing.assert_frame_equal(conn.read_table("customers.csv"), df)
    assert list(conn.read_table("customers", columns=["customer_id", "churned"]).columns) == \
        ["customer_id", "churned"]


def test_parquet_wins_over_csv(runtime, data_dir):
    df = pd.DataFrame({"customer_id": ["P1"], "tenure": [3]})
    df.to_parquet(data_dir / "customers.parquet")
    pd.testing.assert_frame_equal(runtime.connector().read_table("customers"), df)
    assert list(runtime.connector().iter_table("customers"))[0].equals(df)


def test_missing_table_names_the_paths_it_tried(runtime, data_dir):
    with pytest.raises(MBTInputError) as err:
        runtime.connector().read_table("customers_to_score")
    text = str(err.value)
    assert str(data_dir / "customers_to_score.parquet") in text and str(data_dir / "customers_to_score.csv") in text
    assert "hint" in text


def test_missing_columns_are_a_data_contract_error(runtime, data_dir):
    with pytest.raises(DataContractError, match=r"\['nope'\]"):
        runtime.connector().read_table("customers", columns=["customer_id", "nope"])


@pytest.mark.parametrize("bad", ["../secrets", "a/b", "", ".hidden"])
def test_bad_table_names(runtime, data_dir, bad):
    with pytest.raises(MBTInputError, match="table"):
        runtime.connector().read_table(bad)


def test_iter_table_chunks_csv(runtime, data_dir):
    chunks = list(runtime.connector().iter_table("customers", chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), runtime.connector().read_table("customers"))


def test_write_table_appends_and_replaces_where(runtime, data_dir):
    conn = runtime.connector()
    first = pd.DataFrame({"customer_id": ["A", "B"], "prediction": [1, 0],
                          "prediction_probability": [0.9, 0.125], "serving_run_id": ["run_1", "run_1"]})
    assert conn.write_table(first, "public.churn_predictions") == 2
    second = first.assign(serving_run_id="run_2", prediction_probability=[0.5, math.nan])
    conn.write_table(second, "churn_predictions", replace_where={"serving_run_id": "run_2"})
    retry = second.assign(prediction=[0, 0])
    conn.write_table(retry, "churn_predictions", replace_where={"serving_run_id": "run_2"})
    out = pd.read_csv(data_dir.parent / "output" / "churn_predictions.csv")  # written beside, not among, the inputs
    assert len(out) == 4
    assert out[out.serving_run_id == "run_1"].prediction_probability.tolist() == [0.9, 0.125]
    assert out[out.serving_run_id == "run_2"].prediction.tolist() == [0, 0]
    assert out.prediction_probability.isna().sum() == 1
    assert [p.name for p in data_dir.iterdir() if ".mbt-tmp-" in p.name] == []


def test_concurrent_writers_lose_no_rows(runtime, data_dir):
    conn = runtime.connector()

    def write(tag):
        for i in range(10):
            conn.write_table(pd.DataFrame({"id": [f"{tag}{i}"], "tag": [tag]}), "out")

    threads = [threading.Thread(target=write, args=(t,)) for t in "abc"]
    [t.start() for t in threads]
    [t.join() for t in threads]
    out_dir = Path(data_dir).parent / "output"
    assert len(pd.read_csv(out_dir / "out.csv")) == 30
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.csv"]  # no lock or temp file left behind


def test_tables_mapping_sends_a_table_to_its_own_file(tmp_path, data_dir):
    rt = TargetRuntime(target={"name": "dev", "data_connector": {"type": "local_file", "config": {
        "tables": {"churn_predictions": "./predictions.csv", "vip": "./extra/vip.csv"}}}}, project_dir=tmp_path)
    conn = rt.connector()
    frame = pd.DataFrame({"customer_id": ["A"], "prediction": [1], "serving_run_id": ["r1"]})
    conn.write_table(frame, "public.churn_predictions", replace_where={"serving_run_id": "r1"})
    conn.write_table(frame, "churn_predictions", replace_where={"serving_run_id": "r1"})
    assert pd.read_csv(tmp_path / "predictions.csv").to_dict("list") == frame.to_dict("list")
    assert not (data_dir / "churn_predictions.csv").exists()
    assert conn.read_table("churn_predictions")["customer_id"].tolist() == ["A"]
    assert len(conn.read_table("customers")) == 3  # unmapped tables still come from data_path
    with pytest.raises(MBTInputError, match=r"vip.*extra/vip.csv"):
        conn.read_table("vip")


@pytest.mark.parametrize("tables", [["predictions.csv"], {"t": "./t.txt"}])
def test_bad_tables_mapping_is_an_input_error(tmp_path, tables):
    rt = TargetRuntime(target={"name": "dev", "data_connector": {"type": "local_file",
                                                                 "config": {"tables": tables}}}, project_dir=tmp_path)
    with pytest.raises(MBTInputError, match="tables"):
        rt.connector()
