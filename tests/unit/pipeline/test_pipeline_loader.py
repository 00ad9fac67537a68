"""YAML loading with positions, !include, and base_pipeline merging."""

from __future__ import annotations

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.loading import deep_merge, load_pipeline
from airflow_mbt.project.yaml_loader import Loc, load_yaml
from airflow_mbt.project.root import Project


def test_positions_of_keys_and_items(tmp_path):
    (tmp_path / "a.yaml").write_text("top:\n  key: 1\n  items:\n    - x\n    - {y: 2}\n")
    doc = load_yaml(tmp_path / "a.yaml", tmp_path)
    assert doc.value == {"top": {"key": 1, "items": ["x", {"y": 2}]}}
    assert doc.locs[("top", "key")] == Loc("a.yaml", 2, 3)
    assert doc.locs[("top", "items", 1)] == Loc("a.yaml", 5, 7)
    assert doc.locs[("top", "items", 1, "y")] == Loc("a.yaml", 5, 8)
    # an unknown path falls back to its nearest located parent
    assert doc.loc(("top", "items", 1, "nope")).line == 5


def test_include_is_relative_to_the_including_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.yaml").write_text("a: 1\nb: !include sub/frag.yaml\n")
    (tmp_path / "sub" / "frag.yaml").write_text("c: !include more.yaml\n")
    (tmp_path / "sub" / "more.yaml").write_text("\n\nd: [1, 2]\n")
    doc = load_yaml(tmp_path / "main.yaml", tmp_path)
    assert doc.value == {"a": 1, "b": {"c": {"d": [1, 2]}}}
    assert doc.locs[("b", "c", "d")] == Loc("sub/more.yaml", 3, 1)


def test_include_cycle_names_the_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("x: !include b.yaml\n")
    (tmp_path / "b.yaml").write_text("y: !include a.yaml\n")
    with pytest.raises(MBTInputError) as err:
        load_yaml(tmp_path / "a.yaml", tmp_path)
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in str(err.value)
    assert err.value.file == "b.yaml" and err.value.line == 1


def test_yaml_anchors_and_merge_keys_work(tmp_path):
    (tmp_path / "a.yaml").write_text("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n")
    assert load_yaml(tmp_path / "a.yaml").value["child"] == {"x": 1, "y": 3}


def test_aliased_merge_node_is_read_twice(tmp_path):
    (tmp_path / "a.yaml").write_text("base: &b {x: 1, y: 2}\nchild: &c\n  <<: *b\n  y: 3\nagain: *c\n")
    value = load_yaml(tmp_path / "a.yaml").value
    assert value["child"] == value["again"] == {"x": 1, "y": 3}


def test_recursive_alias_is_an_input_error(tmp_path):
    (tmp_path / "a.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(MBTInputError, match="refers to itself"):
        load_yaml(tmp_path / "a.yaml", tmp_path)


def test_python_tags_are_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text("x: !!python/object:os.system {}\n")
    with pytest.raises(MBTInputError) as err:
        load_yaml(tmp_path / "a.yaml", tmp_path)
    assert err.value.line == 1 and "unsupported YAML tag" in err.value.message


def test_deep_merge_child_wins():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    child = {"a": {"c": [3]}, "e": 2}
    assert deep_merge(base, child) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not mutated


def _project(tmp_path, files: dict) -> Project:
    (tmp_path / "profiles.yaml").write_text("p: {}\n")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return Project(tmp_path)


def test_base_pipeline_chain_merge_and_positions(tmp_path):
    project = _project(tmp_path, {
        "pipelines/_root.yaml": "project: {owner: root, tags: [a]}\ntraining: {split: {seed: 1, test_size: 0.3}}\n",
        "pipelines/_mid.yaml": "base_pipeline: _root\nproject: {owner: mid}\n",
        "pipelines/p.yaml": "base_pipeline: _mid\nproject:\n  name: p\ntraining:\n  split: {seed: 7}\n",
    })
    doc = load_pipeline(project, "p")
    assert doc.value["project"] == {"owner": "mid", "tags": ["a"], "name": "p"}
    assert doc.value["training"]["split"] == {"seed": 7, "test_size": 0.3}
    assert doc.loc(("training", "split", "test_size")).file == "pipelines/_root.yaml"
    assert doc.loc(("project", "owner")).file == "pipelines/_mid.yaml"
    assert doc.loc(("training", "split", "seed")) == Loc("pipelines/p.yaml", 5, 11)
    assert doc.file == "pipelines/p.yaml" and doc.text.startswith("base_pipeline: _mid")


def test_base_pipeline_cycle(tmp_path):
    project = _project(tmp_path, {"pipelines/_a.yaml": "base_pipeline: _b\n", "pipelines/_b.yaml": "base_pipeline: _a\n",
                                  "pipelines/p.yaml": "x: 1\nbase_pipeline: _a\n"})
    with pytest.raises(MBTInputError) as err:
        load_pipeline(project, "p")
    assert "base_pipeline cycle: p -> _a -> _b -> _a" in str(err.value)


def test_pipeline_not_found_suggests(tmp_path):
    project = _project(tmp_path, {"pipelines/churn_v1.yaml": "x: 1\n"})
    with pytest.raises(MBTInputError) as err:
        load_pipeline(project, "churn_v2")
    assert "did you mean 'churn_v1'" in str(err.value)


def test_vars_rendered_after_merge(tmp_path):
    project = _project(tmp_path, {"pipelines/_b.yaml": "n: \"{{ var('n', 3) }}\"\n",
                                  "pipelines/p.yaml": "base_pipeline: _b\nm: \"{{ env_var('MBT_T_M', 'x') }}-{{ var('n') }}\"\n"})
    doc = load_pipeline(project, "p", vars={"n": 5}, env={})
    assert doc.value["n"] == 5 and doc.value["m"] == "x-5"


def test_dates_stay_text_and_keys_are_strings(tmp_path):
    (tmp_path / "a.yaml").write_text("since: 2024-01-31\n1: one\n")
    assert load_yaml(tmp_path / "a.yaml").value == {"since": "2024-01-31", "1": "one"}
