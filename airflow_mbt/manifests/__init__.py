"""Compiled manifests once they leave ``target/``: publishing (``mbt deploy``), fetching one by
hash (tasks), and the DAG-parse listing with its local cache.

Modules, in import order (no cycle): ``backends`` (where manifests live - a local folder or
``s3://`` on the ``Storage`` plugins - and the key layout) <- ``store`` (publish, fetch),
``cache`` (``load_manifests``) and ``code_archive`` (the project code shipped with a release,
fetched and verified by a task whose code differs) <- ``releases`` (deploy, rollback, history).
Exports are lazy: importing this package loads nothing, so
``from airflow_mbt.manifests import load_manifests`` costs only what the cache module needs.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "publish_manifests": "airflow_mbt.manifests.store",
    "fetch_manifest": "airflow_mbt.manifests.store",
    "load_manifests": "airflow_mbt.manifests.cache",
    "load_owned_manifests": "airflow_mbt.manifests.cache",
    "LoadResult": "airflow_mbt.manifests.cache",
    "CURRENT": "airflow_mbt.manifests.backends",
    "ManifestLocation": "airflow_mbt.manifests.backends",
    "current_key": "airflow_mbt.manifests.backends",
    "hash_hex": "airflow_mbt.manifests.backends",
    "is_pinned_key": "airflow_mbt.manifests.backends",
    "location_for": "airflow_mbt.manifests.backends",
    "backend_for": "airflow_mbt.manifests.backends",
    "pinned_key": "airflow_mbt.manifests.backends",
    "split_s3_uri": "airflow_mbt.manifests.backends",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
