"""Local file primitives shared by the local storage and connector plugins: atomic writes,
advisory locks and streaming hashes.

Atomic writes are ``airflow_mbt._fs`` (re-exported here): a temp file in the destination
directory renamed over the target with ``os.replace``, so readers see either the old or the new
content, never a partial file. Temp and lock files carry markers so listings can skip them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Iterator

from airflow_mbt._fs import (
    TMP_MARKER,
    atomic_copy,
    atomic_target,
    atomic_write_bytes,
    is_temp_name,
)

__all__ = ["LOCK_SUFFIX", "TMP_MARKER", "atomic_copy", "atomic_target", "atomic_write_bytes", "config_path",
           "is_internal", "locked", "sha256_bytes", "sha256_file"]

LOCK_SUFFIX = ".mbt-lock"


def is_internal(name: str) -> bool:
    """True for temp and lock files made by this module."""
    return is_temp_name(name) or name.endswith(LOCK_SUFFIX)


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``<target>.mbt-lock``; excludes other processes and other threads
    (each call opens its own file description)."""
    lock_path = target.with_name(target.name + LOCK_SUFFIX)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def config_path(config: dict, key: str, default: str, runtime, field: str) -> Path:
    """Absolute path of a plugin's path setting, relative to the project dir when ``runtime``
    is given (else to the working directory)."""
    from airflow_mbt.errors import MBTInputError

    raw = config.get(key, default)
    if not isinstance(raw, (str, os.PathLike)) or not str(raw):
        raise MBTInputError(f"{key} must be a path, got {raw!r}", field=field)
    path = runtime.path(raw) if runtime is not None else Path(raw)
    return Path(os.path.abspath(path))
