"""The Airflow Helm chart values (helm-values/values.yaml): they match the official chart's values
schema, run the project image with the KubernetesExecutor, take their connections (read-only
manifests, task logs) from Airflow's own Secret mbt-airflow-secrets, set only options Airflow (and
the provider's ``[mbt]`` section) declares, and agree with the runner image, the scaffolded
profiles and the Kubernetes RBAC.
"""

from __future__ import annotations

import json

from deploy_common import (
    AIRFLOW_SECRET,
    helm,
    is_credential_name,
    k8s_docs,
    pins,
    prod_profile,
    profile_prod_image,
    project_dockerfile,
    provider_info,
    runner,
    schema,
    schema_errors,
    unknown_options,
    validator,
    walk,
)


def test_helm_values_match_the_official_chart_schema():
    check = validator("airflow-helm-chart-values.schema.json")
    values = helm()
    assert schema_errors(check, values) == []
    unknown = set(values) - set(schema("airflow-helm-chart-values.schema.json")["properties"])
    assert not unknown, f"top-level keys the chart does not know: {sorted(unknown)}"
    broken = json.loads(json.dumps(values))
    broken["executor"] = "kubernetes"
    assert schema_errors(check, broken), "the schema must reject a malformed executor"


def test_helm_values_run_the_project_image_with_kubernetes_executor():
    values = helm()
    assert values["executor"] == "KubernetesExecutor"
    image = values["images"]["airflow"]
    # Airflow runs the versioned airflow-mbt base image; step pods run each project's own image
    assert f"{image['repository']}:{image['tag']}" == project_dockerfile().arg_defaults()["MBT_BASE_IMAGE"]
    assert image["tag"] != "latest" and values["defaultAirflowTag"] == image["tag"]
    assert profile_prod_image().rsplit(":", 1)[0] != image["repository"]
    assert values["airflowVersion"] == pins("requirements/lock.txt")["apache-airflow"]
    assert values["dags"]["gitSync"]["enabled"] is False
    assert values["dags"]["persistence"]["enabled"] is False
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert values["registry"]["secretName"] == "zot-pull-secret"


def test_helm_values_take_airflow_connections_from_the_airflow_secret_only():
    """Airflow runs no step: it needs the manifests connection and the task-log connection, both
    from its own Secret (the step pods' Secret and the CI key are never Helm's)."""
    values = helm()
    entries = {e["envName"]: e for e in values["secret"]}
    needed = {values["config"]["mbt"]["manifests_conn_id"], values["config"]["logging"]["remote_log_conn_id"]}
    assert set(entries) == {f"AIRFLOW_CONN_{c.upper()}" for c in needed}
    for conn_id in needed:
        entry = entries[f"AIRFLOW_CONN_{conn_id.upper()}"]
        assert (entry["secretName"], entry["secretKey"]) == (AIRFLOW_SECRET, conn_id)
    assert not [e for e in values.get("extraEnv") or [] if "AIRFLOW_CONN_" in str(e)]
    for path, key, value in walk(values):
        if is_credential_name(key):
            assert value in (None, "", False), f"{'/'.join(map(str, path))}/{key} holds a literal secret"


def test_helm_values_mbt_config_is_known_to_the_provider_and_consistent():
    values = helm()
    options = provider_info()["config"]["mbt"]["options"]
    assert set(values["config"]["mbt"]) <= set(options)
    env = {e["name"]: e["value"] for e in values["env"]}
    uri = values["config"]["mbt"]["manifests_uri"]
    assert env["MBT_MANIFESTS_URI"] == uri == runner().env()["MBT_MANIFESTS_URI"]
    assert prod_profile()["manifests"]["uri"] == uri


def test_helm_worker_service_account_is_the_one_allowed_to_launch_step_pods():
    values = helm()
    sa = values["workers"]["serviceAccount"]["name"]
    (binding,) = [d for d in k8s_docs() if d["kind"] == "RoleBinding"]
    assert {"kind": "ServiceAccount", "name": sa, "namespace": "airflow"} in binding["subjects"]


def test_airflow_option_check_knows_real_options_only():
    assert unknown_options([("core", "execution_api_server_url"), ("mbt", "manifests_uri"),
                             ("kubernetes_executor", "delete_worker_pods")]) == []
    assert unknown_options([("core", "paralelism"), ("nosuch", "x")]) == ["[core] paralelism", "[nosuch] x"]


def test_helm_config_sets_only_options_airflow_declares():
    config = helm()["config"]
    assert unknown_options((s, k) for s, body in config.items() for k in body) == []


def test_helm_values_ship_task_logs_to_s3_through_the_amazon_provider():
    """Worker pods are deleted: task logs (the step-pod output included) must live in S3, in a
    bucket of their own read and written with a connection of its own."""
    values = helm()
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"].startswith("s3://")
    bucket = logging["remote_base_log_folder"][len("s3://"):].split("/", 1)[0]
    assert bucket not in values["config"]["mbt"]["manifests_uri"], "logs must not share the manifests bucket"
    conn = logging["remote_log_conn_id"]
    entries = {e["envName"]: e for e in values["secret"]}
    assert entries[f"AIRFLOW_CONN_{conn.upper()}"] == {"envName": f"AIRFLOW_CONN_{conn.upper()}",
                                                      "secretName": AIRFLOW_SECRET, "secretKey": conn}
    assert unknown_options(("logging", k) for k in logging) == []
    # the S3 task handler comes with the amazon provider, locked and so in the runner image
    assert pins("requirements/lock.txt").get("apache-airflow-providers-amazon")
