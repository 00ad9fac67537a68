"""Parse-time listing of published manifests with a local cache (used by ``dag_factory``).

``load_manifests(uri, conn_id=..., cache_dir=..., ttl=..., only=...)`` keeps the signature of the
former ``airflow_mbt.manifest_cache``; it returns a ``LoadResult``.

For an ``s3://`` prefix the cache folder holds the raw manifest bytes plus ``index.json``
(``{"uri", "checked_at", "entries": {pipeline: {"etag", "pinned"}}}``):

* within ``cache_ttl_seconds`` of the last successful check: no S3 request at all (boto3 and
  the amazon provider are not even imported);
* after it: one LIST; a GET only for pipelines whose ETag changed;
* S3 unreachable: every DAG is built from the cache and one warning says so.

A local folder is read directly (no cache). A manifest that fails to parse is reported in
``LoadResult.errors`` (source -> reason) and never prevents the others from loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mbt._fs import atomic_write_bytes
from airflow_mbt.errors import InfraError, MBTError
from airflow_mbt.manifest import Manifest
from airflow_mbt.manifests.backends import (
    CURRENT,
    PARSE_CLIENT_LIMITS,
    ManifestLocation,
    current_key,
    is_pinned_key,
    location_for,
    pinned_key,
)

log = logging.getLogger("airflow_mbt.manifests.cache")


@dataclass
class LoadResult:
    source: str
    manifests: dict[str, Manifest] = field(default_factory=dict)
    pinned_uris: dict[str, str] = field(default_factory=dict)  # pipeline -> URI tasks fetch
    errors: dict[str, str] = field(default_factory=dict)  # manifest URI -> reason
    from_cache: int = 0
    fetched: int = 0
    warnings: list[str] = field(default_factory=list)


def _accept(result: LoadResult, name: str, data: bytes, source: str,
            pinned_uri: Callable[[Manifest], str]) -> None:
    try:
        manifest = Manifest.from_json(data, source=source)
        if manifest.name != name:
            raise MBTError(f"{source}: pipeline name {manifest.name!r} does not match its folder {name!r}")
    except (MBTError, KeyError, TypeError) as exc:
        result.errors[source] = str(exc)
        log.error("mbt: skipping manifest %s: %s", source, exc)
        return
    result.manifests[name] = manifest
    result.pinned_uris[name] = pinned_uri(manifest)


def load_owned_manifests(uri: str, teams: Iterable[Any], *, conn_id: str | None = None,
                         only: str | None = None) -> LoadResult:
    """``load_manifests`` of each team's folder ``<uri><team>/`` (``ownership.Team``), keeping a
    manifest only when the ownership rule allows it; a refused one is an error of its file."""
    from airflow_mbt.manifests.ownership import team_uri, violation

    merged = LoadResult(source=uri)
    for team in teams:
        if only is not None and not only.startswith(team.prefix):
            continue  # a task-time parse reads only the folder of the team owning the DAG id
        part = load_manifests(team_uri(uri, team), conn_id=conn_id, only=only)
        merged.errors.update(part.errors)
        merged.warnings.extend(part.warnings)
        merged.from_cache += part.from_cache
        merged.fetched += part.fetched
        for name, manifest in part.manifests.items():
            why = violation(team, manifest)
            if why:
                merged.errors[part.pinned_uris[name]] = why
                log.error("mbt: skipping manifest %s: %s", part.pinned_uris[name], why)
                continue
            merged.manifests[name] = manifest
            merged.pinned_uris[name] = part.pinned_uris[name]
    return merged


def _names(keys: Iterable[str], only: str | None) -> list[str]:
    names = sorted(k.split("/", 1)[0] for k in keys if k.count("/") == 1 and k.endswith("/" + CURRENT))
    return [n for n in names if only is None or n == only]


def _load_local(backend: ManifestLocation, only: str | None) -> LoadResult:
    result = LoadResult(source=backend.label)
    keys = backend.list()
    for name in _names(keys, only):
        current = current_key(name)
        data = backend.read(current)
        if data is None:
            continue

        def pinned(manifest: Manifest, current: str = current) -> str:
            # compiled but never deployed: tasks read the manifest itself
            pin = pinned_key(manifest.name, manifest.content_hash)
            return backend.uri(pin if pin in keys else current)

        _accept(result, name, data, backend.uri(current), pinned)
    return result


class _S3Cache:
    """``<root>/<sha1 of the location>/``: ``index.json`` and ``<pipeline>.json`` per pipeline."""

    def __init__(self, backend: ManifestLocation, root: Path):
        self.backend = backend
        self.dir = root / hashlib.sha1(backend.label.encode()).hexdigest()[:16]
        self.index_path = self.dir / "index.json"
        try:
            index = json.loads(self.index_path.read_text())
            if index.get("uri") != backend.label:
                raise ValueError("other prefix")
        except (OSError, ValueError):
            index = {"uri": backend.label, "checked_at": 0, "entries": {}}
        self.index: dict[str, Any] = index

    def file(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def save(self) -> None:
        atomic_write_bytes(self.index_path, json.dumps(self.index, sort_keys=True).encode())

    def refresh(self, only: str | None, result: LoadResult) -> None:
        """One LIST, then GET what changed. Raises InfraError when S3 is unreachable."""
        listing = self.backend.list()
        entries = self.index["entries"]
        names = _names(listing, only)
        for name in names:
            etag = listing[current_key(name)]
            entry = entries.get(name)
            if entry and entry.get("etag") == etag and self.file(name).is_file():
                continue
            got = self.backend.get(current_key(name))
            if got is None:  # deleted between LIST and GET
                entries.pop(name, None)
                continue
            data, etag = got
            atomic_write_bytes(self.file(name), data)
            pins = [k for k in listing if k.startswith(name + "/") and is_pinned_key(k)]
            entries[name] = {"etag": etag, "pins": sorted(pins)}
            result.fetched += 1
        if only is None:
            for gone in set(entries) - set(names):
                entries.pop(gone)
                self.file(gone).unlink(missing_ok=True)
            self.index["checked_at"] = time.time()
        self.save()

    def load(self, only: str | None, result: LoadResult) -> None:
        for name in sorted(self.index["entries"]):
            if only is not None and name != only:
                continue
            source = self.backend.uri(current_key(name))
            try:
                data = self.file(name).read_bytes()
            except FileNotFoundError:
                result.errors[source] = "cached copy is missing"
                continue
            pins = self.index["entries"][name].get("pins") or []

            def pinned(manifest: Manifest, pins: list[str] = pins) -> str:
                pin = pinned_key(manifest.name, manifest.content_hash)
                return self.backend.uri(pin if pin in pins else current_key(manifest.name))

            _accept(result, name, data, source, pinned)
        result.from_cache = len(result.manifests) - result.fetched


def load_manifests(uri: str | None = None, *, conn_id: str | None = None, cache_dir: Path | None = None,
                   ttl: float | None = None, only: str | None = None) -> LoadResult:
    """All current manifests under ``uri`` (default ``[mbt] manifests_uri``); ``only`` restricts
    the work to one pipeline (task-time parse)."""
    from airflow_mbt import settings

    uri = uri or settings.setting("manifests_uri")
    backend = location_for(uri, conn_id, **PARSE_CLIENT_LIMITS)
    if not backend.is_s3:
        return _load_local(backend, only)
    result = LoadResult(source=backend.label)
    cache = _S3Cache(backend, Path(cache_dir) if cache_dir else settings.cache_dir())
    ttl = settings.cache_ttl_seconds() if ttl is None else ttl
    fresh = time.time() - float(cache.index.get("checked_at") or 0) < ttl
    if not fresh:
        try:
            cache.refresh(only, result)
        except InfraError as exc:
            msg = (f"mbt: manifest store {backend.label} unreachable; building "
                   f"{len(cache.index['entries'])} DAG(s) from the cache ({exc})")
            result.warnings.append(msg)
            log.warning(msg)
    cache.load(only, result)
    return result
