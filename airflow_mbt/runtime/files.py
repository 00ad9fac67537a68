"""Local file primitives shared by the local storage and connector plugins: atomic writes,
advisory locks and streaming hashes.

Atomic writes go to a temp file in the destination directory and are renamed over the target
with ``os.replace``, so readers see either the old or the new content, never a partial file.
Temp and lock files carry the markers below so listings can skip them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TMP_MARKER = ".mbt-tmp-"
LOCK_SUFFIX = ".mbt-lock"


def is_internal(name: str) -> bool:
    """True for temp and lock files made by this module."""
    return TMP_MARKER in name or name.endswith(LOCK_SUFFIX)


def _temp_path(target: Path) -> Path:
    return target.with_name(f"{target.name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success it replaces ``target`` atomically,
    on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(target: Path, data: bytes) -> None:
    with atomic_target(target) as tmp:
        tmp.write_bytes(data)


def atomic_copy(source: Path, target: Path) -> None:
    with atomic_target(target) as tmp:
        shutil.copyfile(source, tmp)


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
