"""The project CI (``.woodpecker.yml`` written by ``mbt init``) and the local stack's bucket job,
run against the real SeaweedFS S3 of the local stack.

The Woodpecker steps that run ``mbt`` are executed as Woodpecker would: their ``commands`` in a
fresh project checkout, their ``environment`` with every ``from_secret`` replaced by the value
of that repository secret, and nothing else from the outer environment's connections. The
manifests land under a unique prefix that the test removes afterwards.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MBT = Path(sys.executable).parent / "mbt"
STACK_ENV = ROOT / "scripts" / "stack.env"
BUCKET = "mbt-pipeline-artifacts"

pytestmark = pytest.mark.services


def _stack_env() -> dict[str, str]:
    """Variables of scripts/stack.env, read through bash like the stack scripts do."""
    if not STACK_ENV.is_file():
        pytest.fail(f"{STACK_ENV} is missing: the local stack defines the S3 endpoint and keys")
    out = subprocess.run(["bash", "-c", f"set -a; . {shlex.quote(str(STACK_ENV))}; env -0"],
                         capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    pairs = (item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith(("MBT_", "AIRFLOW_CONN_", "S3_"))}


def _s3(stack: dict):
    import boto3

    return boto3.client("s3", endpoint_url=stack["MBT_S3_ENDPOINT_URL"], region_name=stack["MBT_S3_REGION"],
                        aws_access_key_id=stack["MBT_S3_ACCESS_KEY"],
                        aws_secret_access_key=stack["MBT_S3_SECRET_KEY"])


def _delete_prefix(s3, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def _base_env() -> dict[str, str]:
    """A CI container's environment: no Airflow connections, no stack variables."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_CONN_", "MBT_", "AIRFLOW__MBT__", "S3_", "PG_"))}


def _run_step(step: dict, project: Path, secrets: dict[str, str]) -> list[subprocess.CompletedProcess]:
    env = _base_env()
    for key, value in (step.get("environment") or {}).items():
        env[key] = secrets[value["from_secret"]] if isinstance(value, dict) else str(value)
    env["PATH"] = f"{MBT.parent}{os.pathsep}{env.get('PATH', '')}"
    results = []
    for line in step["commands"]:
        assert "mbt " in line, line
        # as the agent runs it: Woodpecker turns `$$` into `$`, a POSIX shell runs the line
        results.append(subprocess.run(["sh", "-ec", line.replace("$$", "$")], cwd=project, env=env,
                                      capture_output=True, text=True, timeout=600))
    return results


@pytest.fixture
def ci_project(tmp_path):
    """A freshly initialised project as the data scientist pushes it: the scaffolded serving
    pipeline follows the registry alias, so it validates and deploys before any model exists (no
    run id to paste); for this test the prod target publishes to a unique prefix."""
    out = subprocess.run([str(MBT), "init", "demo", "--dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "demo"
    prefix = f"test-ci/{uuid.uuid4().hex[:12]}/"
    profiles_path = project / "profiles.yaml"
    profiles = yaml.safe_load(profiles_path.read_text())
    (profile,) = profiles.values()
    profile["outputs"]["prod"]["manifests"]["uri"] = f"s3://{BUCKET}/{prefix}"
    profiles_path.write_text(yaml.safe_dump(profiles, sort_keys=False))
    # what the resolve-digest step writes (no registry here)
    (project / ".mbt-image").write_text(f"zot-registry:5050/demo:{'0' * 40}@sha256:{'a' * 64}\n")
    return project, prefix


def test_woodpecker_mbt_steps_publish_manifests_to_s3(ci_project):
    project, prefix = ci_project
    stack = _stack_env()
    s3 = _s3(stack)
    steps = yaml.safe_load((project / ".woodpecker.yml").read_text())["steps"]
    secrets = {"mbt_s3_connection": stack["AIRFLOW_CONN_MBT_S3"]}
    try:
        for name in ("validate", "compile", "deploy"):
            for proc in _run_step(steps[name], project, secrets):
                assert proc.returncode == 0, f"{name}: {proc.args}\n{proc.stdout}\n{proc.stderr}"
        compiled = sorted(p.parent.name for p in (project / "target").glob("*/manifest.json"))
        assert compiled == ["serving_churn_model_v1", "training_churn_model_v1"]
        for name in compiled:
            local = json.loads((project / "target" / name / "manifest.json").read_text())
            body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}{name}/manifest.json")["Body"].read()
            assert json.loads(body)["content_hash"] == local["content_hash"]
        # Pushing the same commit again (a CI re-run) is a no-op, not a refusal.
        (rerun,) = _run_step(steps["deploy"], project, secrets)
        assert rerun.returncode == 0, rerun.stderr
        assert rerun.stdout.count("unchanged") == 2, rerun.stdout
        # A fix (here in lib/) is deployed by the same steps as a new release: no --force.
        features = project / "lib" / "features.py"
        features.write_text(features.read_text() + "\n# a fix\n")
        for name in ("compile", "deploy"):
            for proc in _run_step(steps[name], project, secrets):
                assert proc.returncode == 0, f"{name}: {proc.args}\n{proc.stdout}\n{proc.stderr}"
        for name in compiled:
            local = json.loads((project / "target" / name / "manifest.json").read_text())
            body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}{name}/manifest.json")["Body"].read()
            assert json.loads(body)["content_hash"] == local["content_hash"]
            history = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}{name}/releases.json")["Body"].read())
            assert [e["action"] for e in history["events"]] == ["deploy", "deploy"]
        # The deploy step has no credentials of its own: without the secret it fails clearly.
        (denied,) = _run_step(steps["deploy"], project, {"mbt_s3_connection": ""})
        assert denied.returncode == 2 and "mbt_s3" in denied.stderr
        assert stack["MBT_S3_SECRET_KEY"] not in rerun.stdout + rerun.stderr + denied.stderr
    finally:
        _delete_prefix(s3, BUCKET, prefix)


def test_stack_bucket_job_creates_missing_buckets_idempotently():
    stack = _stack_env()
    s3 = _s3(stack)
    names = [f"mbt-test-{uuid.uuid4().hex[:10]}", f"mbt-test-{uuid.uuid4().hex[:10]}"]
    env = {**_base_env(), "S3_ENDPOINT_URL": stack["MBT_S3_ENDPOINT_URL"],
           "S3_ACCESS_KEY": stack["MBT_S3_ACCESS_KEY"], "S3_SECRET_KEY": stack["MBT_S3_SECRET_KEY"],
           "S3_BUCKETS": ",".join(names)}
    script = ROOT / "infra" / "seaweedfs" / "create_buckets.py"
    try:
        first = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        assert all(f"bucket {n} created" in first.stdout for n in names)
        existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert set(names) <= existing
        again = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0 and all(f"bucket {n} exists" in again.stdout for n in names)
        bad = subprocess.run([sys.executable, str(script)], env={**env, "S3_SECRET_KEY": "wrong-key"},
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode != 0
    finally:
        for n in names:
            try:
                s3.delete_bucket(Bucket=n)
            except Exception:  # noqa: BLE001 - best effort cleanup of a test bucket
                pass
