"""Airflow end to end on the real local stack (PostgreSQL, SeaweedFS S3, MLflow server, H2O):

* the provider is visible to the ``airflow`` CLI and its ``h2o`` connection type can be added;
* a project compiled with ``mbt compile`` for a stack target is published to a fresh S3 prefix;
  ``dags/mbt_loader.py`` builds the DAGs from it; ``dag.test()`` of the training DAG produces an
  MLflow run on the server and ``dag.test()`` of the serving DAG writes ``churn_predictions`` rows;
* a non-retryable error (a secret that is not set) fails the task at once despite ``retries: 2``.

Each ``dag.test()`` runs in a fresh Python process with its own ``AIRFLOW_HOME`` (sqlite metadata
DB migrated once per module), so Airflow's configuration never leaks between tests.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRAINING = "training_churn_model_v1"
SERVING = "serving_churn_model_v1"

STACK_TARGET = {
    "executor": {"type": "local"},
    "storage": {"type": "s3", "config": {"bucket": "mbt-pipeline-artifacts", "conn_id": "mbt_s3"}},
    "data_connector": {"type": "postgres", "config": {"conn_id": "mbt_warehouse", "schema": "public"}},
    "mlflow": {"conn_id": "mbt_mlflow"},
    "h2o": {"conn_id": "mbt_h2o"},
    "secrets": {"provider": "env"},
}


def _stack_env() -> dict[str, str]:
    """``scripts/stack.env`` as a dict (after bringing the stack up; idempotent)."""
    up = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "up"], capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, f"stack.sh up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}"
    dump = subprocess.run(["bash", "-c", f"set -a; . {shlex.quote(str(REPO / 'scripts' / 'stack.env'))}; env -0"],
                          capture_output=True, timeout=60, check=True)
    env = dict(item.split("=", 1) for item in dump.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in env.items() if k.startswith(("AIRFLOW_CONN_", "MBT_", "PG_", "S3_"))}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """Environment of every Airflow process of this module: stack connections, a migrated sqlite
    metadata DB, the repo's dags/ folder and a private manifest cache."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MBT_", "_AIRFLOW"))}
    env.update(_stack_env())
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MBT_CACHE_DIR": str(home / "mbt_cache"),
        "MBT_MANIFESTS_CONN_ID": "mbt_s3",
        "MBT_CACHE_TTL_SECONDS": "0",  # every parse asks S3 (LIST), so a fresh publish is seen at once
    })
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env


def _run(cmd: list[str], env: dict, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_airflow_cli_lists_provider_adds_and_tests_connections(airflow_env):
    listed = _run([str(BIN / "airflow"), "providers", "list"], airflow_env)
    assert "airflow-mbt" in listed.stdout
    _run([str(BIN / "airflow"), "connections", "add", "x_h2o", "--conn-type", "h2o", "--conn-host", "127.0.0.1",
          "--conn-port", "54321"], airflow_env)
    got = _run([str(BIN / "airflow"), "connections", "get", "x_h2o", "-o", "json"], airflow_env)
    [conn] = json.loads(got.stdout[got.stdout.index("["):])
    assert (conn["conn_type"], conn["host"], str(conn["port"])) == ("h2o", "127.0.0.1", "54321")
    # `airflow connections test` goes through H2OHook/MLflowHook.test_connection to the real servers
    test_env = {**airflow_env, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    assert "Connection success!" in _run([str(BIN / "airflow"), "connections", "test", "x_h2o"], test_env).stdout
    mlflow_conn = json.loads(airflow_env["AIRFLOW_CONN_MBT_MLFLOW"])
    _run([str(BIN / "airflow"), "connections", "add", "x_mlflow", "--conn-type", "mlflow", "--conn-host",
          mlflow_conn["host"], "--conn-port", str(mlflow_conn["port"])], airflow_env)
    assert "Connection success!" in _run([str(BIN / "airflow"), "connections", "test", "x_mlflow"], test_env).stdout
    # H2OHook.connect() attaches the h2o client to the stack's shared server (mbt_h2o from the env)
    code = "from airflow_mbt.hooks.h2o import H2OHook; conn = H2OHook().connect(); print('H2O', conn.cluster.version)"
    assert "H2O 3.46.0.11" in _run([sys.executable, "-c", code], airflow_env).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory, airflow_env):
    """``mbt init`` project with a ``stack`` target (PostgreSQL, S3 storage, MLflow server) and
    sklearn training (fast); the serving pipeline takes its model run id from ``--vars``."""
    parent = tmp_path_factory.mktemp("proj")
    _run([str(BIN / "mbt"), "init", "demo"], airflow_env, cwd=parent)
    root = parent / "demo"
    profiles = yaml.safe_load((root / "profiles.yaml").read_text())
    [profile] = profiles.values()
    profile["outputs"]["stack"] = STACK_TARGET
    # keep retries (the no-retry test needs them) but do not wait minutes between attempts
    profile["orchestrator"]["config"]["default_args"]["retry_delay_minutes"] = 0
    profile["outputs"]["stack_missing_secret"] = {
        **STACK_TARGET,
        "data_connector": {"type": "postgres", "config": {
            "host": "127.0.0.1", "port": 5432, "database": "warehouse", "schema": "public", "user": "mbt_user",
            "password": "{{ secret('MBT_DAGTEST_UNSET_SECRET') }}"}}}
    (root / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    training = yaml.safe_load((root / "pipelines" / f"{TRAINING}.yaml").read_text())
    training["training"]["model_training"] = {
        "framework": "sklearn", "config": {"model": "RandomForestClassifier", "n_estimators": 50, "max_depth": 6,
                                           "seed": 42}}
    (root / "pipelines" / f"{TRAINING}.yaml").write_text(yaml.safe_dump(training, sort_keys=False))
    serving = yaml.safe_load((root / "pipelines" / f"{SERVING}.yaml").read_text())
    source = serving["serving"]["model_source"]  # the scaffold serves churn_model@champion: pin a run instead
    for key in ("model_name", "alias"):
        source.pop(key, None)
    source["run_id"] = "{{ var('model_run_id') }}"
    serving["deployment"].pop("on_model_change", None)  # follows an alias only
    (root / "pipelines" / f"{SERVING}.yaml").write_text(yaml.safe_dump(serving, sort_keys=False))
    return root


@contextmanager
def _connections(env: dict, *conn_ids: str):
    """Within the block this process sees the stack's ``AIRFLOW_CONN_<ID>`` for ``conn_ids``."""
    names = [f"AIRFLOW_CONN_{c.upper()}" for c in conn_ids]
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: env[n] for n in names})
    try:
        yield
    finally:
        for n, value in saved.items():
            if value is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = value


def _compile_and_publish(project: Path, env: dict, name: str, target: str, prefix: str, *vars_: str):
    from airflow_mbt.manifest import Manifest
    from airflow_mbt.manifests import publish_manifests

    args = [str(BIN / "mbt"), "compile", name, "--target", target]
    for v in vars_:
        args += ["--vars", v]
    _run(args, env, cwd=project)
    manifest = Manifest.read(project / "target" / name / "manifest.json")
    with _connections(env, "mbt_s3"):
        [change] = publish_manifests([manifest], prefix, conn_id="mbt_s3")
    assert change["action"] == "create", change
    return manifest


DAG_TEST = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow_mbt import dag_factory
from airflow_mbt.runtime.run_id import run_id_from_airflow

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
dr = dag.test()
tis = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in dr.get_task_instances()}
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
with create_session() as session:
    xcoms = {t: XComModel.deserialize_value(x) if hasattr(XComModel, "deserialize_value") else v
             for t, v, x in [(row.task_id, row.value, row) for row in session.query(XComModel).filter(
                 XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id, XComModel.key == "mbt_run_id")]}
print("RESULT " + json.dumps({
    "state": str(dr.state), "tasks": tis, "dag_ids": sorted(bag.dags), "parse": dag_factory.LAST_PARSE.get("errors"),
    "mbt_run_id": run_id_from_airflow(dag.dag_id, dr.run_id, dr.logical_date or dr.run_after),
    "retries": {t.task_id: t.retries for t in dag.tasks}, "xcom_run_ids": xcoms}, default=str))
"""


def _dag_test(env: dict, prefix: str, project: Path, dag_id: str) -> dict:
    run_env = {**env, "MBT_MANIFESTS_URI": prefix, "MBT_PROJECT_DIR": str(project)}
    proc = subprocess.run([sys.executable, "-c", DAG_TEST, str(REPO / "dags" / "mbt_loader.py"), dag_id],
                          env=run_env, cwd=project, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"dag.test failed\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    result["log"] = proc.stdout + proc.stderr
    return result


def _delete_prefix(prefix: str, env: dict) -> None:
    from airflow_mbt.manifests.backends import s3_location

    with _connections(env, "mbt_s3"):
        s3_location(prefix, "mbt_s3").storage.delete_prefix("")


@pytest.fixture(scope="module")
def prefix(airflow_env):
    prefix = f"s3://mbt-pipeline-artifacts/dagtest/{uuid.uuid4().hex[:10]}/"
    yield prefix
    _delete_prefix(prefix, airflow_env)


@pytest.fixture(scope="module")
def training_run(project, airflow_env, prefix):
    manifest = _compile_and_publish(project, airflow_env, TRAINING, "stack", prefix)
    return manifest, _dag_test(airflow_env, prefix, project, TRAINING)


@contextmanager
def _mlflow_client(env: dict):
    """An MlflowClient for the stack's server, through MLflowHook and the ``mbt_mlflow`` connection."""
    from airflow_mbt.hooks.mlflow import MLflowHook

    with _connections(env, "mbt_mlflow"), MLflowHook().get_client() as client:
        yield client


def test_training_dag_test_logs_an_mlflow_run(training_run, airflow_env):
    manifest, result = training_run
    assert result["state"] == "success", result["log"][-6000:]
    assert {t: s["state"] for t, s in result["tasks"].items()} == {
        s.name: "success" for s in manifest.steps}
    run_id = result["mbt_run_id"]
    assert f"mbt run id {run_id}" in result["log"]  # logged by every task
    assert result["xcom_run_ids"] == {s.name: run_id for s in manifest.steps}  # and pushed to XCom
    with _mlflow_client(airflow_env) as client:
        runs = client.search_runs(
            [client.get_experiment_by_name("churn_prediction").experiment_id],
            filter_string=f"tags.mbt_run_id = '{run_id}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline_name"] == TRAINING and run.data.tags["mbt_manifest_hash"] == manifest.content_hash
    assert 0.6 <= run.data.metrics["roc_auc"] <= 1.0


def test_serving_dag_test_writes_churn_predictions(training_run, project, airflow_env, prefix):
    import psycopg

    _, training = training_run
    assert training["state"] == "success"
    with _mlflow_client(airflow_env) as client:
        [run] = client.search_runs([client.get_experiment_by_name("churn_prediction").experiment_id],
                                   filter_string=f"tags.mbt_run_id = '{training['mbt_run_id']}'")
    manifest = _compile_and_publish(project, airflow_env, SERVING, "stack", prefix,
                                    f"model_run_id={run.info.run_id}")
    result = _dag_test(airflow_env, prefix, project, SERVING)
    assert result["state"] == "success", result["log"][-6000:]
    assert set(result["tasks"]) == {s.name for s in manifest.steps}
    assert result["dag_ids"] == [SERVING, TRAINING]
    conn = json.loads(airflow_env["AIRFLOW_CONN_MBT_WAREHOUSE"])
    with psycopg.connect(host=conn["host"], port=conn["port"], user=conn["login"], password=conn["password"],
                         dbname=conn["schema"]) as pg:
        rows = pg.execute("SELECT count(*), count(DISTINCT customer_id), min(prediction_probability), "
                          "max(prediction_probability), max(model_run_id) FROM churn_predictions "
                          "WHERE serving_run_id = %s", (result["mbt_run_id"],)).fetchone()
        scoring = pg.execute("SELECT count(*) FROM customers_to_score").fetchone()[0]
    count, distinct, pmin, pmax, model_run = rows
    assert count == distinct == scoring > 0
    assert 0.0 <= pmin <= pmax <= 1.0
    assert model_run == run.info.run_id


def test_missing_secret_fails_without_retry(project, airflow_env):
    prefix = f"s3://mbt-pipeline-artifacts/dagtest/{uuid.uuid4().hex[:10]}-fail/"
    env = {k: v for k, v in airflow_env.items() if k != "MBT_DAGTEST_UNSET_SECRET"}
    # mbt compile checks the secrets of a local-executor target; the worker that runs the DAG lacks it
    _compile_and_publish(project, {**env, "MBT_DAGTEST_UNSET_SECRET": "set-only-at-compile"}, TRAINING,
                         "stack_missing_secret", prefix)
    try:
        result = _dag_test(env, prefix, project, TRAINING)
    finally:
        _delete_prefix(prefix, env)
    assert result["state"] == "failed"
    assert result["retries"]["load_data"] == 2  # retries are configured ...
    assert result["tasks"]["load_data"] == {"state": "failed", "try_number": 1}, result["log"][-8000:]  # not used
    assert result["tasks"]["split_data"]["state"] == "upstream_failed"
    assert "secret 'MBT_DAGTEST_UNSET_SECRET' is not set" in result["log"]
