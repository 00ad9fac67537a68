"""The one redactor: values resolved from secret() and connection passwords are masked in
messages, log records, run_results and JSON values, in their plain and URL-encoded forms."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_mbt import redaction
from airflow_mbt.runtime import run_results
from airflow_mbt.runtime.context import resolve_secrets


@pytest.fixture(autouse=True)
def _clean():
    redaction.clear()
    yield
    redaction.clear()


def test_resolved_secret_is_masked_everywhere(monkeypatch, tmp_path):
    monkeypatch.setenv("MBT_TEST_TOKEN", "tok3n/with:chars")
    resolved = resolve_secrets({"base_path": {"$secret": "MBT_TEST_TOKEN"}})
    assert resolved == {"base_path": "tok3n/with:chars"}
    assert redaction.redact("cannot open tok3n/with:chars/x") == "cannot open ***/x"
    assert redaction.redact("http://u:tok3n%2Fwith%3Achars@h") == "http://u:***@h"  # URL-encoded form
    path = run_results.write(tmp_path / "r.json", {"steps": [{"error": "bad path tok3n/with:chars"}]})
    assert "tok3n" not in path.read_text() and json.loads(path.read_text())["steps"][0]["error"] == "bad path ***"


def test_log_records_are_redacted(caplog):
    redaction.register("hunter2-secret")
    logger = logging.getLogger("airflow_mbt.test_redaction")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        redaction.install_log_filter(logger)
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login with %s failed", ("hunter2-secret",), None)
        assert handler.filters[0].filter(record) and record.getMessage() == "login with *** failed"
    finally:
        logger.removeHandler(handler)


def test_short_values_are_not_registered_and_keys_are_recognised():
    redaction.register("abc")
    assert redaction.redact("abc def") == "abc def"
    for key in ("password", "db_password", "API_KEY", "aws_secret_access_key", "token", "SecretValue"):
        assert redaction.is_secret_key(key), key
    assert not redaction.is_secret_key("host") and not redaction.is_secret_key("schema")


def test_connection_password_and_secret_extras_are_registered(monkeypatch):
    from airflow_mbt.connections import get_connection

    monkeypatch.setenv("AIRFLOW_CONN_MBT_REDACT_TEST", json.dumps({
        "conn_type": "postgres", "host": "db", "login": "u", "password": "pg-pass-123",
        "extra": {"api_key": "key-456789", "sslmode": "require"}}))
    get_connection("mbt_redact_test")
    assert redaction.redact("pg-pass-123 key-456789 require") == "*** *** require"
