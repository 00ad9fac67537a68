"""Serving steps against a model trained and logged (sqlite MLflow store) in the same project."""

import pandas as pd
import pytest
from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, train_once

from airflow_mbt.errors import DataContractError, MBTInputError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("serving"))
    manifest, run_id, mlflow_run = train_once(root)
    return root, mlflow_run


def test_local_file_predictions(trained):
    root, mlflow_run = trained
    manifest = make_manifest(serving_config(mlflow_run["run_id"], serving={"output": {"path": "out/preds.csv"}}))
    run_id = run_steps(manifest, root)
    scoring = pd.read_csv(root / "sample_data" / "customers_to_score.csv")
    preds = pd.read_csv(root / "out" / "preds.csv")
    assert list(preds.columns) == ["customer_id", "prediction", "prediction_probability", "execution_date",
                                   "model_run_id", "serving_run_id", "pipeline_name"]
    assert preds["customer_id"].tolist() == scoring["customer_id"].tolist()
    assert set(preds["prediction"]) <= {0, 1}
    assert preds["prediction_probability"].between(0, 1).all()
    # the label follows the probability of the positive class
    assert ((preds["prediction_probability"] > 0.5) == (preds["prediction"] == 1)).mean() > 0.95
    result = fetch(root, manifest, run_id, "publish_result")
    assert {k: result[k] for k in ("destination", "path", "rows", "serving_run_id", "pipeline_name")} == {
        "destination": "local_file", "path": str(root / "out" / "preds.csv"), "rows": len(scoring),
        "serving_run_id": run_id, "pipeline_name": "serving_churn"}
    features = fetch(root, manifest, run_id, "features")
    assert features.columns[0] == "customer_id" and "contract_type=__other__" in features.columns


def test_probabilities_can_be_left_out(trained):
    root, mlflow_run = trained
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {"include_probabilities": False,
                                                                   "path": "no_proba.csv"}})
    run_steps(make_manifest(cfg), root)
    assert list(pd.read_csv(root / "no_proba.csv").columns) == ["customer_id", "prediction", "execution_date",
                                                                "model_run_id", "serving_run_id", "pipeline_name"]


def test_database_destination_is_idempotent_per_serving_run(trained):
    root, mlflow_run = trained
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {"destination": "database",
                                                                   "table": "public.churn_predictions"}})
    manifest = make_manifest(cfg)
    run_id = run_steps(manifest, root)
    run_steps(manifest, root, ["publish"], run_id=run_id)  # a retried publish replaces its own rows
    other = run_steps(manifest, root)
    table = pd.read_csv(root / "output" / "churn_predictions.csv")
    assert list(table.columns) == ["customer_id", "prediction", "prediction_probability", "execution_date",
                                   "model_run_id", "serving_run_id", "pipeline_name"]
    assert table.groupby("serving_run_id").size().to_dict() == {run_id: 200, other: 200}
    assert set(table["model_run_id"]) == {mlflow_run["run_id"]}
    assert pd.to_datetime(table["execution_date"]).notna().all()
    assert fetch(root, manifest, run_id, "publish_result")["rows"] == 200


def test_scoring_table_that_breaks_the_contract(trained):
    root, mlflow_run = trained
    bad = pd.read_csv(root / "sample_data" / "customers_to_score.csv").drop(columns=["tenure"])
    bad["promo_code"] = "X"
    bad.to_csv(root / "sample_data" / "bad_scoring.csv", index=False)
    cfg = serving_config(mlflow_run["run_id"], serving={"data_source": {"scoring_table": "bad_scoring"}})
    with pytest.raises(DataContractError) as err:
        run_steps(make_manifest(cfg), root, ["load_model", "load_scoring_data", "apply_transforms"])
    text = str(err.value)
    assert "'bad_scoring'" in text and "missing columns: tenure" in text and "unexpected columns: promo_code" in text


@pytest.mark.parametrize("run_id,needle", [("0123456789abcdef0123456789abcdef", "does not exist"),
                                           ("<run_id_from_mlflow>", "not an MLflow run id")])
def test_unknown_model_run_is_an_input_error(trained, run_id, needle):
    root, _ = trained
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(serving_config(run_id)), root, ["load_model"])
    assert err.value.field == "serving.model_source.run_id" and needle in str(err.value)


def test_unknown_destination(trained):
    root, mlflow_run = trained
    cfg = serving_config(mlflow_run["run_id"], serving={"output": {"destination": "kafka"}})
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(cfg), root)
    assert err.value.field == "serving.output.destination"
