"""airflow_mbt.manifests.store on a local folder: publish (create/unchanged/update, dry
run with diff) and fetch pinned by hash (with the local cache)."""

from __future__ import annotations

import json

import pytest
from airflow_manifests import build_manifest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifests import fetch_manifest, hash_hex, publish_manifests


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE_DIR", str(tmp_path / "cache"))


def test_publish_creates_pinned_and_current_then_unchanged(tmp_path):
    dest = tmp_path / "store"
    m = build_manifest("training_churn", "training")
    [change] = publish_manifests([m], str(dest))
    assert change["action"] == "create" and change["hash"] == m.content_hash
    assert change["uri"] == str(dest / "training_churn" / "manifest.json")
    pinned = dest / "training_churn" / f"{hash_hex(m.content_hash)}.json"
    assert change["pinned_uri"] == str(pinned)
    assert pinned.read_text() == m.to_json() == (dest / "training_churn" / "manifest.json").read_text()
    assert publish_manifests([m], str(dest))[0]["action"] == "unchanged"


def test_changed_content_is_a_new_release_never_refused(tmp_path):
    dest = tmp_path / "store"
    v1 = build_manifest("serving_churn", "serving")
    v2 = build_manifest("serving_churn", "serving", schedule="@hourly")
    publish_manifests([v1], str(dest))
    [dry] = publish_manifests([v2], str(dest), dry_run=True)
    assert dry["action"] == "update" and dry["previous_hash"] == v1.content_hash
    assert '~ schedule: "@daily" -> "@hourly"' in dry["diff"]
    assert not (dest / "serving_churn" / f"{hash_hex(v2.content_hash)}.json").exists()
    [update] = publish_manifests([v2], str(dest))
    assert update["action"] == "update"
    assert json.loads((dest / "serving_churn" / "manifest.json").read_text())["schedule"] == "@hourly"
    # the old pinned copy stays, so running tasks of the old version still find it
    assert fetch_manifest(str(dest / "serving_churn" / "manifest.json"),
                          expected_hash=v1.content_hash).schedule == "@daily"


def test_dry_run_writes_nothing(tmp_path):
    dest = tmp_path / "store"
    [change] = publish_manifests([build_manifest("a_pipe")], str(dest), dry_run=True)
    assert change["action"] == "create"
    assert not dest.exists()


def test_fetch_pinned_verifies_hash_and_caches(tmp_path):
    dest = tmp_path / "store"
    m = build_manifest("training_churn")
    [change] = publish_manifests([m], str(dest))
    got = fetch_manifest(change["pinned_uri"], expected_hash=m.content_hash)
    assert got.data == m.data
    cached = tmp_path / "cache" / "pinned" / f"{hash_hex(m.content_hash)}.json"
    assert cached.is_file()
    # served from the cache even when the store is gone
    (dest / "training_churn" / f"{hash_hex(m.content_hash)}.json").unlink()
    assert fetch_manifest(change["pinned_uri"], expected_hash=m.content_hash).content_hash == m.content_hash


def test_fetch_wrong_hash_is_input_error(tmp_path):
    dest = tmp_path / "store"
    m = build_manifest("training_churn")
    publish_manifests([m], str(dest))
    other = build_manifest("training_churn", schedule="@weekly")
    # no pinned copy of that version: the current manifest is read and does not match
    with pytest.raises(MBTInputError, match="expected sha256:") as err:
        fetch_manifest(str(dest / "training_churn" / "manifest.json"), expected_hash=other.content_hash)
    assert "pinned by this DAG run" in err.value.hint
    with pytest.raises(MBTInputError, match="not found"):
        fetch_manifest(str(dest / "nothing" / "manifest.json"))


def test_fetch_tampered_manifest_fails(tmp_path):
    path = tmp_path / "x" / "manifest.json"
    m = build_manifest("x")
    m.write(path)
    path.write_text(path.read_text().replace("@monthly", "@daily"))
    with pytest.raises(MBTInputError, match="content_hash does not match"):
        fetch_manifest(str(path))


def test_invalid_pipeline_name_refused_for_publish(tmp_path):
    m = build_manifest("bad/name")
    with pytest.raises(MBTInputError, match="storage key"):
        publish_manifests([m], str(tmp_path))
