"""airflow_mbt.manifests.backends: an ``s3://`` manifests location gets its client from the same
S3Hook session as artifact storage (``S3Storage``), so endpoint, keys, session token and
``role_arn`` of the Airflow connection apply to manifests too.

A loopback HTTP server plays STS (``AssumeRole``) and S3 (``ListObjectsV2``) and records what
each request carried; the connection is an in-memory ``airflow.sdk.Connection`` handed to
Airflow the way a deployment without a database does (``AIRFLOW_CONN_<ID>``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.manifests.backends import hash_hex, is_pinned_key, location_for, pinned_key, split_s3_uri
from airflow_mbt.plugins.storage.s3 import S3Storage

BUCKET = "mbt-manifests"
ROLE = "arn:aws:iam::123456789012:role/mbt-deployer"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class _FakeAws(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _reply(self, body: str) -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, **more: str) -> None:
        auth = self.headers.get("Authorization", "")
        match = _CREDENTIAL.search(auth)
        self.seen.append({"method": self.command, "path": self.path, "key_id": match.group(1) if match else "",
                          "token": self.headers.get("X-Amz-Security-Token", ""), **more})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self._record(action=form["Action"][0], role_arn=form.get("RoleArn", [""])[0])
        expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._reply(f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>
<SessionToken>assumed-session-token</SessionToken><Expiration>{expires}</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROA:mbt</AssumedRoleId><Arn>{ROLE}/mbt</Arn></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>""")

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        prefix = parse_qs(self.path.partition("?")[2]).get("prefix", [""])[0]
        self._reply(f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>{BUCKET}</Name><Prefix>{prefix}</Prefix>
<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>{prefix}churn/manifest.json</Key><ETag>"etag-1"</ETag><Size>2</Size>
<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>""")


@pytest.fixture
def fake_aws() -> Iterator[tuple[str, list[dict[str, str]]]]:
    _FakeAws.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _FakeAws.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_hand_built_client(monkeypatch):
    """Fail on ``boto3.client(...)`` (the default session) and count ``S3Hook.get_session`` calls."""
    import boto3
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    def refuse(*args, **kwargs):
        raise AssertionError("a client was built outside the S3Hook session")

    monkeypatch.setattr(boto3, "client", refuse)
    sessions: list[str | None] = []
    real = S3Hook.get_session

    def counted(self, *args, **kwargs):
        sessions.append(self.aws_conn_id)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(S3Hook, "get_session", counted)
    return sessions


def _define(monkeypatch, conn_id: str, extra: dict) -> None:
    from airflow.sdk import Connection

    conn = Connection(conn_id=conn_id, conn_type="aws", login="AKIDCONN", password="conn-secret",
                      extra=json.dumps(extra))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn.as_json())


def _both_list(conn_id: str) -> tuple[dict, list[str]]:
    """List once through the manifests location and once through artifact storage."""
    manifests = location_for(f"s3://{BUCKET}/deployed/", conn_id)
    artifacts = S3Storage({"bucket": BUCKET, "prefix": "runs", "conn_id": conn_id})
    listed = manifests.list(), artifacts.list("")
    assert manifests.storage.client.meta.endpoint_url == artifacts.client.meta.endpoint_url
    assert manifests.storage.client.meta.region_name == artifacts.client.meta.region_name == "eu-west-1"
    return listed


def test_session_token_and_endpoint_of_the_connection_sign_both_clients(fake_aws, monkeypatch,
                                                                         no_hand_built_client):
    endpoint, seen = fake_aws
    _define(monkeypatch, "mbt_tok", {"endpoint_url": endpoint, "region_name": "eu-west-1",
                                     "aws_session_token": "conn-session-token"})
    manifest_keys, artifact_keys = _both_list("mbt_tok")
    assert manifest_keys == {"churn/manifest.json": '"etag-1"'}
    assert artifact_keys == ["churn/manifest.json"]
    assert [(r["method"], r["key_id"], r["token"]) for r in seen] == [
        ("GET", "AKIDCONN", "conn-session-token")] * 2
    assert "prefix=deployed%2F" in seen[0]["path"] and "prefix=runs%2F" in seen[1]["path"]
    assert no_hand_built_client == ["mbt_tok", "mbt_tok"]


def test_role_arn_is_assumed_for_manifests_as_for_artifacts(fake_aws, monkeypatch, no_hand_built_client):
    endpoint, seen = fake_aws
    _define(monkeypatch, "mbt_role", {"endpoint_url": endpoint, "region_name": "eu-west-1", "role_arn": ROLE,
                                      "service_config": {"sts": {"endpoint_url": endpoint}}})
    _both_list("mbt_role")
    assume, list_manifests, assume_again, list_artifacts = seen
    for call in (assume, assume_again):  # the connection's own keys ask STS for the role
        assert (call["action"], call["role_arn"], call["key_id"]) == ("AssumeRole", ROLE, "AKIDCONN")
    for call in (list_manifests, list_artifacts):  # S3 sees only the assumed role's credentials
        assert (call["key_id"], call["token"]) == ("ASIAASSUMED", "assumed-session-token")
    assert no_hand_built_client == ["mbt_role", "mbt_role"]


def test_unreachable_endpoint_is_an_infra_error_naming_it_not_the_secret(monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    _define(monkeypatch, "mbt_dead", {"endpoint_url": dead})
    location = location_for(f"s3://{BUCKET}/x/", "mbt_dead", connect_timeout=1, max_attempts=1)
    with pytest.raises(InfraError) as err:
        location.list()
    assert dead in str(err.value) and "conn-secret" not in str(err.value)


def test_undefined_connection_is_an_input_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MBT_NOWHERE", raising=False)
    with pytest.raises(MBTInputError, match="'mbt_nowhere' is not defined"):
        location_for(f"s3://{BUCKET}/x/", "mbt_nowhere").get("p/manifest.json")


def test_key_layout():
    digest = "ab" * 32
    assert hash_hex(f"sha256:{digest}") == digest
    assert pinned_key("churn", f"sha256:{digest}") == f"churn/{digest}.json"
    assert is_pinned_key(f"churn/{digest}.json") and not is_pinned_key("churn/manifest.json")
    assert split_s3_uri("s3://b/some/prefix") == ("b", "some/prefix/")
    with pytest.raises(MBTInputError, match="invalid manifest hash"):
        hash_hex("sha256:xyz")
    with pytest.raises(MBTInputError, match="has no bucket"):
        location_for("s3:///prefix/")
