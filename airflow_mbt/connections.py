"""Airflow connection lookup for run time, with its failures classified.

``AIRFLOW_CONN_<ID>`` environment variables resolve even in a plain process with no Airflow
metadata database, so ``mbt step execute`` in a pod and ``mbt run`` on a laptop share this path.

Classification (``errors.classify``):

- the connection exists in no backend -> ``MBTInputError`` (exit 2, not retried);
- a backend failed (a custom secrets backend raised, the Execution API answered with an error
  other than "not found", the network) -> ``InfraError`` naming the backend (retried);
- a backend explicitly denied access (``AirflowSecretsBackendAccessDenied``) ->
  ``AuthenticationError`` (exit 3: a retry cannot fix a permission).

Why a probe: Airflow 3's task SDK (``execution_time.context._get_connection``) logs any backend
exception at debug level and falls through to the next backend, and the Execution API backend
returns ``None`` for a transient error as for "not found"; in the end it raises
``AirflowNotFoundException`` either way. So on ``AirflowNotFoundException`` the backends are asked
once more, each on its own, and any failure is reported as infrastructure. A connection found by
that second attempt is returned. Messages name the backend class and the exception type, never a
connection's fields.
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.errors import AuthenticationError, InfraError, MBTInputError

SERVICE = "Airflow connections"


def _hint(conn_id: str) -> str:
    return f"create it in the Airflow UI or export AIRFLOW_CONN_{conn_id.upper()}='{{\"conn_type\": ...}}'"


def _ask_execution_api(conn_id: str) -> tuple[Any, str | None]:
    """(connection or None, failure) from the Execution API, keeping "not found" apart from errors."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, GetConnection
    from airflow.sdk.execution_time.context import _process_connection_result_conn
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    msg = SUPERVISOR_COMMS.send(GetConnection(conn_id=conn_id))
    if isinstance(msg, ErrorResponse):
        if msg.error == ErrorType.CONNECTION_NOT_FOUND:
            return None, None
        return None, f"the Execution API answered {msg.error.value}"
    return _process_connection_result_conn(msg), None


def probe_backends(conn_id: str) -> tuple[Any, list[str]]:
    """Ask every configured secrets backend for ``conn_id``: (the connection or None, failures as
    ``"<Backend>: <what>"``)."""
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

    failures: list[str] = []
    for backend in ensure_secrets_backend_loaded():
        name = type(backend).__name__
        try:
            if name == "ExecutionAPISecretsBackend":
                conn, failure = _ask_execution_api(conn_id)
            else:
                conn, failure = backend.get_connection(conn_id=conn_id), None
        except PermissionError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a backend is what we classify
            conn, failure = None, f"{type(exc).__name__}"
        if failure:
            failures.append(f"{name}: {failure}")
        elif conn:
            return conn, failures
    return None, failures


def get_connection(conn_id: str, hook: Any = None) -> Any:
    """Return the Airflow ``Connection`` for ``conn_id``; see the module docstring for errors.

    ``hook`` is the provider hook class whose ``get_connection`` reads it (e.g. ``PostgresHook``);
    the default is the SDK's ``BaseHook``. The password and secret-looking extras of the
    connection are registered with the redactor."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    if hook is None:
        from airflow.sdk import BaseHook  # lazy: ~2 s import

        hook = BaseHook
    try:
        try:
            return _register_secrets(hook.get_connection(conn_id))
        except AirflowNotFoundException:
            conn, failures = probe_backends(conn_id)
    except PermissionError as exc:  # AirflowSecretsBackendAccessDenied
        raise AuthenticationError(SERVICE, f"access to connection {conn_id!r} was denied ({type(exc).__name__})",
                                  hint="grant the task (or its team) access to the connection") from None
    except Exception as exc:  # noqa: BLE001 - the lookup itself failed (Execution API, network)
        raise InfraError(SERVICE, f"looking up connection {conn_id!r} failed ({type(exc).__name__})",
                         hint="is the secrets backend / Airflow API server reachable? the task is retried") from None
    if conn:
        return _register_secrets(conn)
    if failures:
        raise InfraError(SERVICE, f"looking up connection {conn_id!r} failed in {'; '.join(failures)}",
                         hint="a secrets backend is failing; the task is retried")
    raise MBTInputError(f"Airflow connection {conn_id!r} is not defined", field="conn_id", hint=_hint(conn_id))


def _register_secrets(conn: Any) -> Any:
    """The connection's password and secret-looking extras are masked from now on."""
    from airflow_mbt import redaction

    redaction.register(getattr(conn, "password", None), "password")
    try:
        extra = conn.extra_dejson
    except Exception:  # noqa: BLE001 - a malformed extra is reported where it is used
        return conn
    for key, value in (extra or {}).items():
        if redaction.is_secret_key(str(key)):
            redaction.register(value, str(key))
    return conn
