"""Trust boundaries of a production deployment (docs/operations.md), as the files give them:

* CI (S3 identity ``mbt-ci``, the Woodpecker secret of the deploy step) is the only writer of
  ``manifests/``; its key is in no Kubernetes Secret and in no Helm value.
* Airflow (``mbt-airflow``, Secret ``mbt-airflow-secrets`` in ``airflow``, Helm ``secret:``) lists
  and reads ``manifests/`` and writes its task logs, nothing else.
* Step pods (``mbt-step-pods``, Secret ``mbt-secrets`` in ``mbt-pipelines``, the prod target's
  ``connection_secrets``) read their release under ``manifests/`` (``--manifest-conn-id``) and
  read + write the artifacts, and never write ``manifests/``.

The S3 side is the example bucket policies of infra/k8s/s3-policies/, evaluated here with the
IAM rules that matter for them (an explicit Deny wins, else an Allow with a matching principal,
action, resource and ``s3:prefix`` condition, else denied). The pod side is the pod that
``MBTKubernetesStepOperator`` renders for every step of the scaffolded project compiled for prod.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
from deploy_common import (
    AIRFLOW_IDENTITY,
    AIRFLOW_SECRET,
    CI_IDENTITY,
    CI_S3_SECRET,
    CONNECTIONS,
    HELM_VALUES,
    IDENTITY_ANNOTATION,
    K8S_DIR,
    MBT,
    POD_IDENTITY,
    POD_SECRET,
    PROJECT_FILES,
    S3_POLICIES,
    bucket_policy,
    helm,
    k8s_files,
    load_yaml_docs,
    prod_profile,
    secret_templates,
    walk,
    woodpecker,
)

ARTIFACTS = "mbt-pipeline-artifacts"
LOGS = "mbt-airflow-logs"
DIGEST_REF = "zot-registry:5050/trust:0123abc@sha256:" + "cd" * 32


# ---------------------------------------------------------------- a small IAM evaluator

def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _principal(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _matches(statement: dict, identity: str, action: str, resource: str, prefix: str | None) -> bool:
    principals = {_principal(a) for a in _as_list(statement["Principal"]["AWS"])}
    if identity not in principals:
        return False
    if not any(fnmatch.fnmatchcase(action, a) for a in _as_list(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"])):
        return False
    condition = statement.get("Condition") or {}
    assert set(condition) <= {"StringLike"}, f"{statement['Sid']}: condition the evaluator does not know"
    for key, patterns in (condition.get("StringLike") or {}).items():
        assert key == "s3:prefix", key
        if prefix is None or not any(fnmatch.fnmatchcase(prefix, p) for p in _as_list(patterns)):
            return False
    return True


def allowed(identity: str, action: str, bucket: str, key: str | None = None, prefix: str | None = None) -> bool:
    """Whether the bucket policy of ``bucket`` lets ``identity`` do ``action`` on the object
    ``key`` (or on the bucket, listing ``prefix``)."""
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
    statements = bucket_policy(bucket)["Statement"]
    hits = [s["Effect"] for s in statements if _matches(s, identity, action, resource, prefix)]
    return "Deny" not in hits and "Allow" in hits


def _manifests_prefix() -> tuple[str, str]:
    uri = prod_profile()["manifests"]["uri"]
    assert uri.startswith("s3://") and uri.endswith("/")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


def test_evaluator_reads_deny_allow_and_prefix_conditions():
    # an explicit Deny beats the pods' Allow on <bucket>/*; a listing outside the condition fails
    assert allowed(POD_IDENTITY, "s3:PutObject", ARTIFACTS, "p/run/step/model.bin")
    assert not allowed(POD_IDENTITY, "s3:PutObject", ARTIFACTS, "manifests/p/manifest.json")
    assert allowed(AIRFLOW_IDENTITY, "s3:ListBucket", ARTIFACTS, prefix="manifests/")
    assert not allowed(AIRFLOW_IDENTITY, "s3:ListBucket", ARTIFACTS, prefix="p/")
    assert not allowed("someone-else", "s3:GetObject", ARTIFACTS, "manifests/p/manifest.json")


# ---------------------------------------------------------------- S3: who may do what

def test_policies_cover_the_buckets_the_files_use():
    bucket, prefix = _manifests_prefix()
    assert bucket == ARTIFACTS == prod_profile()["storage"]["config"]["bucket"]
    assert prefix == "manifests/"
    assert helm()["config"]["mbt"]["manifests_uri"] == f"s3://{bucket}/{prefix}"
    logs = helm()["config"]["logging"]["remote_base_log_folder"]
    assert logs == f"s3://{LOGS}/task-logs"
    assert sorted(p.name for p in S3_POLICIES.glob("*.json")) == [
        f"{LOGS}.bucket-policy.json", f"{ARTIFACTS}.bucket-policy.json"]
    for bucket_name in (ARTIFACTS, LOGS):
        policy = bucket_policy(bucket_name)
        assert policy["Version"] == "2012-10-17"
        for statement in policy["Statement"]:
            for resource in _as_list(statement["Resource"]):
                assert resource == f"arn:aws:s3:::{bucket_name}" or resource.startswith(f"arn:aws:s3:::{bucket_name}/")


RELEASE = "manifests/training_churn_model_v1/0123abcd.json"
POINTER = "manifests/training_churn_model_v1/manifest.json"
CODE = "manifests/training_churn_model_v1/code/4567ef.tar.gz"
ARTIFACT = "training_churn_model_v1/run_20260301_000000_0123456789abcdef/train_model/model.bin"


@pytest.mark.parametrize(("identity", "action", "key", "expected"), [
    # CI publishes releases, moves the pointer, writes code archives, undeploys; nothing else
    (CI_IDENTITY, "s3:PutObject", RELEASE, True),
    (CI_IDENTITY, "s3:PutObject", CODE, True),
    (CI_IDENTITY, "s3:GetObject", POINTER, True),
    (CI_IDENTITY, "s3:DeleteObject", POINTER, True),
    (CI_IDENTITY, "s3:GetObject", ARTIFACT, False),
    (CI_IDENTITY, "s3:PutObject", ARTIFACT, False),
    # Airflow reads the manifests, writes none and never touches the artifacts
    (AIRFLOW_IDENTITY, "s3:GetObject", POINTER, True),
    (AIRFLOW_IDENTITY, "s3:GetObject", RELEASE, True),
    (AIRFLOW_IDENTITY, "s3:PutObject", POINTER, False),
    (AIRFLOW_IDENTITY, "s3:DeleteObject", RELEASE, False),
    (AIRFLOW_IDENTITY, "s3:GetObject", ARTIFACT, False),
    (AIRFLOW_IDENTITY, "s3:PutObject", ARTIFACT, False),
    # step pods read their release and its code, read + write artifacts, never write manifests
    (POD_IDENTITY, "s3:GetObject", RELEASE, True),
    (POD_IDENTITY, "s3:GetObject", CODE, True),
    (POD_IDENTITY, "s3:GetObject", ARTIFACT, True),
    (POD_IDENTITY, "s3:PutObject", ARTIFACT, True),
    (POD_IDENTITY, "s3:DeleteObject", ARTIFACT, True),
    (POD_IDENTITY, "s3:PutObject", RELEASE, False),
    (POD_IDENTITY, "s3:PutObject", POINTER, False),
    (POD_IDENTITY, "s3:PutObject", CODE, False),
    (POD_IDENTITY, "s3:DeleteObject", POINTER, False),
])
def test_artifacts_bucket_policy_separates_the_three_identities(identity, action, key, expected):
    assert allowed(identity, action, ARTIFACTS, key) is expected


def test_only_ci_can_write_manifests():
    writers = {identity for identity in (CI_IDENTITY, AIRFLOW_IDENTITY, POD_IDENTITY, "anyone")
               if any(allowed(identity, action, ARTIFACTS, key)
                      for action in ("s3:PutObject", "s3:DeleteObject") for key in (RELEASE, POINTER, CODE))}
    assert writers == {CI_IDENTITY}
    listers = {identity for identity in (CI_IDENTITY, AIRFLOW_IDENTITY, POD_IDENTITY)
               if allowed(identity, "s3:ListBucket", ARTIFACTS, prefix="manifests/")}
    assert listers == {CI_IDENTITY, AIRFLOW_IDENTITY, POD_IDENTITY}


def test_task_logs_bucket_is_airflows_only():
    key = "task-logs/dag_id=d/run_id=r/task_id=t/attempt=1.log"
    assert allowed(AIRFLOW_IDENTITY, "s3:PutObject", LOGS, key)
    assert allowed(AIRFLOW_IDENTITY, "s3:GetObject", LOGS, key)
    assert allowed(AIRFLOW_IDENTITY, "s3:ListBucket", LOGS, prefix="task-logs/dag_id=d/")
    for identity in (CI_IDENTITY, POD_IDENTITY):
        assert not any(allowed(identity, action, LOGS, key) for action in ("s3:GetObject", "s3:PutObject"))


# ---------------------------------------------------------------- who holds which key

def test_each_runtime_identity_has_its_own_secret_and_none_holds_the_ci_key():
    secrets = secret_templates()
    identities = {name: doc["metadata"]["annotations"][IDENTITY_ANNOTATION] for name, doc in secrets.items()}
    assert identities == {POD_SECRET: POD_IDENTITY, AIRFLOW_SECRET: AIRFLOW_IDENTITY}
    assert (secrets[POD_SECRET]["metadata"]["namespace"], secrets[AIRFLOW_SECRET]["metadata"]["namespace"]) == \
        ("mbt-pipelines", "airflow")
    # no Kubernetes object and no Helm value names the CI identity or its Woodpecker secret
    docs = [(f, d) for f in k8s_files() for d in load_yaml_docs(f)] + [(HELM_VALUES, helm())]
    for path, doc in docs:
        for _, key, value in walk(doc):
            for text in (key, value):
                if isinstance(text, str):
                    assert CI_S3_SECRET not in text and text != CI_IDENTITY, f"{path}: {key}: {value}"


def test_helm_manifests_connection_is_airflows_read_only_key():
    values = helm()
    conn_id = values["config"]["mbt"]["manifests_conn_id"]
    (entry,) = [e for e in values["secret"] if e["envName"] == f"AIRFLOW_CONN_{conn_id.upper()}"]
    assert (entry["secretName"], entry["secretKey"]) == (AIRFLOW_SECRET, conn_id)
    secret = secret_templates()[AIRFLOW_SECRET]
    assert conn_id in secret["stringData"]
    identity = secret["metadata"]["annotations"][IDENTITY_ANNOTATION]
    assert allowed(identity, "s3:ListBucket", ARTIFACTS, prefix="manifests/")
    assert allowed(identity, "s3:GetObject", ARTIFACTS, POINTER)
    assert not allowed(identity, "s3:PutObject", ARTIFACTS, POINTER)
    # no Helm secret entry reaches another identity's Secret
    assert {e["secretName"] for e in values["secret"]} == {AIRFLOW_SECRET}
    assert POD_SECRET not in {v for _, _, v in walk(values) if isinstance(v, str)}


def test_ci_key_is_only_in_the_deploy_step():
    steps = woodpecker()["steps"]
    holders = {name: key for name, step in steps.items() for key, value in (step.get("environment") or {}).items()
               if value == {"from_secret": CI_S3_SECRET}}
    assert holders == {"deploy": "AIRFLOW_CONN_MBT_S3"}
    assert prod_profile()["manifests"]["conn_id"] == "mbt_s3"
    header = (PROJECT_FILES / ".woodpecker.yml").read_text(encoding="utf-8").split("\nwhen:", 1)[0]
    assert CI_S3_SECRET in header and f"S3 identity {CI_IDENTITY}" in header


# ---------------------------------------------------------------- the pods a prod release runs

@pytest.fixture(scope="module")
def prod_manifests(tmp_path_factory):
    """Every pipeline of a freshly scaffolded project, compiled for prod as CI compiles it."""
    from airflow_mbt.manifest import Manifest

    root = tmp_path_factory.mktemp("trust")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MBT_", "AIRFLOW_CONN_"))}
    out = subprocess.run([str(MBT), "init", "trust", "--dir", str(root)], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    project = root / "trust"
    out = subprocess.run([str(MBT), "compile", "--target", "prod"], cwd=project,
                         env={**env, "MBT_RUNNER_IMAGE": DIGEST_REF}, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    manifests = [Manifest.read(p) for p in sorted((project / "target").glob("*/manifest.json"))]
    assert len(manifests) >= 2
    return manifests


def _rendered_pods(manifest, manifest_conn_id: str) -> list[dict]:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from kubernetes.client import ApiClient

    from airflow_mbt.dag_factory import build_dag
    from airflow_mbt.operators.kubernetes import MBTKubernetesStepOperator

    uri = f"s3://{ARTIFACTS}/manifests/{manifest.name}/{manifest.content_hash.split(':')[-1]}.json"
    dag = build_dag(manifest, uri, manifest_conn_id=manifest_conn_id)
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = DagRun(dag_id=dag.dag_id, run_id=f"manual__{uuid.uuid4().hex[:8]}", logical_date=when,
                     run_after=when, data_interval=(when, when), run_type="manual")
    pods = []
    for task in dag.tasks:
        if not isinstance(task, MBTKubernetesStepOperator):
            continue
        op = copy.deepcopy(task)
        ti = TaskInstance(op, run_id=dag_run.run_id, dag_version_id=None)
        ti.try_number = 1
        op.render_template_fields({"dag_run": dag_run, "ti": ti})
        pods.append(ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True)))
    return pods


def test_rendered_pods_of_the_scaffolded_prod_target_get_only_the_step_pod_secret(prod_manifests):
    conn_id = helm()["config"]["mbt"]["manifests_conn_id"]
    pod_secret = secret_templates()[POD_SECRET]
    identity = pod_secret["metadata"]["annotations"][IDENTITY_ANNOTATION]
    seen = 0
    for manifest in prod_manifests:
        assert manifest.target.executor.config["image"] == DIGEST_REF
        for pod in _rendered_pods(manifest, conn_id):
            seen += 1
            assert pod["metadata"]["namespace"] == pod_secret["metadata"]["namespace"]
            containers = pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])
            refs = set()
            for container in containers:
                for var in container.get("env") or []:
                    assert "value" not in var or not var["name"].startswith("AIRFLOW_CONN_"), var
                    ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        refs.add((ref["name"], ref["key"]))
                        assert var["name"] == f"AIRFLOW_CONN_{ref['key'].upper()}"
                assert not container.get("envFrom"), "no Secret is mounted whole"
            assert {name for name, _ in refs} == {POD_SECRET}
            assert {key for _, key in refs} <= set(pod_secret["stringData"]) <= set(CONNECTIONS)
            assert not [v for v in pod["spec"].get("volumes") or [] if "secret" in v]
            # the pod reads its release with its own key: the manifests conn id is among its Secrets
            [main] = [c for c in pod["spec"]["containers"] if c["command"] == ["mbt"]]
            args = main["args"]
            assert args[args.index("--manifest-conn-id") + 1] == conn_id
            assert (POD_SECRET, conn_id) in refs
    assert seen >= 2
    assert allowed(identity, "s3:GetObject", ARTIFACTS, RELEASE)
    assert not allowed(identity, "s3:PutObject", ARTIFACTS, RELEASE)


def test_s3_policy_folder_is_not_applied_with_the_cluster_objects():
    """`kubectl apply -f infra/k8s/` (not recursive) applies no policy and no Secret template."""
    top = {p.name for p in K8S_DIR.iterdir() if p.is_file()}
    assert not [name for name in top if name.endswith(".json")]
    assert S3_POLICIES.parent == K8S_DIR and S3_POLICIES.is_dir()
