"""One redactor for every secret mbt resolves, in the CLI and under Airflow alike.

``register(value)`` is called for each value resolved from ``{{ secret('X') }}`` and for each
password or secret-looking extra of a connection (``connections.get_connection``). From then on
``redact(text)`` / ``redact_obj(obj)`` replace it (and its URL-encoded form) by ``***`` wherever
it appears: error messages, log records (``RedactingFilter``, installed by the CLI), run_results,
MLflow params and tags, XCom values. Under Airflow each value is also handed to Airflow's own
secrets masker (``airflow.sdk.log.mask_secret``), so task logs mask it too.

Values shorter than ``MIN_LENGTH`` characters are not registered (as Airflow does: masking
"abc" everywhere would destroy logs and protect nothing). Bottom of the import graph: no
``airflow_mbt`` imports; Airflow is touched only when it is already imported (a task process).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MIN_LENGTH = 4
REPLACEMENT = "***"
SECRET_KEY_PARTS = ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key",
                    "credential")

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: list[str] = []  # longest first, so a secret containing another is replaced whole


def is_secret_key(name: str) -> bool:
    """True for a config/extra key that names a credential (``db_password``, ``aws_secret_access_key``…)."""
    low = name.lower()
    return any(part in low for part in SECRET_KEY_PARTS)


def register(value: Any, name: str | None = None) -> None:
    """Mask ``value`` (a string, or every string inside a dict/list) from now on."""
    if isinstance(value, dict):
        for k, v in value.items():
            register(v, str(k))
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            register(v, name)
        return
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote_plus(value)}
    with _lock:
        new = forms - _secrets
        if not new:
            return
        _secrets.update(new)
        _ordered[:] = sorted(_secrets, key=len, reverse=True)
    if "airflow.sdk" in sys.modules:  # inside an Airflow process: its masker masks task logs too
        try:
            from airflow.sdk.log import mask_secret

            mask_secret(value, name)
        except Exception:  # noqa: BLE001 - our own redaction still applies
            pass


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    if not _ordered or not isinstance(text, str):
        return text
    for secret in list(_ordered):
        if secret in text:
            text = text.replace(secret, REPLACEMENT)
    return text


def redact_obj(value: Any) -> Any:
    """A copy of a JSON-like value with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value


def clear() -> None:
    """Forget every registered value (tests)."""
    with _lock:
        _secrets.clear()
        _ordered.clear()


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and exception text) of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ordered:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as it is
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Attach ``RedactingFilter`` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
