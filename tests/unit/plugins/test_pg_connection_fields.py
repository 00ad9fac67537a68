"""PostgreSQL connection fields resolved through ``PostgresHook.get_connection`` (no services):
in-memory Airflow connections from ``AIRFLOW_CONN_<ID>`` JSON, extras handed to libpq the way the
postgres provider's hook hands them, IAM tokens from the hook, and no secret in any message."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.plugins.connectors._pg_connect import (
    PgParams,
    map_connect_error,
    resolve_params,
)


def _define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "postgres", **fields}))


def test_fields_come_from_the_connection_like_the_hook_reads_them(monkeypatch):
    _define(monkeypatch, "mbt_unit_fields", host="db.example", port=6543, login="u", password="p-secret",
            schema="wh")
    p = resolve_params({"conn_id": "mbt_unit_fields"}, None)
    assert (p.host, p.port, p.dbname, p.user, p.password) == ("db.example", 6543, "wh", "u", "p-secret")
    assert p.kwargs()["password"] == "p-secret" and p.kwargs()["dbname"] == "wh"
    assert p.source == "connection 'mbt_unit_fields'"


def test_a_connection_without_port_uses_5432_and_config_keys_win(monkeypatch):
    _define(monkeypatch, "mbt_unit_noport", host="db.example", login="u", schema="wh")
    p = resolve_params({"conn_id": "mbt_unit_noport", "user": "other", "password": "from-config"}, None)
    assert (p.port, p.user, p.password) == (5432, "other", "from-config")


def test_extras_reach_libpq_except_the_hooks_own_and_unknown_keys(monkeypatch, caplog):
    _define(monkeypatch, "mbt_unit_extra", host="db.example", login="u", password="pw", schema="wh", extra={
        "sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem", "keepalives_idle": 30,
        "options": "-c search_path=sales", "target_session_attrs": "read-write",
        "cursor": "dictcursor", "sqlalchemy_scheme": "postgresql+psycopg",   # the hook's own keys
        "host": "elsewhere.example",                                          # may not redirect
        "description": "do-not-log-this-value"})
    with caplog.at_level(logging.WARNING, logger="airflow_mbt"):
        p = resolve_params({"conn_id": "mbt_unit_extra"}, None)
    assert p.options == {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem", "keepalives_idle": 30,
                         "options": "-c search_path=sales", "target_session_attrs": "read-write"}
    assert p.host == "db.example" and p.kwargs()["host"] == "db.example"
    assert "'description' is not a libpq connection parameter" in caplog.text
    assert "do-not-log-this-value" not in caplog.text


def test_secret_extras_stay_out_of_repr_and_error_text(monkeypatch):
    _define(monkeypatch, "mbt_unit_sslpw", host="db.example", login="u", password="pw-123456",
            schema="wh", extra={"sslpassword": "key-pass-987", "sslkey": "/keys/client.key"})
    p = resolve_params({"conn_id": "mbt_unit_sslpw"}, None)
    assert p.kwargs()["sslpassword"] == "key-pass-987"
    assert "key-pass-987" not in repr(p) and "pw-123456" not in repr(p)
    err = map_connect_error(RuntimeError("could not load key (passphrase key-pass-987, password pw-123456)"), p)
    assert "key-pass-987" not in str(err) and "pw-123456" not in str(err)
    assert "db.example:5432/wh" in str(err)


def test_an_undefined_connection_is_an_input_error_naming_it():
    with pytest.raises(MBTInputError, match="mbt_unit_missing") as info:
        resolve_params({"conn_id": "mbt_unit_missing"}, None)
    assert "AIRFLOW_CONN_MBT_UNIT_MISSING" in str(info.value.hint)


def test_iam_connections_get_login_token_and_port_from_the_hook(monkeypatch):
    """RDS IAM: the hook presigns a token with the aws connection's keys (offline)."""
    monkeypatch.setenv("AIRFLOW_CONN_MBT_UNIT_AWS", json.dumps({
        "conn_type": "aws", "login": "AKIDUNITTEST", "password": "aws-secret-unit",
        "extra": {"region_name": "eu-west-1"}}))
    _define(monkeypatch, "mbt_unit_iam", host="db.abc.eu-west-1.rds.amazonaws.com", login="iam_user",
            schema="wh", extra={"iam": True, "aws_conn_id": "mbt_unit_aws", "sslmode": "require"})
    p = resolve_params({"conn_id": "mbt_unit_iam"}, None)
    assert (p.user, p.port, p.options) == ("iam_user", 5432, {"sslmode": "require"})
    assert p.password.startswith("db.abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect")
    assert "X-Amz-Signature=" in p.password and "DBUser=iam_user" in p.password
    assert "aws-secret-unit" not in p.password and p.password not in repr(p)


def test_params_built_by_hand_keep_working():
    p = PgParams("h", 1, "d", "u", password="x", options={"sslmode": "disable"})
    assert p.kwargs() == {"host": "h", "port": 1, "dbname": "d", "user": "u", "connect_timeout": 10,
                          "application_name": "airflow-mbt", "sslmode": "disable", "password": "x"}
    assert p.secrets == ["x"]
