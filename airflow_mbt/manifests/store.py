"""Publishing compiled manifests (``mbt deploy``) and fetching one by hash (tasks).

``publish_manifests`` (``mbt deploy``) publishes releases (``airflow_mbt.manifests.releases``:
the immutable pinned copy first, then the ``current`` pointer with a conditional put, then the
history); a changed pipeline is a new release, never a refusal.
``fetch_manifest`` (tasks, ``mbt step execute``) verifies the content hash and keeps pinned copies
in a local cache. Locations and the key layout are in ``airflow_mbt.manifests.backends``; the
DAG-parse listing, ``load_manifests``, is in ``airflow_mbt.manifests.cache``. Both functions keep
the signatures of the former ``airflow_mbt.manifest_store``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow_mbt._fs import atomic_write_bytes
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.manifests.backends import (
    CURRENT,
    hash_hex,
    is_pinned_key,
    location_for,
)

log = logging.getLogger("airflow_mbt.manifests.store")


def publish_manifests(manifests: Iterable[Manifest], dest_uri: str, *, conn_id: str | None = None,
                      force: bool = False, dry_run: bool = False,
                      project_dir: Path | None = None) -> list[dict[str, Any]]:
    """Deploy manifests under ``dest_uri`` as releases (``releases.deploy_manifests``): one change
    per manifest, ``action`` ``create`` | ``update`` | ``unchanged`` | ``conflict``. A changed
    pipeline is never refused any more; ``force`` is accepted for old callers and ignored.
    ``project_dir`` ships each manifest's code with it, as ``mbt deploy`` does; without it a
    task runs only where the project's code matches the manifest's (else exit 3)."""
    from airflow_mbt.manifests.releases import deploy_manifests

    del force
    return deploy_manifests(manifests, dest_uri, conn_id=conn_id, dry_run=dry_run, project_dir=project_dir)


def split_manifest_uri(uri: str) -> tuple[str, str]:
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
    parent, leaf = split_manifest_uri(uri)
    candidates = [leaf]
    if expected_hash and (leaf == CURRENT or is_pinned_key(f"x/{leaf}")):
        # the pinned release of the expected hash, whichever release the URI names
        wanted = f"{hash_hex(expected_hash)}.json"
        candidates = [wanted] + [c for c in candidates if c != wanted]
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
            hint="the release pinned by this DAG run is missing from the manifests location "
                 "(deleted by retention?); clear the run so it pins the current release")
    if expected_hash:
        try:
            atomic_write_bytes(_pinned_cache_path(expected_hash), got[0])
        except OSError as exc:  # a read-only home in a pod is fine: the cache is an optimisation
            log.debug("mbt: cannot cache %s: %s", source, exc)
    return manifest

