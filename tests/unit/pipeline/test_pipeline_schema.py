"""The pipeline JSON Schema: identity, closed objects, and the full CONTRACTS §1 document."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.schema_check import validate
from airflow_mbt.pipeline.validation import SCHEMA_PATH
from airflow_mbt.project.yaml_loader import load_yaml

FULL = """\
schema_version: 1
base_pipeline: _base_churn
project:
  name: training_churn_model_v1
  experiment_name: churn_prediction
  problem_type: binary_classification
  owner: ds-team
  tags: [churn]
deployment:
  mode: batch
  cadence: monthly
training:
  data_source: {label_table: customers}
  schema:
    target: {label_column: churned, classes: [0, 1], positive_class: 1}
    identifiers: {primary_key: customer_id}
    ignored_columns: []
  preprocessing:
    impute: {numeric: median, categorical: most_frequent}
    scale: standard
    encode: onehot
    custom_transforms: ["lib.features:add_ratio"]
  split: {test_size: 0.2, seed: 42, stratify: true}
  model_training:
    framework: h2o_automl
    config: {max_runtime_secs: 300, max_models: 10, sort_metric: AUC, seed: 42, nfolds: 5}
  evaluation:
    primary_metric: roc_auc
    additional_metrics: [accuracy, f1, precision, recall]
    generate_plots: true
    validation_criteria: ["roc_auc >= 0.7"]
serving:
  model_source: {registry: mlflow, run_id: "abc123", artifact_snapshot: false}
  data_source: {scoring_table: customers_to_score}
  output:
    destination: local_file
    path: predictions.csv
    table: churn_predictions
    include_probabilities: true
steps:
  train_model: {resources: {cpu: "2", memory: "4Gi"}}
"""


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def test_schema_identity_and_meta_validity():
    s = schema()
    assert s["$id"] == "https://airflow-mbt.dev/schemas/pipeline-v1.json"
    jsonschema.Draft202012Validator.check_schema(s)


def _objects(node, path="$"):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}[{i}]")


def test_every_object_is_closed():
    """additionalProperties is false, or a schema (maps keyed by name) - never open by default."""
    for path, node in _objects(schema()):
        assert "additionalProperties" in node, path
        if node["additionalProperties"] is not False:
            assert path.endswith(("model_training.properties.config", "properties.steps",
                                  "preprocessing.properties.column_kinds")), path


def test_contract_document_is_valid(tmp_path):
    data = yaml.safe_load(FULL)
    jsonschema.Draft202012Validator(schema()).validate(data)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


def test_every_contract_field_is_declared():
    """Each field of the CONTRACTS §1 example resolves to a declared property."""
    s = schema()
    for path in _paths(yaml.safe_load(FULL)):
        node = s
        for key in path:
            if key in node.get("properties", {}):
                node = node["properties"][key]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            elif node.get("additionalProperties") is not False and node.get("type") == "object":
                break  # framework config: free-form by design
            else:
                pytest.fail(f"{'.'.join(path)} is not declared")


@pytest.mark.parametrize("edit, line, field", [
    ("split: {test_size: 0.2, seed: 42, stratify: true}", 23, "training.split.stratify"),
    ("mode: batch", 10, "deployment.mode"),
])
def test_errors_map_to_lines(tmp_path, edit, line, field):
    bad = FULL.replace(edit, edit.replace("true", "maybe").replace("batch", "stream"))
    (tmp_path / "p.yaml").write_text(bad)
    with pytest.raises(MBTInputError) as err:
        validate(load_yaml(tmp_path / "p.yaml", tmp_path), Path(SCHEMA_PATH))
    assert (err.value.file, err.value.line, err.value.field) == ("p.yaml", line, field)


def test_more_problems_are_counted(tmp_path):
    (tmp_path / "p.yaml").write_text(FULL.replace("owner: ds-team", "owner: 5\n  ownr: x").replace("mode: batch", "mode: 1"))
    with pytest.raises(MBTInputError) as err:
        validate(load_yaml(tmp_path / "p.yaml", tmp_path), Path(SCHEMA_PATH))
    assert err.value.line == 7 and "3 more problems" in err.value.hint  # ownr, mode: type + enum


def test_static_h2o_option_list_matches_the_installed_h2o():
    """semantics.H2O_AUTOML_KEYS mirrors H2OAutoML's parameters (validate must not import h2o)."""
    import inspect

    from h2o.automl import H2OAutoML

    from airflow_mbt.pipeline.semantics import H2O_AUTOML_KEYS

    params = [p for p in inspect.signature(H2OAutoML.__init__).parameters if p not in ("self", "kwargs")]
    assert sorted(H2O_AUTOML_KEYS) == sorted(params)
