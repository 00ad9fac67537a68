"""A serving pipeline takes its schema from the model: a minimal file validates and compiles;
a restated ``training:`` block is warned about; a restated value that differs from the model is a
conflict (``ml/model_facts``)."""

from __future__ import annotations

import json

import pytest

from airflow_mbt.cli.main import main
from airflow_mbt.ml import model_facts

MINIMAL = """\
project:
  name: serving_min
deployment:
  cadence: daily
serving:
  model_source: {run_id: 0123abcd}
  data_source: {scoring_table: customers_to_score}
  output: {destination: local_file}
"""


def test_minimal_serving_pipeline_validates_and_compiles(project, capsys):
    (project / "pipelines" / "serving_min.yaml").write_text(MINIMAL)
    assert main(["validate", "serving_min"]) == 0
    assert main(["compile", "serving_min", "--target", "dev"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err
    manifest = json.loads((project / "target" / "serving_min" / "manifest.json").read_text())
    assert manifest["pipeline"]["kind"] == "serving"
    assert manifest["pipeline"]["problem_type"] is None and manifest["pipeline"]["framework"] is None


def test_restated_training_block_is_warned_about_with_its_position(project, capsys):
    text = MINIMAL.replace("deployment:", "training:\n  split: {test_size: 0.3}\n"
                                          "  schema:\n    target: {label_column: churned}\ndeployment:")
    (project / "pipelines" / "serving_min.yaml").write_text(text)
    assert main(["validate", "serving_min"]) == 0
    err = capsys.readouterr().err
    assert "pipelines/serving_min.yaml:3:" in err and "training.split.test_size" in err
    assert "training.schema.target.label_column in a serving pipeline only restates the model" in err
    assert "reads it from the model and stops if it differs" in err


def test_restated_fields_are_named_in_the_plural(project, capsys):
    text = MINIMAL.replace("deployment:", "training:\n  model_training: {framework: sklearn}\n"
                                          "  schema:\n    target: {label_column: churned}\ndeployment:")
    (project / "pipelines" / "serving_min.yaml").write_text(text)
    assert main(["validate", "serving_min"]) == 0
    err = capsys.readouterr().err
    assert ("training.model_training.framework, training.schema.target.label_column in a serving pipeline "
            "only restate the model: mbt reads them from the model and stops if they differ") in err


def test_training_pipeline_still_needs_problem_type_and_training(project, capsys):
    (project / "pipelines" / "training_x.yaml").write_text(
        "project: {name: training_x}\ndeployment: {cadence: daily}\n")
    assert main(["validate", "training_x"]) == 2
    assert "missing required field 'project.problem_type'" in capsys.readouterr().err


@pytest.mark.parametrize("declared,meta,conflict", [
    ({"training": {"schema": {"target": {"label_column": "y"}}}}, {"label_column": "churned"}, True),
    ({"training": {"schema": {"target": {"classes": [1, 0]}}}}, {"classes": [0, 1]}, False),
    ({"training": {"schema": {"target": {"positive_class": True}}}}, {"positive_class": 1}, True),
    ({"project": {"problem_type": "regression"}}, {"problem_type": "binary_classification"}, True),
    ({"training": {"schema": {"identifiers": {"primary_key": "wine_id"}}}}, {"primary_key": "id"}, True),
    ({"training": {"model_training": {"framework": "sklearn"}}}, {"framework": "sklearn"}, False),
    ({}, {"label_column": "churned"}, False),
])
def test_conflicts_with_the_model(declared, meta, conflict):
    assert bool(model_facts.conflicts(declared, meta)) is conflict


def test_load_model_stops_on_a_restated_value_that_differs_from_the_model(tmp_path, monkeypatch):
    """A serving file that says label_column: quality for a model trained on target: exit 2 at
    that field, never the model's value silently."""
    import logging
    from types import SimpleNamespace

    from airflow_mbt.errors import MBTInputError
    from airflow_mbt.ml.scoring import write_meta
    from airflow_mbt.steps import load_model
    from airflow_mbt.tracking import model_fetch

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_meta(model_dir, {"framework": "sklearn", "problem_type": "multiclass_classification",
                           "classes": [0, 1, 2], "positive_class": None, "feature_columns": ["a"],
                           "label_column": "target", "primary_key": "row_id"})
    monkeypatch.setattr(model_fetch, "fetch", lambda runtime, run_id, dest: (model_dir, {}))
    manifest = SimpleNamespace(position=lambda field: None, pipeline=SimpleNamespace(source_file="pipelines/s.yaml"))

    def ctx(training):
        return SimpleNamespace(config={"serving": {"model_source": {"run_id": "r1"}}, "training": training},
                               step_dir=tmp_path, runtime=None, log=logging.getLogger("t"), manifest=manifest, summary={})

    assert load_model.run(ctx({"schema": {"target": {"label_column": "target", "classes": [2, 1, 0]}}}), {})
    with pytest.raises(MBTInputError) as err:
        load_model.run(ctx({"schema": {"target": {"label_column": "quality"}}}), {})
    assert err.value.field == "training.schema.target.label_column" and "'target'" in err.value.message
