"""Pure helpers of the PostgreSQL connector and S3 storage (no services): table-name parsing,
row boundaries of COPY CSV, connection settings precedence, error classification, S3 keys."""

from __future__ import annotations

import json

import pytest

from airflow_mbt.errors import AuthenticationError, InfraError, MBTInputError
from airflow_mbt.plugins.connectors._pg_connect import (PgParams, map_connect_error, resolve_params,
                                                        split_table)
from airflow_mbt.plugins.connectors._pg_copy import _row_boundary
from airflow_mbt.plugins.connectors._pg_csv import sql_type_for
from airflow_mbt.plugins.storage.s3 import S3Storage


@pytest.mark.parametrize("name, expected", [
    ("customers", ("public", "customers")),
    ("sales.customers", ("sales", "customers")),
    ('"Weird Table"', ("public", "Weird Table")),
    ('"my.schema"."T"', ("my.schema", "T")),
    ('s."a ""quoted"" name"', ("s", 'a "quoted" name')),
])
def test_split_table(name, expected):
    assert split_table(name, "public") == expected


@pytest.mark.parametrize("bad", ["", "  ", "a.b.c", '"unterminated', "a.", ".b", None])
def test_split_table_rejects(bad):
    with pytest.raises(MBTInputError, match="invalid table name"):
        split_table(bad, "public")


def test_row_boundary_ignores_newlines_inside_quotes():
    assert _row_boundary(bytearray(b"a,1\nb,2\nc,")) == 8
    assert _row_boundary(bytearray(b'a,"x\ny"\nb,"p\nq')) == 8      # last newline is inside quotes
    assert _row_boundary(bytearray(b'a,"he said ""hi""\n"\n')) == 20  # doubled quotes keep parity
    assert _row_boundary(bytearray(b'"open\nstill open')) == 0


def test_sql_type_for_dtypes():
    import pandas as pd

    df = pd.DataFrame({"i": [1], "f": [1.5], "b": [True], "s": ["x"], "t": pd.to_datetime(["2026-01-01"]),
                       "tz": pd.to_datetime(["2026-01-01"], utc=True)})
    assert [sql_type_for(t) for t in df.dtypes] == ["bigint", "double precision", "boolean", "text",
                                                     "timestamp", "timestamptz"]


def test_resolve_params_connection_then_config_overrides(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MBT_UNIT_PG", json.dumps({
        "conn_type": "postgres", "host": "db.example", "port": 6543, "login": "u", "password": "p-secret",
        "schema": "wh", "extra": {"sslmode": "require", "ignored": "x"}}))
    p = resolve_params({"conn_id": "mbt_unit_pg"}, None)
    assert (p.host, p.port, p.dbname, p.user, p.password) == ("db.example", 6543, "wh", "u", "p-secret")
    assert p.options == {"sslmode": "require"} and p.source == "connection 'mbt_unit_pg'"
    assert "p-secret" not in repr(p)
    p2 = resolve_params({"conn_id": "mbt_unit_pg", "database": "other", "port": "7000"}, None)
    assert (p2.dbname, p2.port, p2.host) == ("other", 7000, "db.example")


def test_resolve_params_incomplete_and_bad_port():
    with pytest.raises(MBTInputError, match="no host, database"):
        resolve_params({"user": "u"}, None)
    with pytest.raises(MBTInputError, match="port must be an integer"):
        resolve_params({"host": "h", "database": "d", "user": "u", "port": "abc"}, None)


class _Err(Exception):
    def __init__(self, text, sqlstate=None):
        super().__init__(text)
        self.sqlstate = sqlstate


def test_connect_errors_are_classified_without_the_password():
    params = PgParams("127.0.0.1", 5432, "warehouse", "mbt_user", password="hunter2-pw")
    auth = map_connect_error(_Err('FATAL:  password authentication failed for user "mbt_user"'), params)
    assert isinstance(auth, AuthenticationError) and not auth.retryable
    assert "127.0.0.1:5432/warehouse" in str(auth) and "hunter2-pw" not in str(auth)
    down = map_connect_error(_Err("connection failed: connection to server at \"127.0.0.1\", port 5432 failed: "
                                  "Connection refused (password hunter2-pw)"), params)
    assert type(down) is InfraError and down.retryable
    assert str(down).startswith("PostgreSQL: cannot connect to 127.0.0.1:5432/warehouse")
    assert "hunter2-pw" not in str(down)
    missing = map_connect_error(_Err('FATAL:  database "warehouse" does not exist', "3D000"), params)
    assert isinstance(missing, MBTInputError) and "warehouse" in str(missing)


def test_s3_keys_uris_and_config_errors():
    s = S3Storage({"bucket": "b", "prefix": "/p/q/", "endpoint_url": "http://127.0.0.1:1"}, None)
    assert s.uri("run/step/a.json") == "s3://b/p/q/run/step/a.json"
    assert s._key("run/step/a.json") == "p/q/run/step/a.json"
    for bad in ("", "/abs", "a/../b", "a//b", "a\\b"):
        with pytest.raises(MBTInputError, match="invalid storage key"):
            s._key(bad)
    with pytest.raises(MBTInputError, match="needs a bucket"):
        S3Storage({}, None)
    assert S3Storage({"bucket": "b"}, None).uri("k") == "s3://b/k"
