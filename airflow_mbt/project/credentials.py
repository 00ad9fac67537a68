"""Literal credentials in profiles and pipelines are input errors (they would reach the manifest).

``check_credentials(value, error_at)`` walks a document *before* rendering and raises at the
first of:

- a key that looks like a credential (``CREDENTIAL_KEY``: ``*password*``, ``*passwd*``,
  ``*secret*``, ``*token*``, ``*api_key*``, ``*access_key*``, ``*private_key*``,
  ``*credential*``; case-insensitive) holding a scalar of any type (text, number) that is not
  exactly ``{{ secret('NAME') }}``: a literal, ``env_var()`` or ``var()`` would be rendered into
  the manifest. ``true``/``false``, null, ``""`` and nested mappings/lists are not values
  (mappings are checked inside); ``REFERENCE_KEYS`` name sections, not credentials.
- a URL whose user part has a password or a template (``scheme://user:pass@host``,
  ``scheme://user:{{ env_var('X') }}@host``).

``check_rendered_urls`` repeats the URL check after rendering (a ``--vars`` or environment value
may hold one). Messages never repeat the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.limits import leaves

CREDENTIAL_KEY = re.compile(r"password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential",
                            re.IGNORECASE)
REFERENCE_KEYS = frozenset({"secrets", "connection_secrets"})
SECRET_TEMPLATE = re.compile(r"^\s*\{\{\s*secret\s*\(\s*(['\"])[A-Za-z_][A-Za-z0-9_]*\1\s*\)\s*\}\}\s*$")
_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://((?:\{\{.*?\}\}|[^/?#@\s{])*)@")

ErrorAt = Callable[[tuple, str, "str | None"], MBTInputError]


def _hint(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", key).upper().strip("_") or "SECRET"
    return (f"write \"{{{{ secret('{name}') }}}}\" (read from the environment when a step runs) or use a "
            "conn_id naming an Airflow connection; env_var() and var() are rendered into the manifest")


def url_has_credentials(text: str) -> bool:
    for m in _URL_USERINFO.finditer(text):
        userinfo = m.group(1)
        if ":" in re.sub(r"\{\{.*?\}\}", "", userinfo) or "{{" in userinfo:
            return True
    return False


def _url_error(path: tuple, error_at: ErrorAt) -> MBTInputError:
    return error_at(path, "credentials embedded in a URL (user:password@host): they would be written into the "
                          "manifest", "remove them from the URL and use a conn_id, or make the whole value a "
                                      "secret: \"{{ secret('MY_URI') }}\"")


def _is_credential_key(key: Any) -> bool:
    return isinstance(key, str) and key not in REFERENCE_KEYS and bool(CREDENTIAL_KEY.search(key))


def check_credentials(value: Any, error_at: ErrorAt, path: tuple = ()) -> None:
    """Raise at the first literal credential of an unrendered document (see the module doc)."""
    stack: list[tuple[tuple, Any, bool]] = [(path, value, False)]
    while stack:
        where, item, credential = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                stack.append((where + (key,), child, _is_credential_key(key)))
        elif isinstance(item, list):
            stack.extend((where + (i,), child, False) for i, child in reversed(list(enumerate(item))))
        elif isinstance(item, str) and url_has_credentials(item):
            raise _url_error(where, error_at)
        elif credential and _is_literal(item):
            templated = isinstance(item, str) and "{{" in item
            message = ("credential from a template other than secret(): it would be written into the manifest"
                       if templated else "literal credential: it would be written into the manifest")
            raise error_at(where, message, _hint(str(where[-1])))


def _is_literal(item: Any) -> bool:
    if item is None or isinstance(item, bool) or item == "":
        return False
    if isinstance(item, str):
        return not SECRET_TEMPLATE.match(item)
    return isinstance(item, (int, float))


def check_rendered_urls(value: Any, error_at: ErrorAt, path: tuple = ()) -> None:
    """The URL check on a rendered document (templates resolved; secret refs are dicts)."""
    for where, item in leaves(value, path):
        if isinstance(item, str) and url_has_credentials(item):
            raise _url_error(where, error_at)
