"""`mbt init`: the generated project is complete, valid and copies the deployment files."""

from __future__ import annotations

import re

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.validation import check_data_columns, validate_pipeline
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project
from airflow_mbt.scaffold.project_init import FILES_DIR, init_project


def test_layout(tmp_path):
    root = init_project("acme-ml", tmp_path)
    for rel in ("profiles.yaml", "pipelines/_base_churn.yaml", "pipelines/training_churn_model_v1.yaml",
                "pipelines/serving_churn_model_v1.yaml", "lib/__init__.py", "lib/features.py", ".gitignore",
                "sample_data/customers.csv", "sample_data/customers_to_score.csv", "README.md"):
        assert (root / rel).is_file(), rel
    assert not (root / "gitignore.txt").exists()
    ignored = (root / ".gitignore").read_text().split()
    for entry in ("target/", "local_artifacts/", "mlruns/", "*.pyc", "__pycache__/"):
        assert entry in ignored
    assert (root / "profiles.yaml").read_text().startswith("#") and "acme-ml:" in (root / "profiles.yaml").read_text()
    assert "__PROJECT_NAME__" not in (root / "README.md").read_text()


def test_every_template_file_is_copied(tmp_path):
    """Including the deployment files (Dockerfile, .woodpecker.yml) that live next to the templates."""
    root = init_project("p", tmp_path)
    templates = [p.relative_to(FILES_DIR) for p in FILES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {"Dockerfile", ".woodpecker.yml"} <= {str(p) for p in templates}
    for rel in templates:
        copied = root / (".gitignore" if rel.name == "gitignore.txt" else rel)
        assert copied.is_file(), rel
        if not {"__PROJECT_NAME__", "__IMAGE_NAME__"} & set(re.findall(r"__[A-Z_]+__", (FILES_DIR / rel).read_text())):
            assert copied.read_bytes() == (FILES_DIR / rel).read_bytes(), rel


def test_generated_project_validates_for_both_targets(tmp_path):
    project = Project(init_project("p", tmp_path))
    for target in ("dev", "prod"):
        t = resolve_target(project, target, env={})
        assert t.warnings == []
    pipeline = validate_pipeline(project, "training_churn_model_v1", env={})
    check_data_columns(pipeline, project.root / "sample_data")
    assert pipeline.config["training"]["model_training"]["config"]["max_runtime_secs"] == 300
    assert pipeline.config["training"]["evaluation"]["validation_criteria"] == ["roc_auc >= 0.6"]
    assert pipeline.config["training"]["registration"]["model_name"] == "churn_model"
    # the scaffolded serving follows the registry alias: it validates before any model exists
    serving = validate_pipeline(project, "serving_churn_model_v1", env={})
    assert serving.config["serving"]["model_source"] == {"registry": "mlflow", "model_name": "churn_model",
                                                         "alias": "champion", "artifact_snapshot": False}
    # the run-id flow keeps its placeholder check
    path = project.root / "pipelines" / "serving_churn_model_v1.yaml"
    text = path.read_text().replace("    model_name: churn_model", "").replace("    alias: champion", "")
    path.write_text(text.replace('# run_id: "<run_id_from_mlflow>"', 'run_id: "<run_id_from_mlflow>"'))
    with pytest.raises(MBTInputError, match="placeholder"):
        validate_pipeline(project, "serving_churn_model_v1", env={})


def test_example_transform_works(tmp_path):
    import importlib.util

    import pandas as pd

    root = init_project("p", tmp_path)
    spec = importlib.util.spec_from_file_location("features", root / "lib" / "features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    df = pd.DataFrame({"total_charges": [100.0, None, 5.0], "tenure": [10, 3, 0]})
    out = module.add_charges_per_month(df)
    assert out["charges_per_month"].iloc[0] == 10.0 and out["charges_per_month"].isna().tolist() == [False, True, True]
    assert "charges_per_month" not in df


@pytest.mark.parametrize("name", ["", "../escape", "a b", "-x"])
def test_bad_names(tmp_path, name):
    with pytest.raises(MBTInputError):
        init_project(name, tmp_path)


def test_data_column_check_reads_the_table_the_connector_reads(tmp_path):
    project = Project(init_project("p", tmp_path))
    path = project.pipeline_path("training_churn_model_v1")
    # override the base pipeline: a schema-qualified table and a label the data does not have
    path.write_text(path.read_text().replace("training:\n", "training:\n  data_source: {label_table: public.customers}\n"
                                             "  schema: {target: {label_column: churn}}\n", 1))
    pipeline = validate_pipeline(project, "training_churn_model_v1", env={})
    with pytest.raises(MBTInputError, match="column 'churn' is not in customers.csv") as err:
        check_data_columns(pipeline, project.root / "sample_data")
    assert err.value.file == "pipelines/training_churn_model_v1.yaml"
    (project.root / "sample_data" / "customers.parquet").write_bytes(b"")  # the connector would read this one
    check_data_columns(pipeline, project.root / "sample_data")


def test_init_framework_sklearn_gives_a_sklearn_pair_with_a_minimal_serving_file(tmp_path):
    import yaml

    from airflow_mbt.scaffold.project_init import init_project as init

    root = init("skl", tmp_path, framework="sklearn")
    training = yaml.safe_load((root / "pipelines" / "training_churn_model_v1.yaml").read_text())
    serving = yaml.safe_load((root / "pipelines" / "serving_churn_model_v1.yaml").read_text())
    assert training["training"]["model_training"]["framework"] == "sklearn"
    assert "search" in training["training"]["model_training"]["config"]
    assert "training" not in serving and "base_pipeline" not in serving
    assert set(serving["serving"]) == {"model_source", "data_source", "output"}
