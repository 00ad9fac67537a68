"""MBTKubernetesStepOperator: the pod it would create (no cluster: ``build_pod_request_obj(dry_run=True)``)
and that no secret value reaches the pod spec or the serialized DAG."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from airflow_manifests import build_manifest

from airflow_mbt.dag_factory import build_dag
from airflow_mbt.errors import MBTInputError

SECRET = "s3cr3t-value"
PINNED = "s3://mbt-pipeline-artifacts/manifests/train_k8s/abc.json"


@pytest.fixture
def k8s_dag(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MBT_WAREHOUSE", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "login": "mbt", "password": SECRET, "schema": "warehouse"}))
    monkeypatch.setenv("PG_PASSWORD", SECRET)
    manifest = build_manifest("train_k8s", executor="kubernetes",
                              resources={"train_model": {"cpu": "2", "memory": "4Gi"}})
    return manifest, build_dag(manifest, PINNED, manifest_conn_id="mbt_s3")


def _rendered_pod(op, try_number: int = 1):
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = DagRun(dag_id=op.dag_id, run_id="scheduled__2026-03-01T00:00:00+00:00", logical_date=when,
                     run_after=when, data_interval=(when, when), run_type="scheduled")
    ti = TaskInstance(op, run_id=dag_run.run_id, dag_version_id=None)
    ti.try_number = try_number
    op.render_template_fields({"dag_run": dag_run, "ti": ti})
    return op.build_pod_request_obj(dry_run=True), dag_run


def _serialize(pod) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def test_pod_image_namespace_service_account_and_args(k8s_dag):
    from airflow_mbt.runtime.run_id import run_id_from_airflow

    manifest, dag = k8s_dag
    pod, dag_run = _rendered_pod(dag.get_task("train_model"), try_number=2)
    run_id = run_id_from_airflow("train_k8s", dag_run.run_id, dag_run.logical_date)
    spec = _serialize(pod)
    assert spec["metadata"]["namespace"] == "mbt-pipelines"
    assert spec["spec"]["serviceAccountName"] == "mbt-runner"
    [container] = spec["spec"]["containers"]
    assert container["image"] == "zot-registry:5050/mbt-runner:latest"
    assert container["command"] == ["mbt"]
    assert container["args"] == ["step", "execute", "--pipeline", "train_k8s", "--step", "train_model",
                                 "--target", "prod", "--run-id", run_id, "--manifest", PINNED,
                                 "--manifest-hash", manifest.content_hash, "--try-number", "2",
                                 "--logical-date", "2026-03-01T00:00:00+00:00",
                                 "--interval-start", "2026-03-01T00:00:00+00:00",
                                 "--interval-end", "2026-03-01T00:00:00+00:00", "--run-type", "scheduled",
                                 "--dag-id", "train_k8s", "--airflow-run-id", dag_run.run_id,
                                 "--manifest-conn-id", "mbt_s3"]
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["MBT_RUN_ID"]["value"] == run_id
    assert env["MBT_TRY_NUMBER"]["value"] == "2"


def test_connections_come_from_secret_key_refs(k8s_dag):
    _, dag = k8s_dag
    pod, _ = _rendered_pod(dag.get_task("load_data"))
    env = {e["name"]: e for e in _serialize(pod)["spec"]["containers"][0]["env"]}
    assert env["AIRFLOW_CONN_MBT_WAREHOUSE"] == {
        "name": "AIRFLOW_CONN_MBT_WAREHOUSE",
        "valueFrom": {"secretKeyRef": {"name": "mbt-secrets", "key": "mbt_warehouse"}}}
    assert env["AIRFLOW_CONN_MBT_S3"]["valueFrom"]["secretKeyRef"] == {"name": "mbt-s3-secret", "key": "mbt_s3"}
    assert "value" not in env["AIRFLOW_CONN_MBT_WAREHOUSE"]


def test_steps_without_resources_get_none(k8s_dag):
    _, dag = k8s_dag
    pod, _ = _rendered_pod(dag.get_task("evaluate"))
    assert not _serialize(pod)["spec"]["containers"][0].get("resources")


def test_same_run_id_for_every_task_and_retry(k8s_dag):
    _, dag = k8s_dag
    ids = set()
    for task_id, try_number in (("load_data", 1), ("train_model", 1), ("train_model", 3)):
        pod, _ = _rendered_pod(dag.get_task(task_id), try_number)
        ids |= {e["value"] for e in _serialize(pod)["spec"]["containers"][0]["env"] if e["name"] == "MBT_RUN_ID"}
    assert len(ids) == 1


def test_no_secret_value_in_pod_or_serialized_dag(k8s_dag):
    from airflow.serialization.serialized_objects import DagSerialization

    _, dag = k8s_dag
    blobs = [json.dumps(_serialize(_rendered_pod(dag.get_task(t.task_id))[0])) for t in dag.tasks]
    blobs.append(json.dumps(DagSerialization.to_dict(dag), default=str))
    for blob in blobs:
        assert SECRET not in blob
    # the references are serialized (so the check can fail), the values are not
    assert "PG_PASSWORD" in blobs[-1] and "mbt-secrets" in blobs[-1]


def test_missing_image_and_bad_connection_secret_are_input_errors():
    from airflow_mbt.operators.kubernetes import MBTKubernetesStepOperator, connection_env

    with pytest.raises(MBTInputError, match="needs an image") as err:
        MBTKubernetesStepOperator(pipeline="p", step="load_data", manifest_uri="x", manifest_hash="h",
                                  target="prod", executor_config={"namespace": "n"})
    assert err.value.field == "outputs.prod.executor.config.image"
    with pytest.raises(MBTInputError, match="connection_secrets"):
        connection_env({"bad-id": "secret"})


def test_pod_spec_is_valid_kubernetes(k8s_dag):
    import kubernetes_validate

    _, dag = k8s_dag
    spec = _serialize(_rendered_pod(dag.get_task("train_model"))[0])
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(spec, version, strict=True)


def _finished_pod(op, exit_code: int):
    from kubernetes.client import models as k8s

    state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code))
    status = k8s.V1PodStatus(phase="Failed", container_statuses=[k8s.V1ContainerStatus(
        name=op.base_container_name, state=state, image="x", image_id="", ready=False, restart_count=0)])
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="mbt-pod", namespace="mbt-pipelines"), status=status)


@pytest.mark.parametrize("code,retry", [(2, False), (3, False), (1, True), (137, True)])
def test_pod_exit_code_decides_retry(k8s_dag, code, retry):
    """`mbt step execute` exits 2 on input errors and 3 on unfixable failures: no retry for those."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from airflow_mbt.operators.kubernetes import exit_code, pod_failure

    _, dag = k8s_dag
    op = dag.get_task("load_data")
    pod = _finished_pod(op, code)
    assert exit_code(pod, op.base_container_name) == code
    original = AirflowException("Pod mbt-pod returned a failure.")
    raised = pod_failure(original, pod, op.base_container_name, "train_k8s.load_data")
    assert isinstance(raised, AirflowFailException) is (not retry)
    assert (raised is original) is retry
    assert exit_code(None, op.base_container_name) is None
