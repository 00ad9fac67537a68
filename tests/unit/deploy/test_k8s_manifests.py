"""The Kubernetes manifests of infra/k8s/: strictly valid for the oldest supported and the newest
Kubernetes (kubernetes-validate), the namespace, service account and RBAC the step pods need, a
ConfigMap with endpoints but no credentials, and Secret templates of placeholders (one for the
step pods, one for Airflow, each pinned to its namespace) that `kubectl apply -f infra/k8s/` does
not pick up.
"""

from __future__ import annotations

import json

import pytest
from deploy_common import (
    AIRFLOW_SECRET,
    CONNECTIONS,
    K8S_DIR,
    POD_SECRET,
    REALISTIC_SECRET,
    is_credential_name,
    k8s_docs,
    k8s_files,
    load_yaml_docs,
    manifests_uri_default,
    prod_profile,
    secret_templates,
    walk,
)


def _k8s_versions() -> list[str]:
    import kubernetes_validate

    return ["1.30.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", _k8s_versions())
def test_k8s_manifests_validate_strictly(version):
    import kubernetes_validate

    files = k8s_files()
    assert files
    for f in files:
        for doc in load_yaml_docs(f):
            kubernetes_validate.validate(doc, version, strict=True)
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"},
           "imagePullSecret": [{"name": "zot-pull-secret"}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def _k8s(kind: str, name: str) -> dict:
    found = [d for d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def test_k8s_objects_for_the_step_pods():
    assert _k8s("Namespace", "mbt-pipelines")
    sa = _k8s("ServiceAccount", "mbt-runner")
    assert sa["metadata"]["namespace"] == "mbt-pipelines"
    assert {"name": "zot-pull-secret"} in sa["imagePullSecrets"]
    executor = prod_profile()["executor"]["config"]
    assert (executor["namespace"], executor["service_account"]) == ("mbt-pipelines", "mbt-runner")
    assert set(executor["connection_secrets"].values()) == {POD_SECRET}
    assert set(executor["connection_secrets"]) <= set(CONNECTIONS)
    for doc in k8s_docs():
        if doc["kind"] != "Namespace" and doc["metadata"]["name"] != AIRFLOW_SECRET:
            assert doc["metadata"]["namespace"] == "mbt-pipelines", doc["metadata"]["name"]


def test_k8s_config_map_holds_endpoints_but_no_credentials():
    data = _k8s("ConfigMap", "mbt-config")["data"]
    for key in ("MBT_MANIFESTS_URI", "MBT_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI", "MBT_H2O_URL", "MBT_PG_HOST"):
        assert data[key], key
    assert data["MBT_MANIFESTS_URI"] == manifests_uri_default()
    assert not [k for k in data if is_credential_name(k)]
    assert not [v for v in data.values() if "@" in v], "no user:password@host URLs"


def test_k8s_rbac_lets_the_worker_launch_pods_in_mbt_pipelines_only():
    role = _k8s("Role", "mbt-pod-launcher")
    pods = [r for r in role["rules"] if "pods" in r["resources"]]
    assert pods and {"create", "get", "list", "watch", "delete"} <= set(pods[0]["verbs"])
    assert any("pods/log" in r["resources"] for r in role["rules"])
    assert not any("secrets" in r["resources"] or "*" in r["verbs"] for r in role["rules"])
    binding = _k8s("RoleBinding", "mbt-pod-launcher-airflow-worker")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "mbt-pod-launcher"}
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"] == "mbt-pipelines"


@pytest.mark.parametrize(("name", "namespace", "connections"), [
    (POD_SECRET, "mbt-pipelines", CONNECTIONS),
    # Airflow: read-only manifests (mbt_s3) and remote task logs (helm-values config.logging)
    (AIRFLOW_SECRET, "airflow", {"mbt_s3": "aws", "mbt_logs": "aws"}),
])
def test_k8s_secret_templates_have_their_connections_and_only_placeholders(name, namespace, connections):
    secret = _k8s("Secret", name)
    # pinned: `kubectl -n <the other namespace> apply` of the file fails instead of copying keys
    assert secret["metadata"]["namespace"] == namespace
    data = secret["stringData"]
    assert set(data) == set(connections)
    for conn_id, conn_type in connections.items():
        conn = json.loads(data[conn_id])
        assert conn["conn_type"] == conn_type
        if conn_type in ("postgres", "aws"):
            assert conn["password"] == "REPLACE_ME", conn_id
        if conn_type == "aws":
            assert conn["login"] == "REPLACE_ME", "the access key is a credential too"
    assert set(secret_templates()) == {POD_SECRET, AIRFLOW_SECRET}
    # A template must not be applied by `kubectl apply -f infra/k8s/` (which does not recurse).
    top_level = [d for f in sorted(K8S_DIR.glob("*.yaml")) for d in load_yaml_docs(f)]
    assert not [d for d in top_level if d["kind"] == "Secret"]


def test_k8s_files_hold_no_realistic_secret():
    for f in k8s_files():
        text = f.read_text(encoding="utf-8")
        assert not REALISTIC_SECRET.search(text), f
        for doc in load_yaml_docs(f):
            assert "data" not in doc or doc["kind"] != "Secret", f"{f}: base64 data hides values; use stringData"
            for _path, key, value in walk(doc):
                if isinstance(value, str) and value.startswith("{"):
                    for _, k, v in walk(json.loads(value)):
                        if is_credential_name(k):
                            assert v == "REPLACE_ME", f"{f}: {key}.{k} is not a placeholder"
