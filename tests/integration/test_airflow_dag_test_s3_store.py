"""The manifest store and the parse-time cache against the stack's real S3 (SeaweedFS):
publish/refuse/force with conditional writes, ETag-driven refresh (one LIST, GETs only for
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
    from airflow_mbt.manifest_backends import S3Backend

    monkeypatch.setenv("AIRFLOW_CONN_MBT_S3", conn)
    backend = S3Backend(prefix, "mbt_s3")
    for key in backend.list():
        backend.client.delete_object(Bucket=backend.bucket, Key=backend.prefix + key)


@pytest.fixture
def s3_calls():
    """Counts S3 API calls made through boto3's default session (what the store uses)."""
    import boto3

    boto3.setup_default_session()
    calls: list[str] = []
    handler = lambda event_name, **kw: calls.append(event_name.rsplit(".", 1)[-1])  # noqa: E731
    boto3.DEFAULT_SESSION.events.register("before-call.s3", handler)
    yield calls
    boto3.DEFAULT_SESSION.events.unregister("before-call.s3", handler)


def _manifest(name: str, schedule: str = "@daily") -> Manifest:
    return Manifest.build({
        "pipeline": {"name": name, "kind": "training", "owner": "ds", "tags": [], "source_yaml": "x: 1\n"},
        "schedule": schedule,
        "target": {"name": "prod", "executor": {"type": "local"}},
        "config": {"project": {"name": name}},
        "steps": [{"name": "load_data", "inputs": [], "outputs": [{"name": "raw_data", "kind": "table"}],
                   "depends_on": []}],
    })


def test_publish_refuse_force_on_s3(s3):
    from airflow_mbt.manifest_store import fetch_manifest, publish_manifests

    v1, v2 = _manifest("churn_a"), _manifest("churn_a", "@hourly")
    assert [c["action"] for c in publish_manifests([v1], s3, dry_run=True)] == ["create"]
    [created] = publish_manifests([v1], s3)
    assert created["action"] == "create" and created["uri"] == f"{s3}churn_a/manifest.json"
    assert publish_manifests([v1], s3)[0]["action"] == "unchanged"
    [refused] = publish_manifests([v2], s3)
    assert refused["action"] == "refused" and "churn_a_v2" in refused["message"]
    assert fetch_manifest(created["uri"]).schedule == "@daily"
    assert publish_manifests([v2], s3, force=True)[0]["action"] == "update"
    assert fetch_manifest(created["uri"]).schedule == "@hourly"
    # both versions stay fetchable by hash (running DAG runs keep their version)
    assert fetch_manifest(created["uri"], expected_hash=v1.content_hash).schedule == "@daily"
    assert fetch_manifest(created["pinned_uri"], expected_hash=v1.content_hash).content_hash == v1.content_hash


def test_conditional_put_detects_concurrent_change(s3):
    from airflow_mbt.manifest_backends import S3Backend

    backend = S3Backend(s3, "mbt_s3")
    backend.put_if_absent("p/manifest.json", b"{}")
    with pytest.raises(RegistryConflictError):
        backend.put_if_absent("p/manifest.json", b"{}")
    _, etag = backend.get("p/manifest.json")
    backend.put_if_match("p/manifest.json", b'{"a": 1}', etag)
    with pytest.raises(RegistryConflictError):
        backend.put_if_match("p/manifest.json", b'{"a": 2}', etag)  # stale ETag
    assert backend.get("p/manifest.json")[0] == b'{"a": 1}'


def test_refresh_gets_only_changed_manifests(s3, s3_calls):
    from airflow_mbt.manifest_store import load_manifests, publish_manifests

    publish_manifests([_manifest(f"pipe_{i}") for i in range(4)], s3)
    s3_calls.clear()
    first = load_manifests(s3, ttl=0)
    assert sorted(first.manifests) == [f"pipe_{i}" for i in range(4)] and first.fetched == 4
    assert s3_calls == ["ListObjectsV2"] + ["GetObject"] * 4
    s3_calls.clear()
    again = load_manifests(s3, ttl=0)
    assert (again.fetched, again.from_cache) == (0, 4) and s3_calls == ["ListObjectsV2"]
    publish_manifests([_manifest("pipe_2", "@weekly")], s3, force=True)
    s3_calls.clear()
    changed = load_manifests(s3, ttl=0)
    assert s3_calls == ["ListObjectsV2", "GetObject"] and changed.manifests["pipe_2"].schedule == "@weekly"
    s3_calls.clear()
    cached = load_manifests(s3, ttl=3600)
    assert s3_calls == [] and cached.from_cache == 4 and cached.manifests["pipe_2"].schedule == "@weekly"


def test_outage_after_successful_parse_builds_from_cache(s3, monkeypatch, stack_conn, tmp_path):
    from airflow_mbt.dag_factory import LAST_PARSE, build_dags
    from airflow_mbt.manifest_store import publish_manifests

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
