"""The H2O hook's connection test names the cloud and its size, from a real /3/Cloud answer shape."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from airflow_mbt.hooks.h2o import H2OHook, describe_cloud


def _serve(body: bytes) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_connection_reports_cloud_size(monkeypatch):
    body = json.dumps({"cloud_name": "mbt-shared", "cloud_size": 2, "cloud_healthy": True, "version": "3.46.0.11",
                       "nodes": [{}, {}]}).encode()
    server = _serve(body)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_H2O_FAKE", json.dumps({"conn_type": "h2o", "host": "127.0.0.1",
                                                                "port": server.server_port, "schema": "http"}))
        ok, message = H2OHook("h2o_fake").test_connection()
    finally:
        server.shutdown()
    assert ok
    assert message.endswith("/3/Cloud: cloud mbt-shared, cloud_size 2, healthy, version 3.46.0.11")


def test_an_unusable_body_is_said_so():
    assert describe_cloud(b"<html>") == "not an H2O /3/Cloud answer"
    assert "NOT healthy" in describe_cloud(json.dumps({"cloud_size": 1, "cloud_healthy": False}).encode())
