"""load_data's MLflow input dataset infers its schema from the first rows, not from every value:
MLflow's own ``PandasDataset.schema`` checks each value of each text column in Python (19 s of a
1M-row load_data, ``benchmarks/bench_sklearn_training.py``). The schema logged is the one MLflow
infers from the whole frame."""

import json

import mlflow
import mlflow.data.pandas_dataset
import mlflow.types.utils
import pandas as pd
from ml_pipeline_fixtures import make_manifest, make_project, run_steps, training_config

from airflow_mbt.tracking import pipeline_run

ROWS = pipeline_run.SCHEMA_SAMPLE_ROWS * 2 + 500


def test_input_dataset_schema_is_inferred_from_a_sample(tmp_path, monkeypatch):
    root = make_project(tmp_path, n_customers=ROWS, n_score=10)
    full = mlflow.types.utils._infer_schema(pd.read_csv(root / "sample_data" / "customers.csv"))
    seen: list[int] = []
    real = mlflow.types.utils._infer_schema

    def spy(data, *args, **kwargs):
        seen.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(mlflow.types.utils, "_infer_schema", spy)
    monkeypatch.setattr(mlflow.data.pandas_dataset, "_infer_schema", spy)  # MLflow's PandasDataset.schema
    manifest = make_manifest(training_config())
    run_id = run_steps(manifest, root, ["load_data"])
    assert seen and max(seen) <= pipeline_run.SCHEMA_SAMPLE_ROWS  # never the whole frame
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("churn_prediction").experiment_id],
                               f"tags.mbt_run_id = '{run_id}'")
    [dataset] = [d.dataset for d in run.inputs.dataset_inputs]
    assert json.loads(dataset.schema) == {"mlflow_colspec": full.to_dict()}
    assert json.loads(dataset.profile)["num_rows"] == ROWS
