"""Local output and data paths stay inside the project (checked at validate/compile).

Target fields (profiles.yaml): local storage ``base_path``, local_file ``data_path`` and its
``tables`` files, a local MLflow ``tracking_uri`` (``sqlite:///rel.db``, ``file:``, a plain path)
and ``artifact_location``, a local ``manifests.uri``. A relative path must resolve (symlinks
included) inside the project; an absolute path is accepted only when written literally in
profiles.yaml (the data engineer's decision), never when it comes from ``var()``/``env_var()``.
Pipeline fields (``serving.output.path``) must always be relative and stay inside.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from airflow_mbt.errors import MBTInputError

ErrorAt = Callable[[tuple, str, "str | None"], MBTInputError]
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def local_path(value: Any, uri: bool) -> str | None:
    """The filesystem path a (URI) value names, or None when it is remote or not text."""
    if not isinstance(value, str) or not value:
        return None
    if not uri:
        return value
    m = _SCHEME.match(value)
    if m is None or len(m.group(1)) == 1:  # no scheme (or a Windows drive letter)
        return value
    scheme = m.group(1).lower()
    if scheme == "sqlite":
        rest = value[len(m.group(0)):]
        return rest[3:] if rest.startswith("///") else None
    if scheme == "file":
        rest = value[len(m.group(0)):]
        return "/" + rest.lstrip("/") if rest.startswith("//") else rest
    return None


def _target_fields(out: dict) -> Iterator[tuple[tuple, bool]]:
    """(path inside the target, is-a-URI) of every local path field of a rendered target."""
    storage, connector = out.get("storage") or {}, out.get("data_connector") or {}
    if isinstance(storage, dict) and storage.get("type") == "local":
        yield ("storage", "config", "base_path"), False
    if isinstance(connector, dict) and connector.get("type") == "local_file":
        yield ("data_connector", "config", "data_path"), False
        yield ("data_connector", "config", "output_path"), False
        tables = (connector.get("config") or {}).get("tables")
        if isinstance(tables, dict):
            for name in tables:
                yield ("data_connector", "config", "tables", name), False
    yield ("mlflow", "tracking_uri"), True
    yield ("mlflow", "artifact_location"), True
    yield ("manifests", "uri"), True


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def inside(root: Path, path: str) -> bool:
    full = os.path.realpath(os.path.join(root, path))
    base = os.path.realpath(root)
    return full == base or full.startswith(base.rstrip(os.sep) + os.sep)


def check_target_paths(raw: dict, rendered: dict, prefixes: list[tuple], root: Path, error_at: ErrorAt) -> None:
    """``prefixes``: doc paths of the target mapping and of the profile level (for ``mlflow``)."""
    for prefix in prefixes:
        out = _get(rendered, prefix)
        if not isinstance(out, dict):
            continue
        for field, uri in _target_fields(out):
            path = local_path(_get(out, field), uri)
            if path is None or "\x00" in path:
                continue
            literal = isinstance(_get(raw, prefix + field), str) and "{{" not in _get(raw, prefix + field)
            if os.path.isabs(path) or path.startswith("~"):
                if literal and not path.startswith("~"):
                    continue
                raise error_at(prefix + field, f"absolute path {path[:80]!r} from a template",
                               "an absolute output path must be written literally in profiles.yaml; a relative "
                               "path resolves inside the project")
            if not inside(root, path):
                raise error_at(prefix + field, f"{path[:80]!r} resolves outside the project",
                               "use a path inside the project folder (check '..' and symlinks), or write an "
                               "absolute path in profiles.yaml")


def check_pipeline_path(value: Any, path: tuple, root: Path, error_at: ErrorAt) -> None:
    """A path written in a pipeline: relative and inside the project."""
    if not isinstance(value, str) or not value:
        return
    if os.path.isabs(value) or value.startswith("~") or "\x00" in value:
        raise error_at(path, f"{value[:80]!r} is not a relative path",
                       "pipelines write only inside the project: use a relative path such as predictions.csv")
    if not inside(root, value):
        raise error_at(path, f"{value[:80]!r} resolves outside the project",
                       "pipelines write only inside the project (check '..' and symlinks)")
