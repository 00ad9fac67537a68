"""Fixture layer shared by every integration test: the real local stack.

The session fixture ``stack`` (autouse for this directory) runs ``scripts/stack.sh up`` - a fast
no-op when everything is healthy - and loads ``scripts/stack.env`` into ``os.environ`` (endpoints,
local keys, ``AIRFLOW_CONN_MBT_*``). A service that cannot start FAILS the tests with the stack's
message and log tail; nothing here ever skips.

Fixtures: ``stack_env``, ``pg_warehouse`` (psycopg connection as mbt_user), ``scratch_schema``
(a fresh schema in warehouse, dropped afterwards), ``s3_client`` (boto3), ``s3_prefix`` (a fresh
key prefix in mbt-pipeline-artifacts, emptied afterwards), ``mlflow_tracking_uri``, ``h2o_url``,
``stack_runtime`` (a ``TargetRuntime`` whose connections are the stack's).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
STACK_ENV = REPO / "scripts" / "stack.env"
PIPELINE_BUCKET = "mbt-pipeline-artifacts"
_SHELL_VARS = {"PWD", "OLDPWD", "SHLVL", "_"}


def load_stack_env() -> dict[str, str]:
    """The variables ``scripts/stack.env`` defines, evaluated by bash exactly as the scripts do."""
    if not STACK_ENV.is_file():
        pytest.fail(f"{STACK_ENV} is missing: it defines the stack endpoints and connections")
    out = subprocess.run(["env", "-i", "bash", "-c", 'set -a; . "$1"; env -0', "_", str(STACK_ENV)],
                         capture_output=True, check=True).stdout.decode()
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in _SHELL_VARS}


def stack_up(*services: str) -> None:
    """``scripts/stack.sh up [services]``; fails the test run with its output when it fails."""
    proc = subprocess.run(["bash", str(STACK_SH), "up", *services], capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"scripts/stack.sh up {' '.join(services)} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def stack() -> dict[str, str]:
    stack_up()
    env = load_stack_env()
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def stack_env(stack) -> dict[str, str]:
    return dict(stack)


def pg_conninfo(env: dict[str, str], **overrides) -> dict:
    info = dict(host=env["MBT_STACK_HOST"], port=int(env["MBT_PG_PORT"]), dbname=env["MBT_PG_DATABASE"],
                user=env["MBT_PG_USER"], password=env["MBT_PG_PASSWORD"], connect_timeout=10)
    info.update(overrides)
    return info


@pytest.fixture
def pg_warehouse(stack_env):
    """Autocommit psycopg connection to the warehouse database as mbt_user."""
    import psycopg

    conn = psycopg.connect(autocommit=True, **pg_conninfo(stack_env))
    yield conn
    conn.close()


@pytest.fixture
def scratch_schema(pg_warehouse) -> str:
    """A fresh schema (``mbt_test_<hex>``) owned by mbt_user, dropped with its tables afterwards."""
    name = f"mbt_test_{uuid.uuid4().hex[:10]}"
    pg_warehouse.execute(f'CREATE SCHEMA "{name}"')
    yield name
    pg_warehouse.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def s3_client(stack_env):
    import boto3

    return boto3.client("s3", endpoint_url=stack_env["MBT_S3_ENDPOINT_URL"],
                        aws_access_key_id=stack_env["MBT_S3_ACCESS_KEY"],
                        aws_secret_access_key=stack_env["MBT_S3_SECRET_KEY"],
                        region_name=stack_env["MBT_S3_REGION"])


@pytest.fixture
def s3_prefix(s3_client) -> str:
    """A fresh ``tests/<hex>`` prefix in mbt-pipeline-artifacts, emptied afterwards."""
    prefix = f"tests/{uuid.uuid4().hex[:12]}"
    yield prefix
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=PIPELINE_BUCKET, Prefix=prefix + "/")
    keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):
        s3_client.delete_objects(Bucket=PIPELINE_BUCKET, Delete={"Objects": keys[start:start + 1000]})


@pytest.fixture(scope="session")
def mlflow_tracking_uri(stack_env) -> str:
    return stack_env["MBT_MLFLOW_URI"]


@pytest.fixture
def mlflow_conn_env(monkeypatch):
    """``set(conn_id, uri)``: an Airflow connection (env ``AIRFLOW_CONN_*``) to the MLflow server."""
    import json

    def set_conn(conn_id: str, uri: str) -> None:
        host, port = uri.split("://", 1)[1].rsplit(":", 1)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                           json.dumps({"conn_type": "mlflow", "host": host, "port": int(port), "schema": "http"}))
    return set_conn


@pytest.fixture(scope="session")
def h2o_url(stack_env) -> str:
    return stack_env["MBT_H2O_URL"]


@pytest.fixture
def stack_runtime(tmp_path):
    """A ``TargetRuntime`` for a prod-like target on the stack (conn ids mbt_warehouse, mbt_s3)."""
    from airflow_mbt.runtime.context import TargetRuntime

    target = {
        "name": "stack",
        "storage": {"type": "s3", "config": {"bucket": PIPELINE_BUCKET, "conn_id": "mbt_s3"}},
        "data_connector": {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": "public"}},
        "mlflow": {"conn_id": "mbt_mlflow"},
        "h2o": {"conn_id": "mbt_h2o"},
        "secrets": {"provider": "env"},
    }
    runtime = TargetRuntime(target=target, project_dir=tmp_path)
    yield runtime
    runtime.close()
