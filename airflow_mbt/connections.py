"""Airflow connection lookup for run time.

``AIRFLOW_CONN_<ID>`` environment variables resolve even in a plain process with no Airflow
metadata database, so ``mbt step execute`` in a pod and ``mbt run`` on a laptop share this path.
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.errors import MBTInputError


def get_connection(conn_id: str, hook: Any = None) -> Any:
    """Return the Airflow ``Connection`` for ``conn_id`` or raise a clear input error.

    ``hook`` is the provider hook class whose ``get_connection`` reads it (e.g. ``PostgresHook``);
    the default is the SDK's ``BaseHook``."""
    if hook is None:
        from airflow.sdk import BaseHook  # lazy: ~2 s import

        hook = BaseHook

    try:
        conn = hook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and friends
        raise MBTInputError(
            f"Airflow connection {conn_id!r} is not defined ({type(exc).__name__})",
            field="conn_id",
            hint=f"create it in the Airflow UI or export AIRFLOW_CONN_{conn_id.upper()}='{{\"conn_type\": ...}}'",
        ) from None
    _register_secrets(conn)
    return conn


def _register_secrets(conn) -> None:  # noqa: ANN001 - an Airflow Connection
    """The connection's password and secret-looking extras are masked from now on."""
    from airflow_mbt import redaction

    redaction.register(getattr(conn, "password", None), "password")
    try:
        extra = conn.extra_dejson
    except Exception:  # noqa: BLE001 - a malformed extra is reported where it is used
        return
    for key, value in (extra or {}).items():
        if redaction.is_secret_key(str(key)):
            redaction.register(value, str(key))
