"""The manifest store and the parse-time cache against the stack's real S3 (SeaweedFS):
releases (publish, history with compare-and-swap, rollback, undeploy), ETag-driven refresh (one LIST, GETs only for
changed manifests), and an S3 outage after a successful parse (every DAG from the cache)."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from airflow_mbt.errors import RegistryConflictError
from airflow_mbt.manifest import Manifest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack_conn():
    up = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "up", "s3"], capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    out = subprocess.run(["bash", "-c", f"set -a; . {shlex.quote(str(REPO / 'scripts' / 'stack.env'))}; "
                                        "printf %s \"$AIRFLOW_CONN_MBT_S3\""],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


@pytest.fixture
def s3(stack_conn, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_MBT_S3", stack_conn)
    monkeypatch.setenv("MBT_CACHE_DIR", str(tmp_path / "cache"))
    prefix = f"s3://mbt-pipeline-artifacts/test-store/{uuid.uuid4().hex[:12]}/"
    yield prefix
    _delete_prefix(prefix, stack_conn, monkeypatch)


def _delete_prefix(prefix: str, conn: str, monkeypatch) -> None:
    from airflow_mbt.manifests.backends import s3_location

    monkeypatch.setenv("AIRFLOW_CONN_MBT_S3", conn)
    s3_location(prefix, "mbt_s3").storage.delete_prefix("")


@pytest.fixture
def s3_calls(monkeypatch):
    """Counts S3 API calls of every botocore client (the store's comes from an S3Hook session)."""
    from botocore.client import BaseClient

    calls: list[str] = []
    real = BaseClient._make_api_call

    def counted(self, operation_name, api_params):
        if self.meta.service_model.service_name == "s3":
            calls.append(operation_name)
        return real(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    return calls


def _manifest(name: str, schedule: str = "@daily") -> Manifest:
    return Manifest.build({
        "pipeline": {"name": name, "kind": "training", "owner": "ds", "tags": [], "source_yaml": "x: 1\n"},
        "schedule": schedule,
        "target": {"name": "prod", "executor": {"type": "local"}},
        "config": {"project": {"name": name}},
        "steps": [{"name": "load_data", "inputs": [], "outputs": [{"name": "raw_data", "kind": "table"}],
                   "depends_on": []}],
    })


def test_releases_publish_rollback_undeploy_on_s3(s3):
    from airflow_mbt.manifests import fetch_manifest, load_manifests, publish_manifests
    from airflow_mbt.manifests.releases import releases, rollback, undeploy

    v1, v2 = _manifest("churn_a"), _manifest("churn_a", "@hourly")
    assert [c["action"] for c in publish_manifests([v1], s3, dry_run=True)] == ["create"]
    [created] = publish_manifests([v1], s3)
    assert created["action"] == "create" and created["uri"] == f"{s3}churn_a/manifest.json"
    assert publish_manifests([v1], s3)[0]["action"] == "unchanged"
    [updated] = publish_manifests([v2], s3)  # a change is a new release, never a refusal
    assert updated["action"] == "update" and updated["previous_hash"] == v1.content_hash
    assert fetch_manifest(created["uri"]).schedule == "@hourly"
    # both releases stay fetchable by hash (running DAG runs keep their release)
    assert fetch_manifest(created["uri"], expected_hash=v1.content_hash).schedule == "@daily"
    assert fetch_manifest(updated["pinned_uri"], expected_hash=v1.content_hash).content_hash == v1.content_hash
    info = releases(s3, "churn_a")
    assert [(e["action"], e["content_hash"]) for e in info["events"]] == [
        ("deploy", v1.content_hash), ("deploy", v2.content_hash)] and info["current"] == v2.content_hash
    assert rollback(s3, "churn_a")["hash"] == v1.content_hash
    assert load_manifests(s3, ttl=0).manifests["churn_a"].content_hash == v1.content_hash
    assert undeploy(s3, "churn_a")["action"] == "undeploy"
    assert "churn_a" not in load_manifests(s3, ttl=0).manifests  # the DAG leaves Airflow
    assert [e["action"] for e in releases(s3, "churn_a")["events"]] == ["deploy", "deploy", "rollback", "undeploy"]
    assert rollback(s3, "churn_a", to="2")["hash"] == v2.content_hash  # re-deploy a release
    assert load_manifests(s3, ttl=0).manifests["churn_a"].schedule == "@hourly"


def test_history_compare_and_swap_loses_no_event_under_concurrent_writers(s3):
    from concurrent.futures import ThreadPoolExecutor

    from airflow_mbt.manifests.backends import s3_location
    from airflow_mbt.manifests.releases import append, history

    def write(i: int) -> None:
        append(s3_location(s3, "mbt_s3"), "churn_c", [{"action": "deploy", "content_hash": f"h{i}"}])

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    events, _ = history(s3_location(s3, "mbt_s3"), "churn_c")
    assert sorted(e["content_hash"] for e in events) == ["h0", "h1", "h2"]
    assert [e["n"] for e in events] == [1, 2, 3]


def test_conditional_put_detects_concurrent_change(s3):
    from airflow_mbt.manifests.backends import s3_location

    backend = s3_location(s3, "mbt_s3")
    backend.put_if_absent("p/manifest.json", b"{}")
    with pytest.raises(RegistryConflictError):
        backend.put_if_absent("p/manifest.json", b"{}")
    _, etag = backend.get("p/manifest.json")
    backend.put_if_match("p/manifest.json", b'{"a": 1}', etag)
    with pytest.raises(RegistryConflictError):
        backend.put_if_match("p/manifest.json", b'{"a": 2}', etag)  # stale ETag
    assert backend.get("p/manifest.json")[0] == b'{"a": 1}'


def test_refresh_gets_only_changed_manifests(s3, s3_calls):
    from airflow_mbt.manifests import load_manifests, publish_manifests

    publish_manifests([_manifest(f"pipe_{i}") for i in range(4)], s3)
    s3_calls.clear()
    first = load_manifests(s3, ttl=0)
    assert sorted(first.manifests) == [f"pipe_{i}" for i in range(4)] and first.fetched == 4
    assert s3_calls == ["ListObjectsV2"] + ["GetObject"] * 4
    s3_calls.clear()
    again = load_manifests(s3, ttl=0)
    assert (again.fetched, again.from_cache) == (0, 4) and s3_calls == ["ListObjectsV2"]
    publish_manifests([_manifest("pipe_2", "@weekly")], s3)
    s3_calls.clear()
    changed = load_manifests(s3, ttl=0)
    assert s3_calls == ["ListObjectsV2", "GetObject"] and changed.manifests["pipe_2"].schedule == "@weekly"
    s3_calls.clear()
    cached = load_manifests(s3, ttl=3600)
    assert s3_calls == [] and cached.from_cache == 4 and cached.manifests["pipe_2"].schedule == "@weekly"


def test_outage_after_successful_parse_builds_from_cache(s3, monkeypatch, stack_conn, tmp_path):
    from airflow_mbt.dag_factory import LAST_PARSE, build_dags
    from airflow_mbt.manifests import publish_manifests

    publish_manifests([_manifest("churn_x"), _manifest("churn_y")], s3)
    monkeypatch.setenv("MBT_MANIFESTS_URI", s3)
    monkeypatch.setenv("MBT_CACHE_TTL_SECONDS", "0")
    assert sorted(build_dags()) == ["churn_x", "churn_y"] and LAST_PARSE["fetched"] == 2
    with socket.socket() as sock:  # S3 goes away: same credentials, endpoint nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    conn = json.loads(stack_conn)
    conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{dead}"
    monkeypatch.setenv("AIRFLOW_CONN_MBT_S3", json.dumps(conn))
    dags = build_dags()
    assert sorted(dags) == ["churn_x", "churn_y"]
    assert LAST_PARSE["from_cache"] == 2 and LAST_PARSE["errors"] == {}
    [warning] = LAST_PARSE["warnings"]
    assert "unreachable" in warning and conn["password"] not in warning


LOADER_PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
from airflow_mbt import dag_factory
tasks = {d.dag_id: sorted({(t.manifest_uri, t.manifest_hash, t.manifest_conn_id) for t in d.tasks})
         for d in bag.dags.values()}
print("RESULT " + json.dumps({"dags": sorted(bag.dags), "errors": {k: str(v) for k, v in bag.import_errors.items()},
      "parse": {k: v for k, v in dag_factory.LAST_PARSE.items() if k != "seconds"}, "tasks": tasks}))
"""


def test_mbt_deploy_and_loader_through_the_airflow_connection(s3, stack_conn, tmp_path):
    """`mbt deploy --to s3://... --conn-id mbt_s3` and dags/mbt_loader.py, each in its own process,
    with only AIRFLOW_CONN_MBT_S3 (no S3 variables) telling where S3 is and which keys to use."""
    import os
    import sys

    import yaml

    from airflow_mbt.manifests import fetch_manifest

    mbt = Path(sys.executable).parent / "mbt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "MBT_", "AWS_", "S3_"))}
    env.update({"AIRFLOW_CONN_MBT_S3": stack_conn, "MBT_CACHE_DIR": str(tmp_path / "cache"),
                "AIRFLOW_HOME": str(tmp_path / "airflow_home")})

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(mbt), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
        return proc

    run("init", "demo", "--dir", str(tmp_path), cwd=tmp_path)
    project = tmp_path / "demo"
    serving = project / "pipelines" / "serving_churn_model_v1.yaml"
    doc = yaml.safe_load(serving.read_text())
    source = doc["serving"]["model_source"]  # pin a run instead of the scaffold's churn_model@champion
    for key in ("model_name", "alias"):
        source.pop(key, None)
    source["run_id"] = uuid.uuid4().hex
    doc["deployment"].pop("on_model_change", None)
    serving.write_text(yaml.safe_dump(doc, sort_keys=False))
    run("compile", "--target", "dev", cwd=project)
    deployed = run("deploy", "--target", "dev", "--to", s3, "--conn-id", "mbt_s3", cwd=project)
    names = ["serving_churn_model_v1", "training_churn_model_v1"]
    hashes = {n: json.loads((project / "target" / n / "manifest.json").read_text())["content_hash"] for n in names}
    for name in names:
        assert f"create    {name}  {hashes[name]}  -> {s3}{name}/manifest.json" in deployed.stdout

    probe_env = {**env, "MBT_MANIFESTS_URI": s3, "MBT_MANIFESTS_CONN_ID": "mbt_s3", "MBT_CACHE_TTL_SECONDS": "0",
                 "MBT_PROJECT_DIR": str(project)}
    proc = subprocess.run([sys.executable, "-c", LOADER_PROBE, str(REPO / "dags" / "mbt_loader.py")],
                          env=probe_env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["dags"] == names and result["errors"] == {} and result["parse"]["errors"] == {}
    assert result["parse"]["fetched"] == 2 and result["parse"]["warnings"] == []
    for name in names:
        [(uri, content_hash, conn_id)] = result["tasks"][name]  # every task of a DAG reads one pinned copy
        assert (content_hash, conn_id) == (hashes[name], "mbt_s3")
        assert uri == f"{s3}{name}/{content_hash.split(':', 1)[1]}.json"
        assert fetch_manifest(uri, conn_id="mbt_s3", expected_hash=content_hash).name == name
    assert json.loads(stack_conn)["password"] not in deployed.stdout + deployed.stderr + proc.stdout + proc.stderr
