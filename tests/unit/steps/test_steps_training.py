"""Training steps run through the real executor over LocalStorage and the local_file connector."""

import json
import textwrap

import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, training_config

from airflow_mbt.errors import DataContractError, MBTInputError, ValidationCriteriaError

UP_TO_EVALUATE = ["load_data", "split_data", "train_model", "evaluate"]


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def test_training_steps_produce_model_metrics_and_plots(project, tmp_path):
    manifest = make_manifest(training_config())
    run_id = run_steps(manifest, project, UP_TO_EVALUATE)
    raw = fetch(project, manifest, run_id, "raw_data")
    train, test = fetch(project, manifest, run_id, "train_set"), fetch(project, manifest, run_id, "test_set")
    assert len(raw) == 800 and len(train) == 600 and len(test) == 200
    assert set(train["customer_id"]).isdisjoint(test["customer_id"])
    # stratified: the positive rate is the same in both sets (to one row)
    assert abs(train["churned"].mean() - test["churned"].mean()) < 0.01

    model_dir = fetch(project, manifest, run_id, "model", tmp_path / "m")
    meta = json.loads((model_dir / "mbt_model.json").read_text())
    pre = fetch(project, manifest, run_id, "preprocessor")
    assert meta["framework"] == "sklearn" and meta["classes"] == [0, 1] and meta["positive_class"] == 1
    assert meta["feature_columns"] == pre["output_columns"]
    assert meta["primary_key"] == "customer_id" and meta["label_column"] == "churned"
    assert "customer_id" not in pre["input_columns"] and "churned" not in pre["input_columns"]
    assert (model_dir / "model.joblib").is_file()

    metrics = fetch(project, manifest, run_id, "metrics")
    assert metrics["primary_metric"] == "roc_auc" and metrics["n_test"] == 200
    assert set(metrics["metrics"]) == {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"}
    assert metrics["metrics"]["roc_auc"] > 0.7  # the sample data has a learnable signal
    assert metrics["validation"] == [{"criterion": "roc_auc >= 0.6", "metric": "roc_auc", "threshold": 0.6,
                                      "actual": metrics["metrics"]["roc_auc"], "passed": True}]
    plots = fetch(project, manifest, run_id, "plots", tmp_path / "p")
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["confusion_matrix.png", "feature_importance.png", "pr_curve.png", "roc_curve.png"]
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def test_failed_validation_criterion_names_metric_threshold_and_value(project):
    manifest = make_manifest(training_config(training={"evaluation": {"validation_criteria": ["roc_auc >= 0.999"]}}))
    with pytest.raises(ValidationCriteriaError) as err:
        run_steps(manifest, project, UP_TO_EVALUATE)
    assert "roc_auc >= 0.999 (actual 0." in str(err.value)


def test_missing_label_column_is_named(project):
    cfg = training_config(training={"schema": {"target": {"label_column": "has_churned"}}})
    with pytest.raises(DataContractError) as err:
        run_steps(make_manifest(cfg), project, ["load_data", "split_data"])
    assert err.value.field == "training.schema.target.label_column" and "'has_churned'" in str(err.value)
    assert "churned" in err.value.hint


def test_unknown_sklearn_model_is_an_input_error(project):
    cfg = training_config(training={"model_training": {"config": {"model": "RandomForrest"}}})
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(cfg), project, ["load_data", "split_data", "train_model"])
    assert err.value.field == "training.model_training.config.model"


def test_plots_off_gives_an_empty_plots_dir_and_ignored_columns_are_dropped(project, tmp_path):
    cfg = training_config(training={"evaluation": {"generate_plots": False},
                                    "schema": {"ignored_columns": ["total_charges"]}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, project, UP_TO_EVALUATE)
    assert list(fetch(project, manifest, run_id, "plots", tmp_path / "p").iterdir()) == []
    assert "total_charges" not in fetch(project, manifest, run_id, "train_set").columns
    assert "total_charges" not in fetch(project, manifest, run_id, "preprocessor")["input_columns"]


def test_custom_transform_runs_in_split_and_is_recorded(project):
    (project / "lib").mkdir()
    (project / "lib" / "features.py").write_text(textwrap.dedent("""
        def add_charges_per_month(df):
            df["charges_per_month"] = df["total_charges"] / df["tenure"]
            return df
    """))
    cfg = training_config(training={"preprocessing": {"custom_transforms": ["lib.features:add_charges_per_month"]}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, project, ["load_data", "split_data", "train_model"])
    train = fetch(project, manifest, run_id, "train_set")
    assert (train["charges_per_month"] - train["total_charges"] / train["tenure"]).abs().max() < 1e-9
    pre = fetch(project, manifest, run_id, "preprocessor")
    assert pre["custom_transforms"] == ["lib.features:add_charges_per_month"]
    assert "charges_per_month" in pre["output_columns"]


def test_multiclass_with_text_labels(project):
    cfg = training_config(project={"problem_type": "multiclass_classification"},
                          training={"schema": {"target": {"label_column": "contract_type", "classes": None,
                                                          "positive_class": None}},
                                    "evaluation": {"primary_metric": "accuracy",
                                                   "validation_criteria": ["accuracy > 0.4"]}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, project, UP_TO_EVALUATE)
    metrics = fetch(project, manifest, run_id, "metrics")
    assert metrics["primary_metric"] == "accuracy" and "f1_macro" in metrics["metrics"]
    assert metrics["metrics"]["log_loss"] is not None


def test_regression(project):
    cfg = training_config(project={"problem_type": "regression"},
                          training={"schema": {"target": {"label_column": "total_charges"}},
                                    "model_training": {"config": {"model": "RandomForestRegressor"}},
                                    "split": {"stratify": False},
                                    "evaluation": {"primary_metric": "r2", "validation_criteria": ["r2 > 0.5"]}})
    # rows without a label value cannot train a regression: drop them from the source table
    data = project / "sample_data" / "customers.csv"
    pd.read_csv(data).dropna(subset=["total_charges"]).to_csv(data, index=False)
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, project, UP_TO_EVALUATE)
    metrics = fetch(project, manifest, run_id, "metrics")
    assert set(metrics["metrics"]) == {"rmse", "mae", "r2", "mape"} and metrics["metrics"]["r2"] > 0.5


def test_regression_rows_without_label_are_a_data_contract_error(project):
    cfg = training_config(project={"problem_type": "regression"},
                          training={"schema": {"target": {"label_column": "total_charges"}},
                                    "model_training": {"config": {"model": "RandomForestRegressor"}},
                                    "split": {"stratify": False}, "evaluation": {"validation_criteria": []}})
    with pytest.raises(DataContractError, match="rows have no numeric label"):
        run_steps(make_manifest(cfg), project, ["load_data", "split_data", "train_model"])


def test_input_errors_point_at_the_pipeline_yaml_line(project):
    import yaml

    from airflow_mbt.manifest import dotted_path
    from airflow_mbt.project.yaml_loader import load_yaml

    cfg = training_config(training={"model_training": {"config": {"model": "RandomForrest"}}})
    (project / "pipelines").mkdir()
    text = yaml.safe_dump(cfg, sort_keys=False)
    source = project / "pipelines" / "training_churn.yaml"
    source.write_text(text)
    doc = load_yaml(source, project)
    positions = {dotted_path(p): [loc.file, loc.line, loc.col] for p, loc in doc.locs.items() if p}
    source.unlink()  # execution reads positions from the manifest, never the YAML
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(cfg, positions=positions), project, ["load_data", "split_data", "train_model"])
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "RandomForrest" in t)
    assert (err.value.file, err.value.line) == ("pipelines/training_churn.yaml", line)
    assert str(err.value).startswith(f"pipelines/training_churn.yaml:{line}:")
    assert "training.model_training.config.model" in str(err.value)


def test_without_the_yaml_at_hand_the_error_still_names_the_file(project):
    cfg = training_config(training={"split": {"test_size": 2}})
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(cfg), project, ["load_data", "split_data"])
    assert err.value.file == "pipelines/training_churn.yaml" and err.value.line is None
    assert err.value.field == "training.split.test_size"


def test_field_paths_with_list_items():
    from airflow_mbt.steps.error_location import field_path

    assert field_path("training.evaluation.validation_criteria[1]") == ("training", "evaluation",
                                                                        "validation_criteria", 1)
    assert field_path("training.preprocessing.custom_transforms[0]")[-1] == 0
