"""Releases on live Airflow: deploy, change, deploy again, roll back, undeploy (issue 13).

A tiny sklearn training pipeline on the stack's ``customers`` table (dag_id ``h_rel_release_e2e``,
MLflow experiment ``h_rel_releases``) is deployed with the ``mbt`` CLI to the manifests prefix
the Airflow instance reads (``MBT_MANIFESTS_URI``; else the one ``scripts/airflow.sh`` gives the
instance), then:

1. v1 is deployed, v2 (another ``max_depth``) is deployed over it without ``--force``: the same
   dag_id runs v2 (the scheduled run of the unpause; its root task pins the release: XCom
   ``mbt_release``) and v1 is in the history;
2. ``mbt rollback``: the next run executes v1;
3. ``mbt undeploy``: the DAG leaves Airflow's DAG list and API (stale, not listed).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import yaml
from spec_workflow import cli_env, sh
from stack_clients import s3_client, s3_delete_prefix

# Unique per session: run ids derive from (pipeline, Airflow run id) and the MLflow database
# outlives a session's S3, so a fixed name would meet an earlier session's MLflow run of the same
# scheduled date (its artifacts gone) and reuse it as a retry would.
NAME = f"h_rel_release_e2e_{uuid.uuid4().hex[:6]}"
RUN_TIMEOUT = 300


def manifests_uri() -> str:
    """What ``scripts/airflow.sh`` gives the instance the tests talk to."""
    instance = os.environ.get("MBT_AIRFLOW_INSTANCE")
    default = f"s3://mbt-pipeline-artifacts/manifests-{instance}/" if instance else \
        "s3://mbt-pipeline-artifacts/manifests/"
    uri = os.environ.get("MBT_MANIFESTS_URI") or default
    return uri if uri.endswith("/") else uri + "/"


PIPELINE = f"""\
base_pipeline: _base_churn
project:
  name: {NAME}
  experiment_name: h_rel_releases
  tags: [h-rel, releases]
deployment: {{mode: batch, cadence: monthly}}
training:
  split: {{test_size: 0.3, seed: 7, stratify: true}}
  model_training:
    framework: sklearn
    config: {{model: DecisionTreeClassifier, max_depth: MAX_DEPTH}}
  evaluation:
    primary_metric: roc_auc
    generate_plots: false
    validation_criteria: []
"""


def _project(workdir: Path, env: dict) -> Path:
    sh("mbt init rel-project", workdir, env)
    project = workdir / "rel-project"
    for path in (project / "pipelines").glob("*_churn_model_v1.yaml"):
        path.unlink()
    path = project / "profiles.yaml"
    doc = yaml.safe_load(path.read_text())
    prod = next(iter(doc.values()))["outputs"]["prod"]
    prod["executor"] = {"type": "local"}  # no Kubernetes here: MBTStepOperator in the worker
    prod["manifests"]["uri"] = manifests_uri()
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


def _deploy(project: Path, env: dict, max_depth: int, expect: str) -> str:
    (project / "pipelines" / f"{NAME}.yaml").write_text(PIPELINE.replace("MAX_DEPTH", str(max_depth)))
    sh(f"mbt compile {NAME} --target prod", project, env)
    out = sh(f"mbt deploy --target prod --select {NAME}", project, env)
    assert f"{expect:<9} {NAME}" in out, out
    return json.loads((project / "target" / NAME / "manifest.json").read_text())["content_hash"]


def _wait_for_release(api, content_hash: str, timeout: float = 180) -> None:
    """Until the dag-processor has parsed the DAG of that release (its doc shows the hash)."""
    deadline = time.monotonic() + timeout
    while content_hash not in (api.try_get(f"/api/v2/dags/{NAME}/details") or {}).get("doc_md", ""):
        assert time.monotonic() < deadline, f"Airflow did not show release {content_hash} of {NAME} in {timeout}s"
        time.sleep(3)


def _pinned(api, run_id: str) -> str:
    """Wait for the run to succeed; the release its root task pinned."""
    api.wait_for_run(NAME, run_id, timeout=RUN_TIMEOUT)
    return api.xcom(NAME, run_id, "load_data", key="mbt_release")


def _first_run(api, timeout: float = 120) -> str:
    """The run the scheduler creates when the DAG is unpaused (catchup=False: the latest tick)."""
    deadline = time.monotonic() + timeout
    while not (runs := api.dag_runs(NAME)):
        assert time.monotonic() < deadline, f"no DAG run of {NAME} {timeout}s after unpausing it"
        time.sleep(3)
    return runs[0]["dag_run_id"]


def _json_in(output: str) -> dict:
    """The JSON document printed on its own lines amid log lines."""
    start = output.index("\n{") + 1 if not output.startswith("{") else 0
    return json.JSONDecoder().raw_decode(output[start:])[0]


def _reset(api, s3, bucket: str, prefix: str) -> None:
    s3_delete_prefix(s3, bucket, f"{prefix}{NAME}/")
    api.retire_dag(NAME)


def test_deploy_change_rollback_undeploy_on_live_airflow(airflow, stack_env, tmp_path):
    env = cli_env(stack_env)
    s3 = s3_client(stack_env)
    bucket, _, prefix = manifests_uri()[len("s3://"):].partition("/")
    _reset(airflow, s3, bucket, prefix)
    project = _project(tmp_path, env)
    try:
        v1 = _deploy(project, env, 3, "create")
        airflow.wait_for_dag(NAME, timeout=240)
        v2 = _deploy(project, env, 4, "update")  # a change is a new release: no --force
        assert v2 != v1
        _wait_for_release(airflow, v2)
        airflow.unpause(NAME)  # the scheduled run it starts executes the new release
        assert _pinned(airflow, _first_run(airflow)) == v2
        history = _json_in(sh(f"mbt releases {NAME} --target prod --json", project, env))
        assert [e["content_hash"] for e in history["events"]] == [v1, v2] and history["current"] == v2

        sh(f"mbt rollback {NAME} --target prod", project, env)
        _wait_for_release(airflow, v1)
        assert _pinned(airflow, airflow.trigger(NAME)["dag_run_id"]) == v1

        sh(f"mbt undeploy {NAME} --target prod", project, env)
        deadline = time.monotonic() + 180
        while (dag := airflow.try_get(f"/api/v2/dags/{NAME}")) is not None and not dag.get("is_stale"):
            assert time.monotonic() < deadline, f"DAG {NAME} still active 180 s after mbt undeploy"
            time.sleep(3)
        listed = airflow.get("/api/v2/dags", dag_id_pattern=NAME)["dags"]
        assert [d["dag_id"] for d in listed] == [], listed
    finally:
        _reset(airflow, s3, bucket, prefix)
