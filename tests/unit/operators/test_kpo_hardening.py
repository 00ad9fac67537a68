"""Pods a platform team can harden: ``executor.config`` keys reach the rendered pod, which passes
strict Kubernetes validation; typos in ``executor.config`` are input errors with did-you-mean."""

from __future__ import annotations

import json

import pytest
import yaml
from airflow_manifests import build_manifest
from test_kpo import _rendered_pod, _serialize

from airflow_mbt.dag_factory import build_dag
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest

DIGEST_IMAGE = "zot-registry:5050/demo-project@sha256:" + "ab" * 32
HARDENING = {
    "image": DIGEST_IMAGE,
    "security_context": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                         "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL"]}},
    "pod_security_context": {"runAsUser": 50000, "fsGroup": 0, "seccompProfile": {"type": "RuntimeDefault"}},
    "tolerations": [{"key": "ml", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
    "node_selector": {"node-pool": "ml-batch"},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "priority_class_name": "ml-batch",
    "startup_timeout_seconds": 600,
    "default_resources": {"cpu": "1", "memory": "2Gi"},
}


def _hardened_dag(monkeypatch):
    monkeypatch.setenv("PG_PASSWORD", "x")
    data = json.loads(build_manifest("train_hard", executor="kubernetes",
                                     resources={"train_model": {"cpu": "2", "memory": "4Gi"}}).to_json())
    data["target"]["executor"]["config"].update(HARDENING)
    manifest = Manifest.build(data)
    return build_dag(manifest, "s3://mbt-pipeline-artifacts/manifests/train_hard/manifest.json",
                     manifest_conn_id="mbt_s3")


def test_hardened_pod_carries_the_settings_and_passes_strict_validation(monkeypatch):
    import kubernetes_validate

    dag = _hardened_dag(monkeypatch)
    train = _serialize(_rendered_pod(dag.get_task("train_model"))[0])
    load = _serialize(_rendered_pod(dag.get_task("load_data"))[0])
    spec = train["spec"]
    [container] = spec["containers"]
    assert container["image"] == DIGEST_IMAGE
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["tolerations"] == HARDENING["tolerations"]
    assert spec["nodeSelector"] == {"node-pool": "ml-batch"}
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert spec["priorityClassName"] == "ml-batch"
    assert dag.get_task("train_model").startup_timeout_seconds == 600
    # the step's own resources win; a step without any gets the defaults (never BestEffort)
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert load["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"},
                                                          "requests": {"cpu": "1", "memory": "2Gi"}}
    for pod in (train, load):
        for version in ("1.30.0", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(pod, version, strict=True)


@pytest.mark.parametrize("typo,expected", [("service_acount", "service_account"),
                                           ("tolerations_", "tolerations"),
                                           ("nodeSelector", "node_selector")])
def test_executor_config_typo_is_an_input_error_with_did_you_mean(tmp_path, typo, expected):
    from airflow_mbt.project.profiles import resolve_target
    from airflow_mbt.project.root import Project
    from airflow_mbt.scaffold.project_init import init_project

    root = init_project("p", tmp_path)
    path = root / "profiles.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["p"]["outputs"]["prod"]["executor"]["config"][typo] = "x"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(MBTInputError, match=f"unknown key '{typo}'") as err:
        resolve_target(Project(root), "prod", env={})
    assert expected in (err.value.hint or "") and "profiles.yaml" in err.value.location()


def test_kubernetes_executor_needs_an_image_at_compile(tmp_path):
    from airflow_mbt.project.profiles import resolve_target
    from airflow_mbt.project.root import Project
    from airflow_mbt.scaffold.project_init import init_project

    root = init_project("p", tmp_path)
    path = root / "profiles.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["p"]["outputs"]["prod"]["executor"]["config"]["image"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(MBTInputError, match="image"):
        resolve_target(Project(root), "prod", env={})
