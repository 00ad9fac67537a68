"""``LocalStorage``: artifact storage in a local directory (the dev target).

Keys map to ``<base_path>/<key>``; writes are atomic (temp file + ``os.replace``); the
compare-and-swap write used by the artifact registry holds an ``flock`` on a lock file next to
the key and uses the sha256 of the content as the version.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mbt.errors import MBTInputError, RegistryConflictError
from airflow_mbt.plugins.base import Storage
from airflow_mbt._fs import (atomic_copy, atomic_write_bytes, config_path, is_internal,
                                       locked, sha256_bytes)


class LocalStorage(Storage):
    """Config: ``base_path`` (default ``./local_artifacts``, relative to the project dir)."""

    type_name = "local"

    def __init__(self, config: dict, runtime=None):
        super().__init__(config or {}, runtime)
        self.base_path = config_path(self.config, "base_path", "./local_artifacts", runtime,
                                     "storage.config.base_path")

    # ---- keys -----------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        parts = key.split("/") if isinstance(key, str) and key else []
        if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise MBTInputError(f"invalid storage key {key!r}",
                                hint="keys are relative paths like <pipeline>/<run_id>/<step>/<artifact>")
        return self.base_path.joinpath(*parts)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    # ---- bytes and files ------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        atomic_write_bytes(path, data)
        return str(path)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def put_file(self, key: str, path: Path) -> str:
        target = self._path(key)
        atomic_copy(Path(path), target)
        return str(target)

    def get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(str(source))
        atomic_copy(source, Path(path))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (string prefix, like S3), sorted."""
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        root = self._path(head) if head else self.base_path
        if not root.is_dir():
            return []
        keys = []
        skip = len(str(self.base_path)) + 1  # string slicing: this runs for every file on a DAG parse
        for dirpath, _dirs, files in os.walk(root):
            rel = dirpath[skip:].replace(os.sep, "/")
            for name in files:
                if is_internal(name):
                    continue
                key = f"{rel}/{name}" if rel else name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    # ---- compare-and-swap -----------------------------------------------------------------
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None, None
        return data, sha256_bytes(data)

    def write_conditional(self, key: str, data: bytes, expected_version: str | None) -> str:
        path = self._path(key)
        with locked(path):
            _current, version = self.read_versioned(key)
            if version != expected_version:
                raise RegistryConflictError(
                    f"{path} changed concurrently (expected version {expected_version}, found {version})")
            atomic_write_bytes(path, data)
        return sha256_bytes(data)
