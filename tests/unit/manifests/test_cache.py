"""airflow_mbt.manifests.cache on a local folder: the parse-time listing reports a broken
manifest and keeps the others, prefers pinned copies, and filters to one pipeline."""

from __future__ import annotations

import pytest
from airflow_manifests import build_manifest, write_tree

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifests import hash_hex, load_manifests, publish_manifests


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE_DIR", str(tmp_path / "cache"))


def test_load_local_folder_reports_broken_manifest_and_keeps_others(tmp_path):
    root = write_tree(tmp_path / "target", [build_manifest("training_a"), build_manifest("serving_b", "serving")])
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")
    (root / "training_a" / "run_results.json").write_text("{}")  # other files in target/ are ignored
    result = load_manifests(str(root))
    assert sorted(result.manifests) == ["serving_b", "training_a"]
    assert list(result.errors) == [str(root / "broken" / "manifest.json")]
    assert "not valid JSON" in result.errors[str(root / "broken" / "manifest.json")]
    assert result.from_cache == 0
    # compiled but never deployed: tasks read the manifest itself
    assert result.pinned_uris["training_a"] == str(root / "training_a" / "manifest.json")


def test_load_local_prefers_pinned_copy_and_only_filter(tmp_path):
    dest = tmp_path / "store"
    a, b = build_manifest("training_a"), build_manifest("serving_b", "serving")
    publish_manifests([a, b], str(dest))
    result = load_manifests(str(dest), only="serving_b")
    assert list(result.manifests) == ["serving_b"]
    assert result.pinned_uris["serving_b"].endswith(f"serving_b/{hash_hex(b.content_hash)}.json")


def test_folder_name_must_match_pipeline_name(tmp_path):
    m = build_manifest("training_a")
    m.write(tmp_path / "renamed" / "manifest.json")
    result = load_manifests(str(tmp_path))
    assert not result.manifests
    assert "does not match its folder" in next(iter(result.errors.values()))


def test_missing_folder_and_bad_scheme_are_input_errors(tmp_path):
    with pytest.raises(MBTInputError, match="does not exist"):
        load_manifests(str(tmp_path / "nope"))
    with pytest.raises(MBTInputError, match="unsupported manifests location"):
        load_manifests("gs://bucket/x/")
