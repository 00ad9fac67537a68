"""Publishing compiled manifests (``mbt deploy``) and fetching one by hash (tasks).

``publish_manifests`` (``mbt deploy``) writes the pinned copy first, then the current one with a
conditional put, and refuses to change the content of a deployed pipeline unless forced.
``fetch_manifest`` (tasks, ``mbt step execute``) verifies the content hash and keeps pinned copies
in a local cache. Locations and the key layout are in ``airflow_mbt.manifests.backends``; the
DAG-parse listing, ``load_manifests``, is in ``airflow_mbt.manifests.cache``. Both functions keep
the signatures of the former ``airflow_mbt.manifest_store``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow_mbt._fs import atomic_write_bytes
from airflow_mbt.errors import MBTInputError, RegistryConflictError
from airflow_mbt.manifest import Manifest
from airflow_mbt.manifests.backends import (
    CURRENT,
    current_key,
    hash_hex,
    location_for,
    pinned_key,
)

log = logging.getLogger("airflow_mbt.manifests.store")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _deployed_hash(data: bytes) -> str | None:
    try:
        value = json.loads(data).get("content_hash")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def publish_manifests(manifests: Iterable[Manifest], dest_uri: str, *, conn_id: str | None = None,
                      force: bool = False, dry_run: bool = False) -> list[dict[str, Any]]:
    """Deploy manifests under ``dest_uri``; returns one change per manifest:
    ``{"pipeline", "action": "create"|"unchanged"|"refused"|"update", "hash", "uri", "pinned_uri"}``
    (``"message"`` on refused, ``"previous_hash"`` when something was deployed before).
    ``dry_run`` computes the changes without writing anything."""
    backend = location_for(dest_uri, conn_id)
    changes: list[dict[str, Any]] = []
    for manifest in manifests:
        name = manifest.name
        if not _NAME.fullmatch(name):
            raise MBTInputError(f"pipeline name {name!r} cannot be used as a storage key",
                                field="project.name", hint="use letters, digits, '_', '.' and '-'")
        cur, pin = current_key(name), pinned_key(name, manifest.content_hash)
        change: dict[str, Any] = {"pipeline": name, "hash": manifest.content_hash, "uri": backend.uri(cur),
                  "pinned_uri": backend.uri(pin)}
        existing = backend.get(cur)
        previous = _deployed_hash(existing[0]) if existing else None
        if existing is None:
            change["action"] = "create"
        elif previous == manifest.content_hash:
            change["action"] = "unchanged"
        elif not force:
            change["action"] = "refused"
            change["message"] = (
                f"pipeline {name!r} is already deployed at {backend.uri(cur)} with other content "
                f"({previous or 'unreadable'}); publish a new version such as {name}_v2 "
                f"(or pass --force to overwrite)")
        else:
            change["action"] = "update"
        if previous:
            change["previous_hash"] = previous
        if not dry_run and change["action"] in ("create", "update"):
            data = manifest.to_json().encode("utf-8")
            try:
                backend.put_if_absent(pin, data)
            except RegistryConflictError:
                pass  # content-addressed: an existing pinned copy holds the same bytes
            try:
                if existing is None:
                    backend.put_if_absent(cur, data)
                else:
                    backend.put_if_match(cur, data, existing[1])
            except RegistryConflictError:
                change["action"] = "refused"
                change["message"] = (f"{backend.uri(cur)} was changed by another deploy meanwhile; "
                                     "run `mbt deploy` again")
            log.info("mbt: %s %s -> %s", change["action"], name, change["uri"])
        changes.append(change)
    return changes


def _split(uri: str) -> tuple[str, str]:
    """``.../<pipeline>/<leaf>`` -> (parent prefix with trailing separator, leaf)."""
    if uri.startswith("s3://"):
        parent, _, leaf = uri.rpartition("/")
        return parent + "/", leaf
    path = Path(uri.removeprefix("file://"))
    return str(path.parent), path.name


def _pinned_cache_path(content_hash: str) -> Path:
    from airflow_mbt.settings import cache_dir

    return cache_dir() / "pinned" / f"{hash_hex(content_hash)}.json"


def fetch_manifest(uri: str, *, conn_id: str | None = None, expected_hash: str | None = None) -> Manifest:
    """Read one manifest (``s3://...`` or a path), verify it, and when ``expected_hash`` is given
    make sure it is exactly that version: a ``.../manifest.json`` URI is then read from its pinned
    sibling ``<hash-hex>.json``, and a verified copy is served from the local cache next time."""
    if expected_hash:
        cached = _pinned_cache_path(expected_hash)
        if cached.is_file():
            try:
                manifest = Manifest.from_json(cached.read_bytes(), source=str(cached))
                if manifest.content_hash == expected_hash:
                    return manifest
            except MBTInputError:
                log.warning("mbt: ignoring corrupt cached manifest %s", cached)
    parent, leaf = _split(uri)
    candidates = [leaf]
    if expected_hash and leaf == CURRENT:
        candidates.insert(0, f"{hash_hex(expected_hash)}.json")
    backend = location_for(parent, conn_id)
    for candidate in candidates:
        got = backend.get(candidate)
        if got is not None:
            source = backend.uri(candidate)
            break
    else:
        raise MBTInputError("manifest not found", file=uri,
                            hint="deploy it with `mbt deploy` (or compile it with `mbt compile`)")
    manifest = Manifest.from_json(got[0], source=source)
    if expected_hash and manifest.content_hash != expected_hash:
        raise MBTInputError(
            f"manifest has content hash {manifest.content_hash}, expected {expected_hash}", file=source,
            hint="the pipeline was changed after this DAG run was scheduled; deploy changes as a new "
                 "pipeline version instead of overwriting")
    if expected_hash:
        try:
            atomic_write_bytes(_pinned_cache_path(expected_hash), got[0])
        except OSError as exc:  # a read-only home in a pod is fine: the cache is an optimisation
            log.debug("mbt: cannot cache %s: %s", source, exc)
    return manifest

