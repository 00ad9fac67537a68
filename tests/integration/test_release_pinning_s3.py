"""A deploy in the middle of a DAG run does not change the release its remaining tasks execute.

Real services and code paths: the manifests are deployed as releases to the stack's S3
(SeaweedFS); the DAGs are built from them by ``dag_factory.build_dags`` as the loader does
(so tasks parsed after the deploy carry the new hash); ``MBTStepOperator.execute`` runs the
steps (local-file data of ``mbt init``, local artifacts). Only the task instance's two XCom calls
are a dict here (the operator runs outside a task supervisor).

v1 and v2 differ in ``training.split.test_size`` (0.2 vs 0.5), which only ``split_data`` reads:
run A executes ``load_data`` on v1, v2 is deployed, and ``split_data`` (built from v2) must
still split 20 %; run B, started after the deploy, splits 50 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

import test_airflow_dag_test_s3_store as s3_store

from airflow_mbt.manifest import Manifest

pytestmark = pytest.mark.services

MBT = Path(sys.executable).with_name("mbt")
TRAIN = "training_churn_model_v1"
stack_conn = s3_store.stack_conn  # the stack's S3 connection (module fixture)


@pytest.fixture
def prefix(stack_conn, monkeypatch, tmp_path):
    from airflow_mbt.manifests.backends import s3_location

    monkeypatch.setenv("AIRFLOW_CONN_MBT_S3", stack_conn)
    monkeypatch.setenv("MBT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MBT_CACHE_TTL_SECONDS", "0")
    uri = f"s3://mbt-pipeline-artifacts/h-rel-pinning/{uuid.uuid4().hex[:12]}/"
    yield uri
    s3_location(uri, "mbt_s3").storage.delete_prefix("")


class _TI:
    """The XCom calls of the task SDK's RuntimeTaskInstance, on a dict shared by one DAG run."""

    def __init__(self, xcom: dict, task_id: str):
        self.xcom, self.task_id, self.try_number = xcom, task_id, 1

    def xcom_pull(self, task_ids, key):
        return [self.xcom.get((t, key)) for t in task_ids]

    def xcom_push(self, key, value):
        self.xcom[(self.task_id, key)] = value


def _run_task(dag, task_id: str, run_id: str, xcom: dict) -> dict:
    from airflow.models.dagrun import DagRun

    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = DagRun(dag_id=dag.dag_id, run_id=run_id, logical_date=when, run_after=when,
                     data_interval=(when, when), run_type="manual")
    task = dag.get_task(task_id)
    context = {"ti": _TI(xcom, task_id), "dag_run": dag_run, "logical_date": when,
               "data_interval_start": when, "data_interval_end": when}
    task.render_template_fields(context)
    return task.execute(context)


def _test_fraction(project: Path, result: dict) -> float:
    import pandas as pd

    outputs = result["outputs"]
    sizes = {}
    for name in ("train_set", "test_set"):
        uri = outputs[name]
        path = Path(uri) if Path(uri).is_absolute() else project / uri
        sizes[name] = len(pd.read_parquet(path))
    return sizes["test_set"] / (sizes["train_set"] + sizes["test_set"])


def test_deploy_mid_run_keeps_the_runs_release(prefix, tmp_path, monkeypatch):
    from airflow_mbt.dag_factory import build_dags
    from airflow_mbt.manifests.releases import deploy_manifests

    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    subprocess.run([str(MBT), "init", "pin-project"], cwd=tmp_path, env=env, check=True, capture_output=True)
    project = tmp_path / "pin-project"
    subprocess.run([str(MBT), "compile", TRAIN, "--target", "dev"], cwd=project, env=env, check=True,
                   capture_output=True)
    v1 = Manifest.read(project / "target" / TRAIN / "manifest.json")
    data = json.loads(v1.to_json())
    data["config"]["training"]["split"]["test_size"] = 0.5
    v2 = Manifest.build(data)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MBT_PROJECT_DIR", str(project))

    deploy_manifests([v1], prefix, conn_id="mbt_s3")
    dag = build_dags(prefix, conn_id="mbt_s3")[TRAIN]
    xcom_a: dict = {}
    _run_task(dag, "load_data", "manual__run_a", xcom_a)
    assert xcom_a[("load_data", "mbt_release")] == v1.content_hash

    [change] = deploy_manifests([v2], prefix, conn_id="mbt_s3")  # the deploy lands mid-run
    assert change["action"] == "update"
    reparsed = build_dags(prefix, conn_id="mbt_s3")[TRAIN]
    assert reparsed.get_task("split_data").manifest_hash == v2.content_hash
    split_a = _run_task(reparsed, "split_data", "manual__run_a", xcom_a)
    assert reparsed.get_task("split_data").manifest_hash == v1.content_hash  # executed the pinned release
    assert _test_fraction(project, split_a) == pytest.approx(0.2, abs=0.02)

    xcom_b: dict = {}  # a run started after the deploy executes the new release
    _run_task(reparsed, "load_data", "manual__run_b", xcom_b)
    split_b = _run_task(build_dags(prefix, conn_id="mbt_s3")[TRAIN], "split_data", "manual__run_b", xcom_b)
    assert xcom_b[("load_data", "mbt_release")] == v2.content_hash
    assert _test_fraction(project, split_b) == pytest.approx(0.5, abs=0.02)
