"""Releases on a local folder: what the release hash covers (comments no, ``lib/`` yes), history
with adoption of a pre-release layout, rollback targets, and the DAG-run pin of the operators."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow_manifests import build_manifest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.manifests import hash_hex
from airflow_mbt.manifests.releases import deploy_manifests, releases, rollback, undeploy
from airflow_mbt.operators.release_pin import PIN_KEY, pinned_release
from airflow_mbt.project.code import project_code


def _variant(manifest: Manifest, **changes) -> Manifest:
    data = json.loads(manifest.to_json())
    for dotted, value in changes.items():
        node = data
        *path, leaf = dotted.split("__")
        for part in path:
            node = node[part]
        node[leaf] = value
    return Manifest.build(data)


def test_release_hash_ignores_yaml_text_and_positions_not_what_runs():
    m = build_manifest("p")
    commented = _variant(m, pipeline__source_yaml="# a comment\n" + m.pipeline.source_yaml,
                         positions={"project.name": ["pipelines/p.yaml", 3, 9]})
    assert commented.content_hash != m.content_hash and commented.release_hash == m.release_hash
    assert _variant(m, schedule="@weekly").release_hash != m.release_hash
    assert _variant(m, code={"hash": "sha256:" + "1" * 64, "files": {}}).release_hash != m.release_hash
    assert _variant(m, mbt_version="0.2.0").release_hash != m.release_hash


def test_project_code_covers_lib_and_transform_modules(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "features.py").write_text("def f(df):\n    return df\n")
    (tmp_path / "lib" / "__pycache__").mkdir()
    (tmp_path / "lib" / "__pycache__" / "features.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "extra.py").write_text("def g(df):\n    return df\n")
    config = {"training": {"preprocessing": {"custom_transforms": ["extra:g", "lib.features:f"]}}}
    code = project_code(tmp_path, config)
    assert code is not None and sorted(code["files"]) == ["extra.py", "lib/features.py"]
    assert project_code(tmp_path, {})["files"].keys() == {"lib/features.py"}
    (tmp_path / "extra.py").write_text("def g(df):\n    return df.copy()\n")
    assert project_code(tmp_path, config)["hash"] != code["hash"]
    assert project_code(tmp_path / "nothing", {}) is None


def test_history_adopts_a_pre_release_layout_and_rolls_back(tmp_path):
    dest = tmp_path / "store"
    v1, v2 = build_manifest("serving_x", "serving"), build_manifest("serving_x", "serving", schedule="@hourly")
    v1.write(dest / "serving_x" / "manifest.json")  # published by an mbt without releases
    v1.write(dest / "serving_x" / f"{hash_hex(v1.content_hash)}.json")
    assert [e["action"] for e in releases(str(dest), "serving_x")["events"]] == ["adopt"]
    [change] = deploy_manifests([v2], str(dest), by="ci")
    assert change["action"] == "update" and change["previous_hash"] == v1.content_hash
    info = releases(str(dest), "serving_x")
    assert [(e["n"], e["action"], e["content_hash"]) for e in info["events"]] == [
        (1, "adopt", v1.content_hash), (2, "deploy", v2.content_hash)]
    assert info["current"] == v2.content_hash and info["events"][1]["by"] == "ci"
    dry = rollback(str(dest), "serving_x", dry_run=True)
    assert dry["hash"] == v1.content_hash and '~ schedule: "@hourly" -> "@daily"' in dry["diff"]
    assert releases(str(dest), "serving_x")["current"] == v2.content_hash
    assert rollback(str(dest), "serving_x")["hash"] == v1.content_hash
    assert Manifest.read(dest / "serving_x" / "manifest.json").content_hash == v1.content_hash
    assert rollback(str(dest), "serving_x", to=hash_hex(v2.content_hash)[:8])["hash"] == v2.content_hash
    with pytest.raises(MBTInputError, match="matches no releases") as err:
        rollback(str(dest), "serving_x", to="ffffffff")
    assert err.value.field == "--to"
    assert undeploy(str(dest), "serving_x")["action"] == "undeploy"
    assert releases(str(dest), "serving_x")["current"] is None
    with pytest.raises(MBTInputError, match="never deployed"):
        rollback(str(dest), "other")


def test_deploy_after_a_lost_race_on_current_is_a_conflict(tmp_path, monkeypatch):
    from airflow_mbt.errors import RegistryConflictError
    from airflow_mbt.manifests import backends

    dest = tmp_path / "store"
    deploy_manifests([build_manifest("p")], str(dest))

    def lost(self, key, data, version):
        raise RegistryConflictError("changed meanwhile")

    monkeypatch.setattr(backends.ManifestLocation, "put_if_match", lost)
    [change] = deploy_manifests([build_manifest("p", schedule="@weekly")], str(dest))
    assert change["action"] == "conflict" and "mbt deploy" in change["message"]


class _TI:
    """The two XCom calls of the task SDK's RuntimeTaskInstance, on a dict."""

    def __init__(self, store: dict, task_id: str):
        self.store, self.task_id = store, task_id

    def xcom_pull(self, task_ids, key):
        return [self.store.get((t, key)) for t in task_ids]

    def xcom_push(self, key, value):
        self.store[(self.task_id, key)] = value


def _task(task_id: str, dag):
    return SimpleNamespace(task_id=task_id, dag=dag)


def test_release_pin_roots_pin_others_follow():
    dag = SimpleNamespace(roots=[SimpleNamespace(task_id="load_scoring_data"), SimpleNamespace(task_id="load_model")])
    xcom: dict = {}
    old, new = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert pinned_release({"ti": _TI(xcom, "load_model")}, _task("load_model", dag), old) == old
    assert xcom[("load_model", PIN_KEY)] == old
    # a deploy happened: tasks parsed afterwards carry the new hash, but execute the pinned one
    assert pinned_release({"ti": _TI(xcom, "load_scoring_data")}, _task("load_scoring_data", dag), new) == old
    assert xcom[("load_scoring_data", PIN_KEY)] == old
    assert pinned_release({"ti": _TI(xcom, "predict")}, _task("predict", dag), new) == old
    assert pinned_release({}, _task("predict", dag), new) == new  # outside Airflow: the given hash
