"""PostgreSQL connection settings and connecting with clear errors (helper of ``postgres.py``).

Settings come from an Airflow connection (``conn_id``) and/or the connector config (``host``,
``port``, ``database``, ``user``, ``password``); config keys win. The connection is read with
``PostgresHook.get_connection`` and its fields resolve the way the postgres provider's
``PostgresHook.get_conn`` resolves them: host, login, password, schema (= database), port; with
extra ``iam: true`` the login, password (a token) and port come from the hook's
``get_iam_token`` (RDS, Redshift, Azure); every other extra the hook passes on (all but
``PostgresHook.ignored_extra_options``) goes to libpq when libpq knows the keyword (``sslmode``,
``sslrootcert``, ``connect_timeout``, ``options``, ...), others are ignored with a warning that
names the key only. Connecting stays psycopg 3 (COPY is the fast path), not the hook.
Errors name PostgreSQL and ``host:port/database``, never the password or another secret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from airflow_mbt.errors import AuthenticationError, InfraError, MBTInputError
from airflow_mbt.connections import get_connection

log = logging.getLogger("airflow_mbt.connectors.postgres")

AUTH_SQLSTATES = {"28P01", "28000"}
# libpq keywords PgParams sets itself: an extra cannot redirect them away from what errors name
CORE_KEYWORDS = frozenset({"host", "hostaddr", "port", "dbname", "user", "password"})
# libpq keywords whose values are secrets: never in a repr, scrubbed from error text
SECRET_KEYWORDS = frozenset({"password", "sslpassword", "oauth_client_secret", "scram_client_key",
                             "scram_server_key"})


@dataclass
class PgParams:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    options: dict = field(default_factory=dict, repr=False)
    source: str = "config"  # "conn_id <id>" or "config": named in error hints

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    @property
    def secrets(self) -> list[str]:
        """The password and every secret libpq option, for scrubbing error text."""
        values = [self.password] + [self.options.get(k) for k in SECRET_KEYWORDS]
        return [str(v) for v in values if v not in (None, "")]

    def kwargs(self) -> dict:
        kw = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
              "connect_timeout": 10, "application_name": "airflow-mbt"}
        kw.update(self.options)
        if self.password is not None:
            kw["password"] = self.password
        return kw


@lru_cache(maxsize=1)
def libpq_keywords() -> frozenset[str]:
    """The connection keywords the installed libpq accepts (``PQconndefaults``)."""
    from psycopg import pq

    return frozenset(opt.keyword.decode() for opt in pq.Conninfo.get_defaults())


def _connection_values(conn_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(host/port/database/user/password, libpq options) of an Airflow postgres connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = get_connection(conn_id, hook=PostgresHook)
    extra = conn.extra_dejson or {}
    login, password, port = conn.login, conn.password, conn.port
    if extra.get("iam", False):
        try:
            login, password, port = PostgresHook(postgres_conn_id=conn_id).get_iam_token(conn)
        except Exception as exc:  # noqa: BLE001 - boto3/azure/provider errors: name the connection only
            raise AuthenticationError("PostgreSQL", f"IAM token for connection {conn_id!r} failed: "
                                      f"{type(exc).__name__}",
                                      hint="check the extra aws_conn_id / azure_conn_id of the connection") from None
    options: dict[str, Any] = {}
    for key, value in extra.items():
        if key in PostgresHook.ignored_extra_options or key in CORE_KEYWORDS:
            continue
        if key in libpq_keywords():
            options[key] = value
        else:
            log.warning("mbt: connection %r: extra %r is not a libpq connection parameter; ignored",
                        conn_id, key)
    values = {"host": conn.host, "port": port, "database": conn.schema, "user": login, "password": password}
    return values, options


def resolve_params(config: dict, runtime: object = None) -> PgParams:
    """Merge the Airflow connection (when ``conn_id`` is set) with explicit config keys.

    ``runtime`` is accepted for the connector's call; the connection is always read through
    ``PostgresHook.get_connection`` (environment, secrets backends, metadata DB)."""
    values: dict = {}
    options: dict = {}
    source = "config"
    conn_id = config.get("conn_id")
    if conn_id:
        values, options = _connection_values(conn_id)
        source = f"connection {conn_id!r}"
    for key in ("host", "port", "database", "user", "password"):
        if config.get(key) not in (None, ""):
            values[key] = config[key]
    missing = [k for k in ("host", "database", "user") if not values.get(k)]
    if missing:
        raise MBTInputError(f"PostgreSQL settings incomplete: no {', '.join(missing)}",
                            field="data_connector.config",
                            hint="set conn_id (an Airflow postgres connection) or host, port, "
                                 "database, user, password")
    try:
        port = int(values.get("port") or 5432)
    except (TypeError, ValueError):
        raise MBTInputError(f"port must be an integer, got {values.get('port')!r}",
                            field="data_connector.config.port") from None
    return PgParams(host=str(values["host"]), port=port, dbname=str(values["database"]),
                    user=str(values["user"]), password=values.get("password"),
                    options=options, source=source)


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with any occurrence of the ``secrets`` masked (belt and braces: libpq does not
    echo them)."""
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "***")
    return text


def connect(params: PgParams):
    """An autocommit psycopg 3 connection (UTC, ISO dates); maps failures to MBT errors."""
    import psycopg

    try:
        conn = psycopg.connect(autocommit=True, **params.kwargs())
    except psycopg.OperationalError as exc:
        raise map_connect_error(exc, params) from None
    conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
    return conn


def map_connect_error(exc: Exception, params: PgParams) -> Exception:
    reason = scrub(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__,
                   *params.secrets)
    lowered = str(exc).lower()
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in AUTH_SQLSTATES or "authentication failed" in lowered or "no password supplied" in lowered:
        return AuthenticationError(
            "PostgreSQL", f"authentication failed for user {params.user!r} at {params.where}",
            hint=f"check the user and password of {params.source}")
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return MBTInputError(f"PostgreSQL database {params.dbname!r} does not exist at "
                             f"{params.host}:{params.port}", field="data_connector.config.database",
                             hint=f"fix the database (Airflow connection 'schema') of {params.source}")
    return InfraError("PostgreSQL", f"cannot connect to {params.where}: {reason}",
                      hint="is the server running and reachable? (scripts/stack.sh status postgres)")


def split_table(name: str, default_schema: str) -> tuple[str, str]:
    """``schema.table`` / ``table`` / ``"a.b"."T"`` -> (schema, table). Double quotes group."""
    if not isinstance(name, str) or not name.strip():
        raise MBTInputError(f"invalid table name {name!r}", field="table")
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    text = name.strip()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                cur.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    if quoted or len(parts) > 2 or any(not p for p in parts):
        raise MBTInputError(f"invalid table name {name!r}", field="table",
                            hint='use table, schema.table, or "Quoted Name"')
    if len(parts) == 1:
        return default_schema, parts[0]
    return parts[0], parts[1]
