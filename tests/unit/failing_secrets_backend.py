"""Secrets backends for tests/unit/test_connections.py, configured through
``AIRFLOW__SECRETS__BACKEND`` exactly as a deployment configures Vault or AWS Secrets Manager."""

from __future__ import annotations

from airflow.secrets import BaseSecretsBackend


class FailingSecretsBackend(BaseSecretsBackend):
    """A backend whose service is down: every lookup raises."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        raise ConnectionError("vault.internal:8200 refused the connection")


class EmptySecretsBackend(BaseSecretsBackend):
    """A healthy backend that holds no connections."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        return None


class DenyingSecretsBackend(BaseSecretsBackend):
    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        raise AirflowSecretsBackendAccessDenied(f"no access to {conn_id}")
