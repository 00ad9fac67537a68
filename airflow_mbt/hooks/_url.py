"""Shared helper of the hooks: an http(s) base URL from a connection's schema/host/port."""

from __future__ import annotations

from airflow_mbt.errors import MBTInputError


def base_url(conn, *, default_port: int, service: str, path: str = "") -> str:
    """``scheme://host:port[/path]`` from ``conn`` (schema = protocol, default http).

    A host given as a full URL (``http://h:1``) is accepted as is. Credentials are never part
    of the result.
    """
    host = (conn.host or "").strip()
    if not host:
        raise MBTInputError(f"{service} connection {conn.conn_id!r} has no host", field="host",
                            hint=f"set the host of the {conn.conn_type or service} connection, e.g. 127.0.0.1")
    if "://" in host:
        url = host.rstrip("/")
    else:
        scheme = (conn.schema or "http").strip().lower() or "http"
        if scheme not in ("http", "https"):
            raise MBTInputError(f"{service} connection {conn.conn_id!r}: protocol {scheme!r} is not http/https",
                                field="schema", hint="put http or https in the connection's schema field")
        url = f"{scheme}://{host}:{conn.port or default_port}"
    path = (path or "").strip("/")
    return f"{url}/{path}" if path else url


def flag(extra: dict, key: str, default: bool) -> bool:
    """A boolean extra field that may arrive as a string from the UI or an env URI."""
    value = extra.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value) if value is not None else default
