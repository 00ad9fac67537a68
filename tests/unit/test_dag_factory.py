"""The loader DAG file through Airflow's DagBag, pointed at a local folder of manifests; plus the
parse-time cache of an s3:// prefix when S3 is unreachable or the TTL has not passed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow_manifests import build_manifest, write_tree

from airflow_mbt import dag_factory

REPO = Path(__file__).resolve().parents[2]
LOADER = REPO / "dags" / "mbt_loader.py"


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(LOADER))


@pytest.fixture
def manifests_dir(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "target", [
        build_manifest("training_churn_model_v1", "training"),
        build_manifest("serving_churn_model_v1", "serving",
                       default_args={"owner": "serving-team", "retries": 1, "retry_delay_minutes": 2}),
    ])
    monkeypatch.setenv("MBT_MANIFESTS_URI", str(root))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    return root


def test_loader_builds_one_dag_per_manifest(manifests_dir):
    bag = _dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["serving_churn_model_v1", "training_churn_model_v1"]
    training, serving = bag.dags["training_churn_model_v1"], bag.dags["serving_churn_model_v1"]
    assert training.schedule == "@monthly" and serving.schedule == "@daily"
    assert training.default_args == {"owner": "de-team", "retries": 2, "retry_delay": timedelta(minutes=5)}
    assert serving.default_args["retry_delay"] == timedelta(minutes=2)
    assert serving.tasks[0].owner == "serving-team" and serving.tasks[0].retries == 1
    assert training.catchup is False and training.max_active_runs == 1
    assert training.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert set(training.tags) == {"churn", "training", "mbt"}
    assert set(serving.tags) == {"churn", "serving", "mbt"}
    assert dag_factory.LAST_PARSE["errors"] == {} and dag_factory.LAST_PARSE["from_cache"] == 0


def test_tasks_and_dependencies_follow_the_manifest(manifests_dir):
    from airflow_mbt.operators.step import MBTStepOperator

    serving = _dagbag().dags["serving_churn_model_v1"]
    upstream = {t.task_id: set(t.upstream_task_ids) for t in serving.tasks}
    assert upstream == {"load_model": set(), "load_scoring_data": set(),
                        "apply_transforms": {"load_model", "load_scoring_data"},
                        "predict": {"load_model", "apply_transforms"}, "publish": {"load_model", "predict"}}
    training = _dagbag().dags["training_churn_model_v1"]
    assert [t.task_id for t in training.topological_sort()] == [
        "load_data", "split_data", "train_model", "evaluate", "log_run"]
    task = serving.get_task("predict")
    assert isinstance(task, MBTStepOperator)
    manifest = build_manifest("serving_churn_model_v1", "serving",
                              default_args={"owner": "serving-team", "retries": 1, "retry_delay_minutes": 2})
    assert task.manifest_hash == manifest.content_hash
    assert task.manifest_uri == str(manifests_dir / "serving_churn_model_v1" / "manifest.json")
    assert (task.pipeline, task.step, task.target) == ("serving_churn_model_v1", "predict", "dev")


def test_doc_md_has_owner_hash_and_source(manifests_dir):
    dag = _dagbag().dags["training_churn_model_v1"]
    doc = dag.doc_md
    assert "| Owner | ds-team |" in doc and "| Problem type | binary_classification |" in doc
    assert "| Framework | sklearn |" in doc and "| Target | dev |" in doc
    assert build_manifest("training_churn_model_v1").content_hash in doc
    assert "```yaml\nschema_version: 1\nproject:\n  name: training_churn_model_v1" in doc


def test_malformed_manifest_is_reported_and_others_load(manifests_dir):
    broken = manifests_dir / "broken_pipeline" / "manifest.json"
    broken.parent.mkdir()
    broken.write_text('{"manifest_version": 1, "pipeline": ')
    bag = _dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["serving_churn_model_v1", "training_churn_model_v1"]
    errors = dag_factory.LAST_PARSE["errors"]
    assert list(errors) == [str(broken)] and "not valid JSON" in errors[str(broken)]


def test_unbuildable_manifest_is_reported_and_others_load(manifests_dir):
    bad = build_manifest("odd_executor")
    bad.data["target"]["executor"] = {"type": "spark"}
    from airflow_mbt.manifest import Manifest

    write_tree(manifests_dir, [Manifest.build({k: v for k, v in bad.data.items() if k != "content_hash"})])
    bag = _dagbag()
    assert "odd_executor" not in bag.dags and len(bag.dags) == 2
    [reason] = dag_factory.LAST_PARSE["errors"].values()
    assert "unknown executor type 'spark'" in reason


def test_task_time_parse_builds_only_that_dag(manifests_dir, monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "serving_churn_model_v1")
    bag = _dagbag()
    assert list(bag.dags) == ["serving_churn_model_v1"]
    assert dag_factory.LAST_PARSE["only"] == "serving_churn_model_v1"


def test_parse_log_line(manifests_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="airflow_mbt.dag_factory"):
        dag_factory.build_dags()
    assert any("mbt: parsed 2 manifests into 2 DAGs (0 from cache, 0 errors) in" in r.getMessage()
               for r in caplog.records)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_s3_cache(cache_dir: Path, prefix: str, manifests, checked_at: float) -> None:
    """The cache a previous successful parse of ``prefix`` leaves behind."""
    from airflow_mbt.manifests.backends import pinned_key, s3_location
    from airflow_mbt.manifests.cache import _S3Cache

    cache = _S3Cache(s3_location(prefix, "mbt_s3"), cache_dir)
    for m in manifests:
        cache.file(m.name).parent.mkdir(parents=True, exist_ok=True)
        cache.file(m.name).write_text(m.to_json())
        cache.index["entries"][m.name] = {"etag": "etag-" + m.name, "pins": [pinned_key(m.name, m.content_hash)]}
    cache.index["checked_at"] = checked_at
    cache.save()


PROBE = """
import sys, json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
from airflow_mbt import dag_factory
print("RESULT " + json.dumps({"dags": sorted(bag.dags), "errors": {k: str(v) for k, v in bag.import_errors.items()},
      "parse": {k: v for k, v in dag_factory.LAST_PARSE.items() if k != "seconds"},
      "boto3": "boto3" in sys.modules, "kpo": "airflow_mbt.operators.kubernetes" in sys.modules}))
"""


def _probe(env_extra: dict) -> dict:
    env = {**os.environ, **env_extra}
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    out = subprocess.run([sys.executable, "-c", PROBE, str(LOADER)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture
def s3_env(tmp_path):
    prefix = "s3://mbt-pipeline-artifacts/manifests/"
    manifests = [build_manifest("training_churn_model_v1"), build_manifest("serving_churn_model_v1", "serving")]
    conn = {"conn_type": "aws", "login": "AKIDUNIT", "password": "unit-secret",
            "extra": {"endpoint_url": f"http://127.0.0.1:{_closed_port()}", "region_name": "us-east-1"}}
    env = {"MBT_MANIFESTS_URI": prefix, "MBT_CACHE_DIR": str(tmp_path / "cache"),
           "AIRFLOW_CONN_MBT_S3": json.dumps(conn), "MBT_CACHE_TTL_SECONDS": "300"}
    return prefix, manifests, env, tmp_path / "cache"


def test_s3_unreachable_builds_every_dag_from_cache(s3_env):
    prefix, manifests, env, cache_dir = s3_env
    _seed_s3_cache(cache_dir, prefix, manifests, checked_at=time.time() - 3600)  # TTL passed
    result = _probe(env)
    assert result["errors"] == {}
    assert result["dags"] == ["serving_churn_model_v1", "training_churn_model_v1"]
    assert result["parse"]["from_cache"] == 2 and result["parse"]["fetched"] == 0
    [warning] = result["parse"]["warnings"]
    assert "unreachable" in warning and "from the cache" in warning and "unit-secret" not in warning


def test_a_failing_secrets_backend_builds_every_dag_from_cache(s3_env):
    """The manifests connection cannot be looked up (the secrets backend is down): the loader
    keeps every DAG from its cache and logs one warning naming the backend, never an import error."""
    prefix, manifests, env, cache_dir = s3_env
    _seed_s3_cache(cache_dir, prefix, manifests, checked_at=time.time() - 3600)  # TTL passed
    env = {k: v for k, v in env.items() if k != "AIRFLOW_CONN_MBT_S3"}
    env["AIRFLOW__SECRETS__BACKEND"] = "failing_secrets_backend.FailingSecretsBackend"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "unit"), os.environ.get("PYTHONPATH", "")])
    result = _probe(env)
    assert result["errors"] == {}
    assert result["dags"] == ["serving_churn_model_v1", "training_churn_model_v1"]
    [warning] = result["parse"]["warnings"]
    assert "from the cache" in warning and "FailingSecretsBackend" in warning


def test_within_ttl_no_s3_request_and_no_boto3(s3_env):
    prefix, manifests, env, cache_dir = s3_env
    _seed_s3_cache(cache_dir, prefix, manifests, checked_at=time.time())
    result = _probe(env)
    assert result["dags"] == ["serving_churn_model_v1", "training_churn_model_v1"]
    assert result["parse"]["warnings"] == [] and result["parse"]["from_cache"] == 2
    assert result["boto3"] is False
    assert result["kpo"] is False  # local executor only: the Kubernetes operator is never imported


def test_dag_factory_module_imports_nothing_heavy():
    code = ("import sys, airflow_mbt.dag_factory, airflow_mbt.manifests.store, airflow_mbt.manifests.cache; "
            "import airflow_mbt.manifests.backends, airflow_mbt.plugins.storage.s3; "
            "heavy = [m for m in ('airflow', 'pandas', 'numpy', 'boto3', 'kubernetes', 'mlflow', 'h2o', "
            "'sklearn', 'pyarrow', 'psycopg') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_kubernetes_target_builds_pod_operators(manifests_dir):
    write_tree(manifests_dir, [build_manifest("training_on_k8s", executor="kubernetes",
                                              resources={"train_model": {"cpu": "2", "memory": "4Gi"}})])
    bag = _dagbag()
    from airflow_mbt.operators.kubernetes import MBTKubernetesStepOperator
    from airflow_mbt.operators.step import MBTStepOperator

    k8s = bag.dags["training_on_k8s"]
    assert all(isinstance(t, MBTKubernetesStepOperator) for t in k8s.tasks)
    assert k8s.get_task("train_model").container_resources.limits == {"cpu": "2", "memory": "4Gi"}
    assert k8s.get_task("load_data").namespace == "mbt-pipelines"
    assert all(isinstance(t, MBTStepOperator) for t in bag.dags["serving_churn_model_v1"].tasks)
    assert set(k8s.tags) == {"churn", "training", "mbt"}
