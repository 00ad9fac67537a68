"""MBTKubernetesStepOperator and the model lifecycle (issue 11): the pods of ``promote`` and
``apply_promotion`` ask ``mbt step execute`` for the XCom file and carry the provider's xcom
sidecar; the step result the sidecar reads back is the task's XCom value, and the model asset's
event goes to the ``AssetAlias`` outlet exactly when the summary says the alias moved.

No cluster: pods are rendered with ``build_pod_request_obj(dry_run=True)``; the pod run itself
(the provider's ``execute_sync`` / ``trigger_reentry``) is replaced by what the sidecar would
return, everything else is the real DAG factory, operator, outlets and Airflow's
``OutletEventAccessors``."""

from __future__ import annotations

import json

import pytest
from airflow_manifests import build_manifest
from test_kpo import _rendered_pod, _serialize
from test_kpo_hardening import HARDENING

from airflow_mbt.dag_factory import build_dag
from airflow_mbt.manifest import Manifest
from airflow_mbt.operators.kubernetes import XCOM_FILE, XCOM_FILE_ENV, XCOM_STEPS, sidecar_security_context
from airflow_mbt.runtime.run_results import StepResult
from airflow_mbt.step_specs import APPLY_PROMOTION_STEP, PROMOTE_STEP, model_asset

MODEL, ALIAS = "churn_model", "champion"
PINNED = "s3://mbt-pipeline-artifacts/manifests/train_life_k8s/abc.json"


def lifecycle_manifest(executor_config: dict | None = None) -> Manifest:
    """A kubernetes training manifest with ``registration.approval: required`` (promote, apply_promotion)."""
    data = json.loads(build_manifest("train_life_k8s", executor="kubernetes").to_json())
    data["config"]["training"]["registration"] = {"model_name": MODEL, "alias": ALIAS, "promote": "if_better",
                                                  "compare_on": "roc_auc", "approval": "required"}
    data["steps"] += [
        {"name": PROMOTE_STEP.name, "inputs": list(PROMOTE_STEP.inputs),
         "outputs": [{"name": n, "kind": k} for n, k in PROMOTE_STEP.outputs],
         "depends_on": ["split_data", "evaluate", "log_run"], "resources": {}},
        {"name": APPLY_PROMOTION_STEP.name, "inputs": list(APPLY_PROMOTION_STEP.inputs),
         "outputs": [{"name": n, "kind": k} for n, k in APPLY_PROMOTION_STEP.outputs],
         "depends_on": [PROMOTE_STEP.name], "resources": {}}]
    data["target"]["executor"]["config"].update(executor_config or {})
    return Manifest.build(data)


@pytest.fixture
def dag(monkeypatch):
    monkeypatch.setenv("PG_PASSWORD", "x")
    return build_dag(lifecycle_manifest(), PINNED, manifest_conn_id="mbt_s3")


def _containers(op) -> tuple[dict[str, dict], dict]:
    pod, _ = _rendered_pod(op)
    return {c["name"]: c for c in _serialize(pod)["spec"]["containers"]}, _serialize(pod)


def test_promote_pods_ask_for_the_xcom_file_and_carry_the_sidecar(dag):
    import kubernetes_validate
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults

    assert XCOM_STEPS == {"promote", "apply_promotion"}
    assert XCOM_FILE == "/airflow/xcom/return.json"  # the file the provider's sidecar reads
    for task_id in ("promote", "apply_promotion"):
        op = dag.get_task(task_id)
        assert op.do_xcom_push is True
        containers, spec = _containers(op)
        base = containers[op.base_container_name]
        assert {e["name"]: e.get("value") for e in base["env"]}[XCOM_FILE_ENV] == XCOM_FILE
        assert {"name": "xcom", "mountPath": PodDefaults.XCOM_MOUNT_PATH} in base["volumeMounts"]
        assert PodDefaults.SIDECAR_CONTAINER_NAME in containers
        assert "--xcom-file" not in base["args"]  # an env var: an older runner image ignores it
        kubernetes_validate.validate(spec, kubernetes_validate.latest_version(), strict=True)
    assert dag.get_task("approve_promotion").upstream_task_ids == {"promote"}


def test_other_steps_run_without_the_sidecar(dag):
    for task_id in ("load_data", "train_model", "log_run"):
        op = dag.get_task(task_id)
        assert op.do_xcom_push is False
        containers, _ = _containers(op)
        assert list(containers) == [op.base_container_name]
        assert XCOM_FILE_ENV not in {e["name"] for e in containers[op.base_container_name]["env"]}


def test_hardened_pod_sidecar_gets_the_step_containers_security_context(monkeypatch):
    import kubernetes_validate

    monkeypatch.setenv("PG_PASSWORD", "x")
    op = build_dag(lifecycle_manifest(HARDENING), PINNED).get_task("promote")
    containers, spec = _containers(op)
    sidecar = containers["airflow-xcom-sidecar"]
    assert sidecar["securityContext"] == HARDENING["security_context"]  # the pod's runAsUser covers it
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(spec, version, strict=True)
    # runAsNonRoot with no user anywhere: the (root by default) alpine sidecar runs as nobody
    cfg = {"security_context": {"runAsNonRoot": True, "allowPrivilegeEscalation": False}}
    assert sidecar_security_context(cfg) == {**cfg["security_context"], "runAsUser": 65534}
    assert sidecar_security_context({**cfg, "pod_security_context": {"runAsUser": 1000}}) == cfg["security_context"]
    assert sidecar_security_context({}) is None  # the provider's / connection's default


def _summary(decision: str, moved: bool) -> dict:
    summary = {"decision": decision, "reason": "no champion yet", "model_name": MODEL, "alias": ALIAS,
               "metric": "roc_auc", "lower_is_better": False, "champion": None, "alias_moved": moved,
               "challenger": {"version": "7", "run_id": "r7", "value": 0.81}}
    if moved:
        summary["asset_uri"] = model_asset(MODEL, ALIAS)[1]
    return summary


def _sidecar_output(step: str, summary: dict) -> dict:
    """What ``mbt step execute`` writes to the XCom file and the sidecar reads back (JSON round trip)."""
    result = StepResult(name=step, status="success", seconds=1.5, outputs={"promotion": "s3://b/p.json"},
                        run_id="run_20260301_000000_ab12", summary=summary)
    return json.loads(json.dumps(result.to_xcom()))


def _run(op, sidecar: dict | None, monkeypatch, deferrable: bool = False) -> tuple[object, list]:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.execution_time.context import OutletEventAccessors

    context = {"outlet_events": OutletEventAccessors()}  # no ti: release_pin keeps the DAG's hash
    if deferrable:
        monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", lambda self, ctx, event: sidecar)
        returned = op.trigger_reentry(context, {"status": "success", "name": "mbt-pod", "namespace": "n"})
    else:
        monkeypatch.setattr(KubernetesPodOperator, "execute_sync", lambda self, ctx: sidecar)
        returned = op.execute(context)
    events = [e for accessor in context["outlet_events"].values() for e in accessor.asset_alias_events]
    return returned, events


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("step", ["promote", "apply_promotion"])
def test_alias_moved_adds_the_model_asset_event_and_the_summary_is_the_xcom(dag, monkeypatch, step, deferrable):
    from airflow.sdk import AssetAlias

    op = dag.get_task(step)
    [alias] = op.outlets
    assert isinstance(alias, AssetAlias)
    sidecar = _sidecar_output(step, _summary("promoted", moved=True))
    returned, [event] = _run(op, sidecar, monkeypatch, deferrable)
    assert returned == sidecar and returned["summary"]["decision"] == "promoted"
    name, uri = model_asset(MODEL, ALIAS)
    assert event.source_alias_name == alias.name
    assert (event.dest_asset_key.name, event.dest_asset_key.uri) == (name, uri)
    assert event.extra == {"model_name": MODEL, "alias": ALIAS, "decision": "promoted", "version": "7"}


@pytest.mark.parametrize("decision", ["awaiting_approval", "not_promoted", "already_champion"])
def test_alias_not_moved_emits_nothing_but_the_approval_form_gets_the_summary(dag, monkeypatch, decision):
    op = dag.get_task("promote")
    sidecar = _sidecar_output("promote", _summary(decision, moved=False))
    returned, events = _run(op, sidecar, monkeypatch)
    assert events == []
    # what approve_promotion's form pulls: ti.xcom_pull(task_ids='promote')['summary']
    assert returned["summary"]["decision"] == decision and returned["summary"]["challenger"]["version"] == "7"


def test_no_result_file_means_no_event(dag, monkeypatch):
    """A pod whose image does not write the file (older runner): the sidecar returns None."""
    returned, events = _run(dag.get_task("promote"), None, monkeypatch)
    assert returned is None and events == []


def test_a_pod_of_an_older_runner_naming_the_old_asset_scheme_still_emits_this_workers_asset(dag, monkeypatch):
    """A release pinned to a runner image from before the ``x-`` asset scheme reports
    ``mlflow-model://...``: the event is still the worker's asset of that model alias, the one
    serving DAGs are scheduled on."""
    summary = _summary("promoted", moved=True)
    summary["asset_uri"] = f"mlflow-model://{MODEL}/{ALIAS}"
    _, [event] = _run(dag.get_task("apply_promotion"), _sidecar_output("apply_promotion", summary), monkeypatch)
    assert (event.dest_asset_key.name, event.dest_asset_key.uri) == model_asset(MODEL, ALIAS)
