"""Artifact (de)serialization by kind and transfer through a ``Storage``.

Kinds (``step_specs.py``): ``table`` (pandas DataFrame <-> Parquet, dtypes preserved through
the pandas metadata, never pickle), ``table_stream`` (the same Parquet format, handed to steps as a
``table_stream.StreamedTable`` read chunk by chunk; a step may produce it - or a ``table`` - as a
``TableWriter`` from ``ctx.table_writer``, an iterable of frames, or a DataFrame), ``json`` (dict <->
canonical JSON), ``dir`` (a directory <->
deterministic uncompressed tar: sorted entries, zero mtime/uid/gid, normalized modes, so equal
content gives an equal sha256). Everything goes through files and ``Storage.put_file/get_file``
so large tables never sit in memory twice and S3 can upload in parts. Every read verifies the
sha256 recorded in the artifact registry.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from airflow_mbt.errors import MBTError
from airflow_mbt._fs import sha256_file
from airflow_mbt.step_specs import DIR, JSON, TABLE, TABLE_STREAM

EXTENSIONS: dict[str, str] = {TABLE: ".parquet", TABLE_STREAM: ".parquet", JSON: ".json", DIR: ".tar"}
TABLE_KINDS = (TABLE, TABLE_STREAM)


class ArtifactError(MBTError):
    """An artifact value cannot be (de)serialized, or its bytes do not match the registry."""

    retryable = False


def run_prefix(run_id: str, pipeline: str | None = None) -> str:
    """``<pipeline>/<run_id>``: every storage key of one run starts with it (CONTRACTS section 3),
    so two pipelines never share a key even with equal run ids. ``pipeline=None`` (unit tests,
    tools reading old runs) gives the bare ``<run_id>``."""
    return f"{pipeline}/{run_id}" if pipeline else run_id


def artifact_key(run_id: str, step: str, name: str, kind: str, pipeline: str | None = None) -> str:
    """``<pipeline>/<run_id>/<step>/<artifact><ext>`` (CONTRACTS section 3)."""
    return f"{run_prefix(run_id, pipeline)}/{step}/{name}{EXTENSIONS[kind]}"


# ---- serialization ---------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if callable(getattr(value, "tolist", None)):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json_bytes(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8. NaN/Infinity are written as Python's json does."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default).encode("utf-8")


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = info.isdir() or (info.mode & 0o111)
    info.mode = 0o755 if executable else 0o644
    return info


def write_dir_tar(directory: Path, target: Path) -> None:
    """Deterministic uncompressed tar of ``directory``'s contents (symlinks are followed)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames.sort()
        rel = Path(dirpath).relative_to(directory)
        if rel != Path("."):
            entries.append((rel.as_posix(), Path(dirpath)))
        entries.extend(((rel / f).as_posix(), Path(dirpath, f)) for f in filenames)
    entries.sort(key=lambda e: e[0])
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT, dereference=True) as tar:
        for arcname, path in entries:
            info = _tar_filter(tar.gettarinfo(str(path), arcname=arcname))
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def serialize(name: str, kind: str, value: Any, target: Path) -> None:
    """Write ``value`` of ``kind`` to the file ``target``; ``ArtifactError`` on a wrong type."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind in TABLE_KINDS:
        import pandas as pd

        if not isinstance(value, pd.DataFrame):
            raise ArtifactError(f"output {name!r} must be a pandas DataFrame (kind table), "
                                f"got {type(value).__name__}")
        try:
            value.to_parquet(target, engine="pyarrow")
        except Exception as exc:  # pyarrow type errors: mixed object columns, non-str names...
            raise ArtifactError(f"output {name!r} cannot be written as Parquet: {exc}") from exc
        finally:
            import pyarrow as pa

            pa.default_memory_pool().release_unused()  # the encoding buffers, not kept for the next step
    elif kind == JSON:
        if not isinstance(value, dict):
            raise ArtifactError(f"output {name!r} must be a dict (kind json), got {type(value).__name__}")
        try:
            target.write_bytes(canonical_json_bytes(value))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"output {name!r} is not JSON serializable: {exc}") from exc
    elif kind == DIR:
        if not isinstance(value, (str, os.PathLike)) or not Path(value).is_dir():
            raise ArtifactError(f"output {name!r} must be an existing directory (kind dir), got {value!r}")
        write_dir_tar(Path(value), target)
    else:
        raise ArtifactError(f"output {name!r} has unknown kind {kind!r}")


def deserialize(name: str, kind: str, source: Path, dir_target: Path) -> Any:
    """Read an artifact file; ``dir`` artifacts are extracted into ``dir_target``."""
    try:
        if kind == TABLE:
            import pyarrow.parquet as pq

            from airflow_mbt.runtime.table_stream import pandas_of

            return pandas_of(pq.read_table(source))
        if kind == TABLE_STREAM:
            from airflow_mbt.runtime.table_stream import StreamedTable

            return StreamedTable(source)
        if kind == JSON:
            return json.loads(source.read_bytes().decode("utf-8"))
        if kind == DIR:
            dir_target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(source, "r:") as tar:
                tar.extractall(dir_target, filter="data")
            return dir_target
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"artifact {name!r} ({kind}) at {source} cannot be read: {exc}") from exc
    raise ArtifactError(f"artifact {name!r} has unknown kind {kind!r}")


# ---- transfer --------------------------------------------------------------------------------
def _streamed_file(name: str, value: Any, local: Path) -> tuple[Path, str, int] | None:
    """(file, sha256, size) of a table output given as a stream: a ``TableWriter`` (closed here;
    its hash was computed while writing) or an iterable of frames (drained into ``local``).
    ``None`` for other values (a DataFrame is serialized as usual)."""
    import pandas as pd

    from airflow_mbt.runtime.table_stream import StreamError, StreamedTable, TableWriter

    if isinstance(value, TableWriter):
        value.close()
        assert value.sha256 is not None and value.size is not None  # set by close()
        return value.path, value.sha256, value.size
    if isinstance(value, StreamedTable):
        raise ArtifactError(f"output {name!r} is an input table; write a new one with ctx.table_writer")
    if isinstance(value, (pd.DataFrame, str, bytes, dict)) or not hasattr(value, "__iter__"):
        return None
    try:
        writer = TableWriter(local, name).write_all(value)
    except StreamError as exc:
        raise ArtifactError(str(exc)) from exc
    assert writer.sha256 is not None and writer.size is not None  # write_all closes it
    return writer.path, writer.sha256, writer.size


def store(storage: Any, run_id: str, step: str, name: str, kind: str, value: Any, scratch: Path, *,
          pipeline: str | None = None) -> dict[str, Any]:
    """Serialize one output and upload it; returns its registry entry."""
    key = artifact_key(run_id, step, name, kind, pipeline)
    local = scratch / f"{name}{EXTENSIONS[kind]}"
    streamed = _streamed_file(name, value, local) if kind in TABLE_KINDS else None
    if streamed is not None:
        local, digest, size = streamed
    else:
        serialize(name, kind, value, local)
        digest, size = sha256_file(local)
    uri = storage.put_file(key, local)
    local.unlink()
    return {"uri": uri, "key": key, "kind": kind, "sha256": digest, "size": size, "step": step}


def fetch(storage: Any, name: str, entry: dict[str, Any], scratch: Path) -> Any:
    """Download one artifact described by its registry ``entry``, verify it, deserialize it."""
    kind = entry["kind"]
    local = scratch / "download" / f"{name}{EXTENSIONS.get(kind, '')}"
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage.get_file(entry["key"], local)
    except FileNotFoundError:
        raise ArtifactError(f"artifact {name!r} is registered but missing at {entry['uri']}") from None
    digest, size = sha256_file(local)
    if digest != entry["sha256"]:
        raise ArtifactError(
            f"artifact {name!r} at {entry['uri']} failed verification: sha256 {digest} ({size} bytes) "
            f"!= recorded {entry['sha256']} ({entry.get('size')} bytes); it was modified or truncated "
            f"after step {entry.get('step')!r} wrote it - re-run that step")
    value = deserialize(name, kind, local, scratch / "inputs" / name)
    if kind != TABLE_STREAM:  # a streamed table is read from this file while the step runs
        local.unlink()
    return value
