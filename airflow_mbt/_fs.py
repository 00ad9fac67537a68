"""Atomic file writes: the one implementation every writer of a local file uses.

Contract:
- A write goes to a temp file in the target's own directory (same filesystem, so the rename is
  atomic), is flushed to disk (``fsync``), then renamed over the target with ``os.replace``.
  Readers see the old content or the new one, never a partial file.
- When the write fails (an exception in the caller's block or in the copy), the target keeps
  its old content (or stays absent) and the temp file is removed.
- Temp names are ``<name>.mbt-tmp-<pid>-<random>``; ``is_temp_name`` lets listings skip them.
  They never end in the target's suffix, so ``*.json`` globs do not see them.
- Parent folders are created. This module imports only ``airflow_mbt.errors`` (bottom of the
  import graph: authoring code such as manifest writing and run-time plugins both use it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_MARKER = ".mbt-tmp-"


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file made by this module."""
    return TMP_MARKER in name


def _temp_path(target: Path) -> Path:
    return target.with_name(f"{target.name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to ``target`` for the caller to write; when the block succeeds the
    temp file replaces ``target`` atomically, when it raises the temp file is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish_dir(tmp: Path, dest: Path) -> bool:
    """Move the finished folder ``tmp`` to ``dest`` in one rename (a reader sees all of it or
    nothing); False when ``dest`` appeared meanwhile (another process won: keep its copy)."""
    try:
        os.replace(tmp, dest)
    except OSError:
        return False
    return True


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``target`` with ``data`` atomically; return the target path."""
    with atomic_target(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace ``target`` with ``text`` (encoded, newlines as given) atomically."""
    return atomic_write_bytes(target, text.encode(encoding))


def atomic_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy the bytes of ``source`` over ``target`` atomically."""
    with atomic_target(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


# ---- locks, hashes and plugin paths (formerly runtime/files.py) ---------------------------------
LOCK_SUFFIX = ".mbt-lock"


def is_internal(name: str) -> bool:
    """True for temp and lock files made by this module."""
    return is_temp_name(name) or name.endswith(LOCK_SUFFIX)


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``<target>.mbt-lock``; excludes other processes and other threads
    (each call opens its own file description). The lock file is removed on release, so no
    ``.mbt-lock`` is left behind: a waiter that then gets the lock of the removed file sees that
    the path no longer names its file and locks the path again."""
    lock_path = target.with_name(target.name + LOCK_SUFFIX)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(lock_path)
        except FileNotFoundError:
            os.close(fd)  # removed by the previous holder while we waited
            continue
        except BaseException:
            os.close(fd)
            raise
        if (current.st_dev, current.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
            break
        os.close(fd)  # the path was removed and re-created: lock the new file
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)  # while holding the lock: see the docstring
        except FileNotFoundError:
            pass
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
