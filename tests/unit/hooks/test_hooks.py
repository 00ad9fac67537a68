"""H2OHook and MLflowHook built on real Airflow connections (``AIRFLOW_CONN_*`` env, no DB)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.hooks.h2o import H2OHook
from airflow_mbt.hooks.mlflow import MLflowHook


def _conn_env(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def http_server():
    """A real local HTTP server answering 200 and recording the Authorization headers."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200 if self.path in ("/health", "/3/Cloud") else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_hook_class_attributes():
    assert (H2OHook.conn_type, H2OHook.default_conn_name, H2OHook.conn_name_attr) == ("h2o", "mbt_h2o", "h2o_conn_id")
    assert (MLflowHook.conn_type, MLflowHook.default_conn_name, MLflowHook.conn_name_attr) == (
        "mlflow", "mbt_mlflow", "mlflow_conn_id")


def test_h2o_url_and_connect_kwargs_from_env_connection(monkeypatch):
    _conn_env(monkeypatch, "mbt_h2o", conn_type="h2o", host="127.0.0.1", port=54321)
    hook = H2OHook()
    assert hook.get_url() == "http://127.0.0.1:54321"
    assert hook.connect_kwargs() == {"url": "http://127.0.0.1:54321", "verify_ssl_certificates": True,
                                     "verbose": False}


def test_h2o_https_auth_and_extras(monkeypatch):
    _conn_env(monkeypatch, "h2o_secure", conn_type="h2o", host="h2o.example", schema="https",
              login="ds", password="pw-123", extra={"verify_ssl": "false", "context_path": "/h2o/"})
    kwargs = H2OHook("h2o_secure").connect_kwargs()
    assert kwargs["url"] == "https://h2o.example:54321/h2o"
    assert kwargs["auth"] == ("ds", "pw-123")
    assert kwargs["verify_ssl_certificates"] is False


def test_default_port_when_missing(monkeypatch):
    _conn_env(monkeypatch, "mbt_mlflow", conn_type="mlflow", host="mlflow.internal")
    assert MLflowHook().get_tracking_uri() == "http://mlflow.internal:5000"


def test_missing_host_and_bad_protocol_are_input_errors(monkeypatch):
    _conn_env(monkeypatch, "nohost", conn_type="mlflow")
    with pytest.raises(MBTInputError, match="has no host") as err:
        MLflowHook("nohost").get_tracking_uri()
    assert err.value.field == "host"
    _conn_env(monkeypatch, "badproto", conn_type="h2o", host="x", schema="ftp")
    with pytest.raises(MBTInputError, match="not http/https"):
        H2OHook("badproto").get_url()


def test_mlflow_uri_never_contains_credentials(monkeypatch):
    _conn_env(monkeypatch, "mbt_mlflow", conn_type="mlflow", host="127.0.0.1", port=5000,
              login="alice", password="s3cr3t-value", extra={"path": "mlflow"})
    hook = MLflowHook()
    assert hook.get_tracking_uri() == "http://127.0.0.1:5000/mlflow"
    assert "s3cr3t" not in hook.get_tracking_uri()


def test_mlflow_token_env_only_inside_credentials_scope(monkeypatch):
    for key in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "outer")
    _conn_env(monkeypatch, "mbt_mlflow", conn_type="mlflow", host="127.0.0.1",
              password="tok-s3cr3t", extra={"insecure_tls": True})
    hook = MLflowHook()
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    with hook.credentials() as uri:
        assert uri == "http://127.0.0.1:5000"
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == "tok-s3cr3t"
        assert os.environ["MLFLOW_TRACKING_INSECURE_TLS"] == "true"
        assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert os.environ["MLFLOW_TRACKING_INSECURE_TLS"] == "outer"


def test_mlflow_get_client_is_scoped(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    _conn_env(monkeypatch, "mbt_mlflow", conn_type="mlflow", host="127.0.0.1", port=5999,
              login="bob", password="pw")
    with MLflowHook().get_client() as client:
        assert client.tracking_uri == "http://127.0.0.1:5999"
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "bob"
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ


def test_test_connection_against_real_http_server(monkeypatch, http_server):
    port, seen = http_server
    _conn_env(monkeypatch, "mbt_mlflow", conn_type="mlflow", host="127.0.0.1", port=port, password="tok")
    _conn_env(monkeypatch, "mbt_h2o", conn_type="h2o", host="127.0.0.1", port=port, login="u", password="p")
    ok, msg = MLflowHook().test_connection()
    assert ok and "HTTP 200" in msg and "tok" not in msg
    ok, msg = H2OHook().test_connection()
    assert ok
    assert seen[0] == ("/health", "Bearer tok")
    assert seen[1][0] == "/3/Cloud" and seen[1][1].startswith("Basic ")


def test_test_connection_reports_unreachable(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _conn_env(monkeypatch, "mbt_h2o", conn_type="h2o", host="127.0.0.1", port=port)
    ok, msg = H2OHook().test_connection()
    assert not ok and "unreachable" in msg
