"""ArtifactRegistry on LocalStorage: lookups, merge, and compare-and-swap under real concurrency."""

import json
import multiprocessing
import threading

import pytest

from airflow_mbt.errors import MBTError, MBTInputError, RegistryConflictError
from airflow_mbt.plugins.storage.local import LocalStorage
from airflow_mbt.runtime.artifact_registry import ArtifactNotFoundError, ArtifactRegistry


def _entry(name, step="s"):
    return {"uri": f"/x/{name}", "key": f"r/{step}/{name}.json", "kind": "json", "sha256": "0" * 64,
            "size": 1, "step": step}


def test_record_merges_and_lookup(tmp_path):
    storage = LocalStorage({"base_path": str(tmp_path)})
    reg = ArtifactRegistry(storage, "run_a")
    assert reg.load() == {}
    reg.record({"raw_data": _entry("raw_data", "load_data")})
    reg.record({"train_set": _entry("train_set"), "test_set": _entry("test_set")})
    fresh = ArtifactRegistry(storage, "run_a")
    assert sorted(fresh.load()) == ["raw_data", "test_set", "train_set"]
    assert fresh.lookup("raw_data")["step"] == "load_data"
    doc = json.loads((tmp_path / "run_a" / ".artifact_registry.json").read_text())
    assert doc["run_id"] == "run_a" and set(doc["artifacts"]) == {"raw_data", "train_set", "test_set"}
    # re-recording overwrites (idempotent retries)
    fresh.record({"raw_data": dict(_entry("raw_data", "load_data"), size=99)})
    assert ArtifactRegistry(storage, "run_a").lookup("raw_data")["size"] == 99


def test_missing_artifact_names_run_and_producer(tmp_path):
    reg = ArtifactRegistry(LocalStorage({"base_path": str(tmp_path)}), "run_b")
    with pytest.raises(ArtifactNotFoundError) as err:
        reg.lookup("model", producer="train_model")
    assert isinstance(err.value, MBTInputError)
    assert "artifact 'model' not found for run run_b; did step 'train_model' run?" in str(err.value)


def test_corrupt_registry_is_a_clear_error(tmp_path):
    (tmp_path / "run_c").mkdir()
    (tmp_path / "run_c" / ".artifact_registry.json").write_text("{not json")
    with pytest.raises(MBTError, match="artifact registry .*run_c/.artifact_registry.json is corrupt"):
        ArtifactRegistry(LocalStorage({"base_path": str(tmp_path)}), "run_c").load()


def test_gives_up_after_max_attempts(tmp_path):
    class AlwaysConflicting(LocalStorage):
        def write_conditional(self, key, data, expected_version):
            raise RegistryConflictError("lost")

    reg = ArtifactRegistry(AlwaysConflicting({"base_path": str(tmp_path)}), "run_d", max_attempts=3)
    with pytest.raises(RegistryConflictError, match="after 3 attempts"):
        reg.record({"x": _entry("x")})


def _writer(base, run_id, prefix, count, barrier=None):
    if barrier is not None:
        barrier.wait()
    reg = ArtifactRegistry(LocalStorage({"base_path": base}), run_id)
    for i in range(count):
        reg.record({f"{prefix}_{i}": _entry(f"{prefix}_{i}", prefix)})


@pytest.mark.parametrize("repetition", range(20))
def test_concurrent_threads_lose_no_update(tmp_path, repetition):
    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=_writer, args=(str(tmp_path), "run_t", p, 15, barrier))
               for p in ("load_model", "load_scoring_data", "other")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = ArtifactRegistry(LocalStorage({"base_path": str(tmp_path)}), "run_t").load()
    assert len(names) == 45


@pytest.mark.parametrize("repetition", range(20))
def test_concurrent_processes_lose_no_update(tmp_path, repetition):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), "run_p", p, 25, barrier))
             for p in ("load_model", "load_scoring_data")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    names = ArtifactRegistry(LocalStorage({"base_path": str(tmp_path)}), "run_p").load()
    assert sorted(names) == sorted([f"load_model_{i}" for i in range(25)] +
                                   [f"load_scoring_data_{i}" for i in range(25)])
