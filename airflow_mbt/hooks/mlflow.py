"""``MLflowHook``: the ``mlflow`` connection type (an MLflow tracking server)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from airflow_mbt.hooks._base import ServiceHook
from airflow_mbt.hooks._url import flag

# Env vars the MLflow client reads per request; set only inside ``credentials()``.
_AUTH_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
             "MLFLOW_TRACKING_INSECURE_TLS")


class MLflowHook(ServiceHook):
    """An MLflow tracking server from an Airflow connection.

    Fields: host, port (5000), schema (http|https); login+password -> basic auth, password
    alone -> bearer token; extra ``insecure_tls`` and ``path``. Credentials go to the MLflow
    client through its environment variables and only for the duration of ``credentials()`` /
    ``get_client()``; they are never part of the tracking URI.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mbt_mlflow"
    conn_type = "mlflow"
    hook_name = "MLflow tracking server"
    default_port = 5000
    service = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(mlflow_conn_id, **kwargs)

    def get_tracking_uri(self) -> str:
        """Tracking server URL (no credentials)."""
        return self.base_url()

    def auth_env(self) -> dict[str, str]:
        """The MLflow client env vars for this connection (secret values: never log them)."""
        conn = self.connection
        env: dict[str, str] = {}
        if conn.login:
            env["MLFLOW_TRACKING_USERNAME"] = conn.login
            env["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        elif conn.password:
            env["MLFLOW_TRACKING_TOKEN"] = conn.password
        if flag(conn.extra_dejson, "insecure_tls", False):
            env["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
        return env

    @contextmanager
    def credentials(self) -> Iterator[str]:
        """Within the block the MLflow client authenticates as this connection; yields the
        tracking URI. The previous environment is restored afterwards."""
        wanted = self.auth_env()
        saved = {k: os.environ.get(k) for k in _AUTH_ENV}
        try:
            for key in _AUTH_ENV:
                if key in wanted:
                    os.environ[key] = wanted[key]
                else:
                    os.environ.pop(key, None)
            yield self.get_tracking_uri()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @contextmanager
    def get_client(self):
        """``with hook.get_client() as client:`` an ``mlflow.MlflowClient`` for this server."""
        from mlflow import MlflowClient  # lazy: heavy

        with self.credentials() as uri:
            yield MlflowClient(tracking_uri=uri)

    def get_conn(self):
        return self.get_tracking_uri()

    def test_connection(self) -> tuple[bool, str]:
        """``GET /health`` of the tracking server."""
        from airflow_mbt.hooks._probe import probe

        conn = self.connection
        return probe(self.get_tracking_uri() + "/health", "MLflow",
                     auth=(conn.login, conn.password) if conn.login else None,
                     token=None if conn.login else (conn.password or None),
                     verify=not flag(conn.extra_dejson, "insecure_tls", False))
