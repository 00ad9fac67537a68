"""Modelling a data scientist can trust (issue 14), through the ``mbt`` CLI on a project whose
profile targets the real stack: data and predictions in PostgreSQL (a scratch schema), pipeline
artifacts in SeaweedFS S3 (a scratch prefix), the MLflow tracking server (PostgreSQL backend, S3
artifacts) through the Airflow connections of ``scripts/stack.env``. Every assertion reads values
back from those services, not only exit codes.

* (c) ``split.method: time``: no training row is later than a test row (ties at the boundary go
  to the test set), checked on the train/test artifacts in S3 against the PostgreSQL table;
* (d) the binary ``threshold: 0.7`` decides the published predictions (rows at 0.5-0.7 are 0), and
  the metrics on the MLflow server are those of the thresholded predictions;
* (a) after an edit of ``lib/features.py``, serving runs the transform code logged with the model
  (the logged file in the MLflow artifact bucket is the old one; features and probabilities in
  PostgreSQL are those of the old code), with the warning naming the file;
* (e) ``include_probabilities: all``: one probability column per class, summing to 1, binary and
  multiclass (iris with text labels), the prediction is the most probable class;
* (b) failed validation criteria: exit 3, and a complete MLflow run on the server (status FAILED,
  tag ``mbt_status=failed_criteria``, every metric, ``metrics.json`` in the S3 artifact bucket and
  in the pipeline storage), no model.

The CLI runs in this process (``airflow_mbt.cli.main.main``, as ``test_sklearn_corpus.py``): five
``mbt run`` on a few thousand rows with LogisticRegression keep the module at about a minute.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_mbt.ml import custom_transforms, preprocessing
from cli_in_process import run_cli

pytestmark = pytest.mark.services

BUCKET = "mbt-pipeline-artifacts"
MLFLOW_BUCKET = "mbt-mlflow-artifacts"  # the tracking server's --artifacts-destination
THRESHOLD = 0.7
N_CUSTOMERS = 3000
TRANSFORM_V1 = ("def add_ratio(df):\n"
                "    df['charges_per_month'] = df['total_charges'] / df['tenure']\n"
                "    return df\n")
TRANSFORM_V2 = TRANSFORM_V1.replace("/ df['tenure']", "* 2.0")
CHURN_COLUMNS = ("customer_id text, signup_date timestamp, tenure integer, monthly_charges double precision, "
                 "total_charges double precision, contract_type text")


def churn_frame(n: int, seed: int = 14) -> pd.DataFrame:
    """Churn-like rows whose table order is not time order; signup dates are whole days, so rows tie
    at any time boundary."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one_year", "two_year"], n, p=[0.55, 0.25, 0.20])
    tenure = rng.integers(1, 73, n)
    monthly = np.round(rng.normal(65, 22, n).clip(18, 120), 2)
    total = np.round(monthly * tenure * rng.uniform(0.9, 1.1, n), 2)
    logit = (-1.0 + np.select([contract == "month-to-month", contract == "one_year"], [1.1, -0.6], -1.6)
             - 0.045 * (tenure - 24) + 0.03 * (monthly - 65))
    return pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "signup_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D"),
        "tenure": tenure, "monthly_charges": monthly, "total_charges": total, "contract_type": contract,
        "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)})


def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    df = data.frame.rename(columns=lambda c: str(c).replace(" (cm)", "_cm").replace(" ", "_"))
    df["species"] = [str(data.target_names[t]) for t in df.pop("target")]
    df.insert(0, "row_id", [f"I{i:03d}" for i in range(len(df))])
    return df


def copy_in(conn, schema: str, table: str, ddl: str, df: pd.DataFrame) -> None:
    conn.execute(f'CREATE TABLE "{schema}".{table} ({ddl})')
    with conn.cursor().copy(f'COPY "{schema}".{table} ({", ".join(df.columns)}) FROM STDIN (FORMAT csv)') as cp:
        cp.write(df.to_csv(index=False, header=False))


def query(conn, sql: str, *params) -> pd.DataFrame:
    cur = conn.execute(sql, params or None)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def training_doc(name: str, experiment: str, problem_type: str, **training) -> dict:
    return {"schema_version": 1,
            "project": {"name": name, "experiment_name": experiment, "problem_type": problem_type},
            "deployment": {"cadence": "monthly"},
            "training": {"model_training": {"framework": "sklearn",
                                            "config": {"model": "LogisticRegression", "max_iter": 1000}},
                         **training}}


def churn_training(name: str, experiment: str, **overrides) -> dict:
    training = {"data_source": {"label_table": "customers"},
                "schema": {"target": {"label_column": "churned", "classes": [0, 1], "positive_class": 1},
                           "identifiers": {"primary_key": "customer_id"}},
                "preprocessing": {"custom_transforms": ["lib.features:add_ratio"]},
                "evaluation": {"primary_metric": "roc_auc", "generate_plots": False,
                               "validation_criteria": ["roc_auc >= 0.6"]}}
    training.update(overrides)
    return training_doc(name, experiment, "binary_classification", **training)


def serving_doc(name: str, run_id: str, table: str, output_table: str) -> dict:
    return {"schema_version": 1, "project": {"name": name}, "deployment": {"cadence": "daily"},
            "serving": {"model_source": {"run_id": run_id}, "data_source": {"scoring_table": table},
                        "output": {"destination": "database", "table": output_table,
                                   "include_probabilities": "all"}}}


class Project:
    """The project folder plus handles on the services it runs against."""

    def __init__(self, root: Path, schema: str, prefix: str, experiment: str, pg, s3, client):
        self.root, self.schema, self.prefix, self.experiment = root, schema, prefix, experiment
        self.pg, self.s3, self.client = pg, s3, client

    def write_pipeline(self, doc: dict) -> None:
        name = doc["project"]["name"]
        (self.root / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def run(self, pipeline: str, expect: int = 0) -> tuple[dict, str]:
        """``mbt run --select PIPELINE --target stack``; returns run_results.json and what it printed
        and logged (warnings included)."""
        code, text = run_cli("run", "--select", pipeline, "--target", "stack", "--project-dir", str(self.root))
        assert code == expect, f"mbt run --select {pipeline} exited {code}, expected {expect}\n{text}"
        return json.loads((self.root / "target" / pipeline / "run_results.json").read_text()), text

    def s3_bytes(self, uri: str) -> bytes:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def output(self, results: dict, step: str, name: str) -> str:
        [entry] = [s for s in results["steps"] if s["name"] == step]
        uri = entry["outputs"][name]
        assert uri.startswith(f"s3://{BUCKET}/{self.prefix}/{results['pipeline']}/{results['run_id']}/"), uri
        return uri

    def table(self, results: dict, step: str, name: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.s3_bytes(self.output(results, step, name))))

    def mlflow_artifact(self, run, path: str) -> bytes:
        """An artifact of an MLflow run, read from the S3 bucket behind the tracking server."""
        base = run.info.artifact_uri
        assert base.startswith("mlflow-artifacts:/"), base  # proxied by the server
        return self.s3.get_object(Bucket=MLFLOW_BUCKET, Key=f"{base.removeprefix('mlflow-artifacts:/')}/{path}"
                                  )["Body"].read()

    def model_file(self, run, path: str) -> bytes:
        """A file of the run's logged model (``models:/m-<id>``), read from the S3 artifact bucket."""
        model_id = run.data.tags["mbt_model_uri"].removeprefix("models:/")
        key = f"{run.info.experiment_id}/models/{model_id}/artifacts/{path}"
        return self.s3.get_object(Bucket=MLFLOW_BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def project(tmp_path_factory, stack_env, s3_client, mlflow_tracking_uri):
    import mlflow
    import psycopg

    tag = uuid.uuid4().hex[:10]
    schema, prefix, experiment = f"mbt_test_{tag}", f"tests/{tag}", f"h_model_trust_{tag}"
    pg = psycopg.connect(host=stack_env["MBT_STACK_HOST"], port=int(stack_env["MBT_PG_PORT"]),
                         dbname=stack_env["MBT_PG_DATABASE"], user=stack_env["MBT_PG_USER"],
                         password=stack_env["MBT_PG_PASSWORD"], autocommit=True, connect_timeout=10)
    root = tmp_path_factory.mktemp("trust") / "trust"
    (root / "pipelines").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "features.py").write_text(TRANSFORM_V1)
    profiles = {"trust": {"target": "stack", "outputs": {"stack": {
        "executor": {"type": "local"},
        "storage": {"type": "s3", "config": {"bucket": BUCKET, "prefix": prefix, "conn_id": "mbt_s3"}},
        "data_connector": {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": schema}},
        "mlflow": {"conn_id": "mbt_mlflow"},
        "secrets": {"provider": "env"}}}}}
    (root / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    client = mlflow.MlflowClient(mlflow_tracking_uri)
    pg.execute(f'CREATE SCHEMA "{schema}"')
    try:
        copy_in(pg, schema, "customers", CHURN_COLUMNS + ", churned integer", churn_frame(N_CUSTOMERS))
        iris = iris_frame()
        copy_in(pg, schema, "iris", "row_id text, " + ", ".join(
            f"{c} double precision" for c in iris.columns[1:-1]) + ", species text", iris)
        yield Project(root, schema, prefix, experiment, pg, s3_client, client)
    finally:
        pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pg.close()
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            s3_client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[start:start + 1000]})
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            client.delete_experiment(exp.experiment_id)


@pytest.fixture(scope="module")
def churn(project):
    """Time split on the latest quarter, a fixed threshold, a custom transform from ``lib/``."""
    project.write_pipeline(churn_training(
        "training_trust_churn", project.experiment,
        split={"method": "time", "time_column": "signup_date", "test_size": 0.25},
        evaluation={"primary_metric": "roc_auc", "additional_metrics": ["accuracy", "precision", "recall", "f1"],
                    "threshold": THRESHOLD, "generate_plots": False, "validation_criteria": ["roc_auc >= 0.6"]}))
    results, _ = project.run("training_trust_churn")
    assert results["status"] == "success", results
    return results, project.client.get_run(results["mlflow_run_id"])


@pytest.fixture(scope="module")
def churn_served(project, churn):
    """The test-set customers scored after ``lib/features.py`` was edited; predictions in PostgreSQL."""
    results, run = churn
    test_ids = project.table(results, "split_data", "test_set")["customer_id"].tolist()
    project.pg.execute(f'CREATE TABLE "{project.schema}".to_score AS SELECT customer_id, signup_date, tenure, '
                       f'monthly_charges, total_charges, contract_type FROM "{project.schema}".customers '
                       "WHERE customer_id = ANY(%s)", (test_ids,))
    (project.root / "lib" / "features.py").write_text(TRANSFORM_V2)  # the edit after training
    project.write_pipeline(serving_doc("serving_trust_churn", run.info.run_id, "to_score", "churn_predictions"))
    served, text = project.run("serving_trust_churn")
    assert served["status"] == "success", served
    preds = query(project.pg, f'SELECT p.*, c.churned FROM "{project.schema}".churn_predictions p '
                              f'JOIN "{project.schema}".customers c USING (customer_id) '
                              "WHERE p.serving_run_id = %s ORDER BY customer_id", served["run_id"])
    return served, text, preds


def test_time_split_never_trains_on_a_later_row(project, churn):
    results, run = churn
    train = project.table(results, "split_data", "train_set")
    test = project.table(results, "split_data", "test_set")
    warehouse = query(project.pg, f'SELECT customer_id, signup_date FROM "{project.schema}".customers')
    assert len(train) + len(test) == len(warehouse) == N_CUSTOMERS
    assert set(train["customer_id"]).isdisjoint(test["customer_id"])
    assert set(train["customer_id"]) | set(test["customer_id"]) == set(warehouse["customer_id"])
    boundary = test["signup_date"].min()
    assert train["signup_date"].max() < boundary  # strictly: the rows tied at the boundary are all in test
    later = warehouse[warehouse["signup_date"] >= boundary]
    assert set(later["customer_id"]) == set(test["customer_id"])  # the test set is exactly the latest rows
    assert N_CUSTOMERS * 0.25 <= len(test) < N_CUSTOMERS * 0.25 + 20  # the latest quarter, plus boundary ties
    # a random split of this table (not stored in time order) would almost surely mix the periods
    assert not warehouse["signup_date"].is_monotonic_increasing
    params = run.data.params
    assert (params["split.method"], params["split.time_column"]) == ("time", "signup_date")
    assert (int(params["rows.train"]), int(params["rows.test"])) == (len(train), len(test))
    plan = {c["column"]: c["role"] for c in json.loads(project.mlflow_artifact(run, "column_plan.json"))["columns"]}
    assert plan["signup_date"] == "time" and plan["charges_per_month"] == "feature"
    pre = json.loads(project.mlflow_artifact(run, "preprocessor.json"))
    assert not any(c.startswith("signup_date") for c in pre["output_columns"])


def test_binary_threshold_decides_the_predictions(project, churn, churn_served):
    _, run = churn
    _, _, preds = churn_served
    assert run.data.params["threshold"] == str(THRESHOLD)
    meta = json.loads(project.model_file(run, "artifacts/model/mbt_model.json"))
    assert meta["threshold"] == THRESHOLD
    p1 = preds["prediction_probability_1"]
    assert (preds["prediction"] == (p1 >= THRESHOLD).astype(int)).all()
    between = preds[(p1 >= 0.5) & (p1 < THRESHOLD)]
    assert len(between) >= 5 and (between["prediction"] == 0).all()  # 1 at the default 0.5, 0 here
    assert (preds.loc[p1 >= THRESHOLD, "prediction"] == 1).sum() >= 5
    # evaluate applied the same threshold: the server's metrics are those of these very predictions
    # (the scoring table is the test set)
    y, yhat = preds["churned"], preds["prediction"]
    tp = int(((y == 1) & (yhat == 1)).sum())
    metrics = run.data.metrics
    assert metrics["precision"] == pytest.approx(tp / int((yhat == 1).sum()))
    assert metrics["recall"] == pytest.approx(tp / int((y == 1).sum()))
    assert metrics["accuracy"] == pytest.approx(float((y == yhat).mean()))
    assert metrics["recall"] < float(((y == 1) & (p1 >= 0.5)).sum()) / int((y == 1).sum())  # not 0.5's


def test_serving_runs_the_transform_code_logged_with_the_model(project, churn, churn_served, tmp_path):
    results, run = churn
    served, text, preds = churn_served
    assert "lib/features.py changed since the model was trained" in text
    assert project.model_file(run, "code/lib/features.py").decode() == TRANSFORM_V1  # in the S3 artifact bucket
    # the features serving computed (S3) are those of the logged code, not of the edited lib/
    pre = json.loads(project.mlflow_artifact(run, "preprocessor.json"))
    rows = query(project.pg, f'SELECT * FROM "{project.schema}".to_score ORDER BY customer_id')
    old, new = tmp_path / "old", tmp_path / "new"
    for where, code in ((old, TRANSFORM_V1), (new, TRANSFORM_V2)):
        (where / "lib").mkdir(parents=True)
        (where / "lib" / "__init__.py").write_text("")
        (where / "lib" / "features.py").write_text(code)
    spec = ["lib.features:add_ratio"]
    expected = preprocessing.transform(custom_transforms.apply(rows.copy(), spec, old), pre)
    edited = preprocessing.transform(custom_transforms.apply(rows.copy(), spec, new), pre)
    assert not np.allclose(edited["charges_per_month"], expected["charges_per_month"])
    features = project.table(served, "apply_transforms", "features").sort_values("customer_id")
    pd.testing.assert_frame_equal(features[pre["output_columns"]].reset_index(drop=True),
                                  expected.reset_index(drop=True), check_dtype=False)
    # and the probabilities in PostgreSQL are the trained model's on those features
    with tarfile.open(fileobj=io.BytesIO(project.s3_bytes(project.output(results, "train_model", "model")))) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    [model_file] = (tmp_path / "model").rglob("model.joblib")
    model = joblib.load(model_file)
    meta = json.loads(next((tmp_path / "model").rglob("mbt_model.json")).read_text())
    proba = model.predict_proba(expected[meta["feature_columns"]])[:, list(model.classes_).index(1)]
    assert preds["customer_id"].tolist() == rows["customer_id"].tolist()
    np.testing.assert_allclose(preds["prediction_probability_1"], proba, rtol=1e-12, atol=1e-15)
    assert preds["model_run_id"].unique().tolist() == [run.info.run_id]


def test_per_class_probabilities_sum_to_one(project, churn_served):
    _, _, preds = churn_served
    total = preds["prediction_probability_0"] + preds["prediction_probability_1"]
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    np.testing.assert_allclose(preds["prediction_probability"], preds["prediction_probability_1"])

    project.write_pipeline(training_doc(
        "training_trust_iris", project.experiment, "multiclass_classification",
        data_source={"label_table": "iris"},
        schema={"target": {"label_column": "species", "classes": ["setosa", "versicolor", "virginica"]},
                "identifiers": {"primary_key": "row_id"}},
        split={"test_size": 0.3, "seed": 3},
        evaluation={"primary_metric": "accuracy", "generate_plots": False}))
    trained, _ = project.run("training_trust_iris")
    project.pg.execute(f'CREATE VIEW "{project.schema}".iris_to_score AS SELECT row_id, sepal_length_cm, '
                       f'sepal_width_cm, petal_length_cm, petal_width_cm FROM "{project.schema}".iris')
    project.write_pipeline(serving_doc("serving_trust_iris", trained["mlflow_run_id"], "iris_to_score",
                                       "iris_predictions"))
    served, _ = project.run("serving_trust_iris")
    iris = query(project.pg, f'SELECT p.*, i.species FROM "{project.schema}".iris_predictions p '
                             f'JOIN "{project.schema}".iris i USING (row_id) WHERE p.serving_run_id = %s',
                 served["run_id"])
    classes = ["setosa", "versicolor", "virginica"]
    columns = [f"prediction_probability_{c}" for c in classes]
    assert len(iris) == 150 and set(columns) <= set(iris.columns)
    proba = iris[columns].to_numpy(dtype=float)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (iris["prediction"] == [classes[i] for i in proba.argmax(axis=1)]).all()
    assert (iris["prediction"] == iris["species"]).mean() > 0.9


def test_failed_criteria_exit_3_and_a_complete_run_on_the_server(project):
    project.write_pipeline(churn_training(
        "training_trust_strict", project.experiment, split={"test_size": 0.25, "seed": 5},
        evaluation={"primary_metric": "roc_auc", "generate_plots": False,
                    "validation_criteria": ["roc_auc >= 0.9999", "accuracy >= 0.5"]}))
    results, text = project.run("training_trust_strict", expect=3)
    assert "roc_auc >= 0.9999 (actual 0." in text and "mbt_status=failed_criteria" in text
    assert "Traceback" not in text
    statuses = {s["name"]: s["status"] for s in results["steps"]}
    assert results["status"] == "failed" and statuses["evaluate"] == "failed", results
    assert statuses.get("log_run") != "success"
    exp = project.client.get_experiment_by_name(project.experiment)
    [run] = project.client.search_runs([exp.experiment_id], f"tags.mbt_run_id = '{results['run_id']}'")
    assert run.info.status == "FAILED" and run.data.tags["mbt_status"] == "failed_criteria"
    assert f"logged to MLflow run {run.info.run_id}" in text
    logged = json.loads(project.mlflow_artifact(run, "metrics.json"))  # in the server's S3 bucket
    stored = json.loads(project.s3_bytes(f"s3://{BUCKET}/{project.prefix}/training_trust_strict/"
                                         f"{results['run_id']}/evaluate/metrics.json"))  # pipeline storage
    assert stored["metrics"] == logged["metrics"]
    assert set(run.data.metrics) == {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"}
    assert run.data.metrics == pytest.approx({k: v for k, v in logged["metrics"].items() if v is not None})
    assert [(r["criterion"], r["passed"]) for r in logged["validation"]] == [
        ("roc_auc >= 0.9999", False), ("accuracy >= 0.5", True)]
    assert 0.6 < run.data.metrics["roc_auc"] < 0.9999
    params = run.data.params
    assert int(params["rows.train"]) + int(params["rows.test"]) == N_CUSTOMERS
    assert params["column.charges_per_month"].startswith("feature")
    assert "mbt_model_uri" not in run.data.tags  # no model for a failed run
