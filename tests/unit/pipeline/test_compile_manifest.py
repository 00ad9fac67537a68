"""Compilation to manifest.json: content, defaults, determinism, no secrets or absolute paths."""

from __future__ import annotations

import shutil

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.pipeline.compiler import compile_pipeline
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project
from airflow_mbt.scaffold.project_init import init_project
from airflow_mbt.step_specs import SERVING_STEPS, TRAINING_STEPS

TRAIN = "training_churn_model_v1"
SERVE = "serving_churn_model_v1"


@pytest.fixture()
def proj(tmp_path) -> Project:
    root = init_project("demo", tmp_path)
    serving = root / "pipelines" / f"{SERVE}.yaml"
    # the run-id flow of serving (the scaffold follows the registry alias: test_lifecycle_authoring)
    text = serving.read_text().replace("    model_name: churn_model\n", "").replace("    alias: champion\n", "")
    text = text.replace("  on_model_change: true", "  on_model_change: false")
    serving.write_text(text.replace('# run_id: "<run_id_from_mlflow>"', 'run_id: "0123456789abcdef0123456789abcdef"'))
    return Project(root)


def build(project, name=TRAIN, target=None, vars=None, env=None) -> Manifest:
    env = {} if env is None else env
    return compile_pipeline(project, name, resolve_target(project, target, env=env), vars, env)


def test_training_manifest_content(proj):
    m = build(proj)
    assert m.kind == "training" and m.schedule == "@monthly" and m.target_name == "dev"
    assert [s.name for s in m.steps] == [s.name for s in TRAINING_STEPS] + ["promote"]  # registration
    assert {s.name: s.depends_on for s in m.steps} == {
        "load_data": (), "split_data": ("load_data",), "train_model": ("split_data",),
        "evaluate": ("split_data", "train_model"), "log_run": ("train_model", "evaluate"),
        "promote": ("split_data", "evaluate", "log_run")}
    assert m.step("train_model").resources == {"cpu": "2", "memory": "4Gi"}
    assert m.step("evaluate").resources == {}
    assert m.step("train_model").output_kinds == {"model": "dir", "preprocessor": "json"}
    p = m.pipeline
    assert (p.name, p.framework, p.problem_type, p.experiment_name, p.owner) == \
        (TRAIN, "h2o_automl", "binary_classification", "churn_prediction", "ds-team")
    assert p.source_file == f"pipelines/{TRAIN}.yaml"
    assert p.source_yaml == (proj.root / "pipelines" / f"{TRAIN}.yaml").read_text()
    cfg = m.config
    assert cfg["training"]["model_training"]["config"]["max_runtime_secs"] == 300
    assert cfg["training"]["split"] == {"test_size": 0.2, "seed": 42, "stratify": True}
    assert cfg["training"]["schema"]["ignored_columns"] == []
    assert cfg["training"]["preprocessing"]["impute"] == {"numeric": "median", "categorical": "most_frequent"}
    assert cfg["training"]["data_source"] == {"label_table": "customers"}   # from the base pipeline
    assert m.data["mbt_version"] and m.data["schema_version"] == m.schema_version == 2
    # criteria are compiled once; positions point every compiled field at its YAML line
    from airflow_mbt.constants import parse_criterion
    from airflow_mbt.manifest import Criterion

    written = cfg["training"]["evaluation"]["validation_criteria"]
    assert written and m.criteria == tuple(Criterion(*parse_criterion(t)) for t in written)
    pos = m.position("training.model_training.config.max_runtime_secs")
    assert pos is not None and pos.file.endswith(".yaml") and pos.line >= 1 and pos.col >= 1
    text = (proj.root / pos.file).read_text().splitlines()[pos.line - 1]
    assert "max_runtime_secs" in text


def test_serving_manifest(proj):
    m = build(proj, SERVE)
    assert m.kind == "serving" and m.schedule == "@daily"
    assert [s.name for s in m.steps] == [s.name for s in SERVING_STEPS]
    assert m.config["serving"]["model_source"] == {"registry": "mlflow", "run_id": "0123456789abcdef0123456789abcdef",
                                                   "artifact_snapshot": False}
    assert m.config["serving"]["output"]["include_probabilities"] is True


def test_defaults_for_a_minimal_pipeline(proj):
    (proj.pipelines_dir / "mini.yaml").write_text(
        "project: {name: mini, problem_type: regression}\ndeployment: {cadence: '0 3 * * 1-5'}\n"
        "training:\n  data_source: {label_table: customers}\n"
        "  schema: {target: {label_column: tenure}, identifiers: {primary_key: customer_id}}\n"
        "  model_training: {framework: sklearn, config: {model: Ridge}}\n")
    m = build(proj, "mini")
    cfg = m.config
    assert m.schedule == "0 3 * * 1-5"
    assert cfg["schema_version"] == 1 and cfg["deployment"]["mode"] == "batch"
    assert cfg["project"]["experiment_name"] == "mini" and cfg["project"]["tags"] == []
    assert cfg["training"]["evaluation"] == {"primary_metric": "rmse", "additional_metrics": [],
                                             "generate_plots": True, "validation_criteria": []}
    assert cfg["training"]["split"]["stratify"] is False
    assert cfg["steps"] == {}


def test_byte_identical_and_location_independent(proj, tmp_path):
    first = build(proj).to_json()
    assert build(proj).to_json() == first
    moved = shutil.copytree(proj.root, tmp_path / "elsewhere" / "demo")
    again = build(Project(moved))
    assert again.to_json() == first
    assert str(tmp_path) not in first
    assert Manifest.from_json(first).content_hash == again.content_hash


def test_vars_change_config_and_hash(proj):
    base = build(proj)
    fast = build(proj, vars={"max_runtime_secs": 30})
    assert fast.config["training"]["model_training"]["config"]["max_runtime_secs"] == 30
    assert fast.content_hash != base.content_hash


def test_secrets_stay_references(proj):
    profiles = proj.profiles_path
    profiles.write_text(profiles.read_text().replace(
        "config: {conn_id: mbt_warehouse, schema: public}",
        "config: {host: db, database: dw, user: mbt, password: \"{{ secret('PG_PASSWORD') }}\"}"))
    # a kubernetes target's pods cannot resolve secret(): compile says so (docs/kubernetes.md)
    with pytest.raises(MBTInputError, match="cannot reach the pods"):
        build(proj, target="prod", env={"PG_PASSWORD": "s3cr3t-value"})
    text = profiles.read_text()
    profiles.write_text(text.replace("        type: kubernetes\n", "        type: local\n", 1))  # secret() works here
    assert profiles.read_text() != text
    m = build(proj, target="prod", env={"PG_PASSWORD": "s3cr3t-value"})
    text = m.to_json()
    assert "s3cr3t-value" not in text
    assert m.target.data_connector.config["password"] == {"$secret": "PG_PASSWORD"}
    assert m.target.executor.type == "local"
    assert m.target.manifests == {"uri": "s3://mbt-pipeline-artifacts/manifests/", "conn_id": "mbt_s3"}
