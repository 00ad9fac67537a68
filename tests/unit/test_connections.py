"""Connection lookup failures are classified: missing -> input error (exit 2), a failing secrets
backend -> InfraError naming it (retried), an explicit deny -> not retryable. The backends are
real ``BaseSecretsBackend`` classes configured via ``AIRFLOW__SECRETS__BACKEND``."""

from __future__ import annotations

import json

import pytest

from airflow_mbt.connections import get_connection
from airflow_mbt.errors import AuthenticationError, InfraError, MBTInputError, classify


@pytest.fixture
def backend(monkeypatch):
    from airflow.sdk.configuration import clear_secrets_backends_cache

    def use(name: str | None) -> None:
        if name:
            monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", f"failing_secrets_backend.{name}")
        clear_secrets_backends_cache()

    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND", raising=False)
    yield use
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND", raising=False)
    clear_secrets_backends_cache()


def test_a_missing_connection_is_an_input_error(backend):
    backend("EmptySecretsBackend")
    with pytest.raises(MBTInputError) as err:
        get_connection("mbt_nowhere")
    assert classify(err.value).exit_code == 2 and not classify(err.value).retryable
    assert "'mbt_nowhere' is not defined" in str(err.value) and "AIRFLOW_CONN_MBT_NOWHERE" in str(err.value)


def test_a_failing_secrets_backend_is_a_retryable_infra_error_naming_it(backend):
    backend("FailingSecretsBackend")
    with pytest.raises(InfraError) as err:
        get_connection("mbt_warehouse")
    kind = classify(err.value)
    assert kind.category == "infrastructure" and kind.retryable and kind.exit_code == 1
    assert "FailingSecretsBackend: ConnectionError" in str(err.value)
    assert "vault.internal" not in str(err.value)  # the backend's own message may hold addresses or secrets


def test_the_env_backend_still_answers_when_the_custom_backend_fails(backend, monkeypatch):
    backend("FailingSecretsBackend")
    monkeypatch.setenv("AIRFLOW_CONN_MBT_HERE", json.dumps({"conn_type": "postgres", "host": "127.0.0.1",
                                                             "password": "pw-never-printed"}))
    assert get_connection("mbt_here").host == "127.0.0.1"


def test_an_explicit_deny_is_not_retried(backend):
    backend("DenyingSecretsBackend")
    with pytest.raises(AuthenticationError) as err:
        get_connection("mbt_warehouse")
    assert not classify(err.value).retryable and classify(err.value).exit_code == 3
