"""PostgreSQL connection settings and connecting with clear errors (helper of ``postgres.py``).

Settings come from an Airflow connection (``conn_id``: host, port, login, password, schema =
database) and/or the connector config (``host``, ``port``, ``database``, ``user``, ``password``);
config keys win. Errors name PostgreSQL and ``host:port/database``, never the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_mbt.errors import AuthenticationError, InfraError, MBTInputError
from airflow_mbt.connections import get_connection

# libpq keywords an Airflow connection's extra may carry through to psycopg
PASSTHROUGH_EXTRA = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout",
                     "application_name", "options", "target_session_attrs")
AUTH_SQLSTATES = {"28P01", "28000"}


@dataclass
class PgParams:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    options: dict = field(default_factory=dict)
    source: str = "config"  # "conn_id <id>" or "config": named in error hints

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    def kwargs(self) -> dict:
        kw = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
              "connect_timeout": 10, "application_name": "airflow-mbt"}
        kw.update(self.options)
        if self.password is not None:
            kw["password"] = self.password
        return kw


def resolve_params(config: dict, runtime) -> PgParams:
    """Merge the Airflow connection (when ``conn_id`` is set) with explicit config keys."""
    values: dict = {}
    options: dict = {}
    source = "config"
    conn_id = config.get("conn_id")
    if conn_id:
        conn = runtime.connection(conn_id) if runtime is not None else get_connection(conn_id)
        values = {"host": conn.host, "port": conn.port, "database": conn.schema,
                  "user": conn.login, "password": conn.password}
        extra = conn.extra_dejson or {}
        options = {k: extra[k] for k in PASSTHROUGH_EXTRA if k in extra}
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


def scrub(text: str, secret: str | None) -> str:
    """``text`` with any occurrence of ``secret`` masked (belt and braces: libpq does not echo it)."""
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
                   params.password)
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
