"""The model lifecycle on the stack's MLflow server (marker ``services``): log_run registers a
version (tags, ``challenger``), promote re-scores the champion on the challenger's test set and
moves ``champion`` only when the challenger wins, approval keeps the alias locally, and serving by
alias resolves ONCE per run, keeping its version when the alias moves mid-run."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ml_pipeline_fixtures import (dev_target, fetch, make_manifest, make_project, run_steps,  # noqa: E402
                                  scratch_experiment, serving_config, training_config)

from airflow_mbt.manifest import Manifest  # noqa: E402
from airflow_mbt.pipeline.compiler import manifest_steps  # noqa: E402
from airflow_mbt.runtime.context import TargetRuntime  # noqa: E402
from airflow_mbt.runtime.executor import execute_step  # noqa: E402
from airflow_mbt.runtime.run_id import new_run_id  # noqa: E402
from airflow_mbt.tracking import registry  # noqa: E402

pytestmark = pytest.mark.services

MLFLOW_URI = os.environ.get("MBT_MLFLOW_URI", "http://127.0.0.1:5000")
CONN_ID = "h_life_tracking_test"
WEAK = {"model": "DecisionTreeClassifier", "max_depth": 1}  # a stump: clearly worse than the forest


@pytest.fixture
def server_target(mlflow_conn_env):
    mlflow_conn_env(CONN_ID, MLFLOW_URI)
    return dev_target(mlflow={"conn_id": CONN_ID})


@pytest.fixture
def model_name():
    name = f"h_life_churn_{uuid.uuid4().hex[:8]}"
    yield name
    client = mlflow.MlflowClient(MLFLOW_URI)
    try:
        client.delete_registered_model(name)
    except mlflow.exceptions.MlflowException:
        pass


@pytest.fixture
def experiment():
    with scratch_experiment(MLFLOW_URI, prefix="h_life") as name:
        yield name


def training(experiment: str, target: dict, name: str, approval: str = "none", model: dict | None = None) -> Manifest:
    registration = {"model_name": name, "alias": "champion", "promote": "if_better", "compare_on": "roc_auc",
                    "approval": approval}
    config = training_config(project={"experiment_name": experiment}, training={
        "registration": registration, "evaluation": {"generate_plots": False}})
    if model:
        config["training"]["model_training"]["config"] = model
    base = make_manifest(config, target)
    return Manifest.build({**dict(base.data), "steps": manifest_steps("training", {}, registration=registration)})


def train(root: Path, manifest: Manifest) -> tuple[str, dict]:
    run_id = run_steps(manifest, root)
    last = manifest.steps[-1].name
    return run_id, fetch(root, manifest, run_id, "promotion_applied" if last == "apply_promotion" else "promotion")


def test_registration_gate_and_approval(tmp_path, server_target, experiment, model_name):
    root = make_project(tmp_path, n_customers=400, n_score=100)
    client = mlflow.MlflowClient(MLFLOW_URI)

    # 1. the first model has no champion to beat: registered, challenger, then champion
    first = training(experiment, server_target, model_name)
    assert [s.name for s in first.steps][-2:] == ["log_run", "promote"]
    run_a, promo_a = train(root, first)
    mlflow_a = fetch(root, first, run_a, "mlflow_run")
    assert mlflow_a["model_name"] == model_name and promo_a["decision"] == "promoted"
    v1 = client.get_model_version(model_name, mlflow_a["model_version"])
    assert v1.run_id == mlflow_a["run_id"]
    assert v1.tags["mbt_run_id"] == run_a and v1.tags["pipeline_name"] == first.name
    assert v1.tags["mbt_manifest_hash"] == first.content_hash
    assert float(v1.tags["metric.roc_auc"]) == pytest.approx(promo_a["challenger"]["value"], rel=1e-5)
    assert client.get_model_version_by_alias(model_name, "champion").version == v1.version
    # one MLflow run for the whole pipeline run: opened by load_data with its input dataset, ended by log_run
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              filter_string=f"tags.mbt_run_id = '{run_a}'")
    assert [r.info.run_id for r in runs] == [mlflow_a["run_id"]] and runs[0].info.status == "FINISHED"
    (dataset,) = [d.dataset for d in runs[0].inputs.dataset_inputs]
    assert dataset.source_type == "mbt_data_source" and dataset.digest
    assert json.loads(dataset.source)["label_table"] == "customers"

    # 2. a worse model: challenger alias moves to it, the failed gate leaves champion on v1
    weak = training(experiment, server_target, model_name, model=WEAK)
    run_b, promo_b = train(root, weak)
    assert promo_b["decision"] == "not_promoted", promo_b
    assert promo_b["champion"]["version"] == v1.version
    assert promo_b["champion"]["value"] > promo_b["challenger"]["value"]  # re-scored on B's test set
    v2 = promo_b["challenger"]["version"]
    assert client.get_model_version_by_alias(model_name, "champion").version == v1.version
    assert client.get_model_version_by_alias(model_name, "challenger").version == v2
    assert client.get_model_version(model_name, v2).tags["mbt_promotion"] == "not_promoted"

    # 3. promote: always with approval required: locally nothing moves, the decision says why
    approve = training(experiment, server_target, model_name, approval="required", model=WEAK)
    approve = Manifest.build({**dict(approve.data), "config": {**dict(approve.data["config"]), "training": {
        **dict(approve.data["config"]["training"]),
        "registration": {**approve.data["config"]["training"]["registration"], "promote": "always"}}}})
    assert [s.name for s in approve.steps][-2:] == ["promote", "apply_promotion"]
    _, promo_c = train(root, approve)
    assert promo_c["decision"] == "awaiting_approval" and promo_c["alias_moved"] is False
    assert client.get_model_version_by_alias(model_name, "champion").version == v1.version

    # 4. serving by alias: resolved once; the alias moving mid-run does not change the version used
    serving_cfg = serving_config("unused", project={"experiment_name": experiment})
    serving_cfg["serving"]["model_source"] = {"registry": "mlflow", "model_name": model_name, "alias": "champion"}
    serving = make_manifest(serving_cfg, server_target)
    runtime = TargetRuntime(target=serving.target, project_dir=root)
    serve_id = new_run_id()
    before = registry.CALLS["resolve"]
    try:
        execute_step(serving, "load_model", serve_id, runtime)
        client.set_registered_model_alias(model_name, "champion", v2)  # someone promotes meanwhile
        for step in [s.name for s in serving.steps][1:]:
            execute_step(serving, step, serve_id, runtime)
    finally:
        runtime.close()
    assert registry.CALLS["resolve"] - before == 1  # one registry call per run, not per step/chunk
    ref = fetch(root, serving, serve_id, "model_ref")
    assert ref == {"model_name": model_name, "alias": "champion", "version": v1.version, "run_id": v1.run_id}
    served = pd.read_csv(root / "predictions.csv")
    assert len(served) == 100 and set(served["model_run_id"]) == {v1.run_id}


def test_unknown_alias_is_an_input_error(tmp_path, server_target, model_name):
    from airflow_mbt.errors import MBTInputError

    root = make_project(tmp_path, n_customers=50, n_score=10)
    cfg = serving_config("unused")
    cfg["serving"]["model_source"] = {"registry": "mlflow", "model_name": model_name, "alias": "champion"}
    with pytest.raises(MBTInputError) as err:
        run_steps(make_manifest(cfg, server_target), root, names=["load_model"])
    assert err.value.field == "serving.model_source" and "has no alias 'champion'" in err.value.message


def _delete_model_files(client: mlflow.MlflowClient, name: str, version: str) -> int:
    """Remove a registered version's model files from the stack's S3 (what a reset artifact store
    or a lifecycle rule does); returns how many objects went."""
    import boto3

    source = client.get_model_version(name, version).source  # models:/m-<id>
    location = client.get_logged_model(source.split("/")[-1]).artifact_location
    assert location.startswith("mlflow-artifacts:/"), location
    prefix = location.removeprefix("mlflow-artifacts:/").lstrip("/")
    s3 = boto3.client("s3", endpoint_url=os.environ.get("MBT_S3_ENDPOINT_URL", "http://127.0.0.1:8333"),
                      aws_access_key_id="mbt_local_access_key", aws_secret_access_key="mbt_local_secret_key_2026",
                      region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mbt-mlflow-artifacts",
                                                                               Prefix=prefix)
            for o in page.get("Contents", [])]
    for key in keys:
        s3.delete_object(Bucket="mbt-mlflow-artifacts", Key=key)
    return len(keys)


def test_champion_without_model_files_is_replaced(tmp_path, server_target, experiment, model_name):
    """A champion whose files are gone cannot serve: the gate says so and the challenger takes the
    alias, even a weaker one (no crash, no retry loop on a permanent condition)."""
    root = make_project(tmp_path, n_customers=300, n_score=50)
    client = mlflow.MlflowClient(MLFLOW_URI)
    first = training(experiment, server_target, model_name)
    _, promo_a = train(root, first)
    v1 = promo_a["challenger"]["version"]
    assert promo_a["decision"] == "promoted"
    assert _delete_model_files(client, model_name, v1) > 0

    _, promo_b = train(root, training(experiment, server_target, model_name, model=WEAK))
    assert promo_b["decision"] == "promoted", promo_b
    assert promo_b["champion"]["version"] == v1 and promo_b["champion"]["value"] is None
    assert f"champion version {v1} cannot be loaded" in promo_b["reason"]
    assert "missing from its artifact store" in promo_b["champion"]["unloadable"]
    assert client.get_model_version_by_alias(model_name, "champion").version == promo_b["challenger"]["version"]
