"""The ``[mbt]`` configuration section (declared in ``provider_info``).

Lookup order for an option NAME: env ``MBT_<NAME>`` (e.g. ``MBT_MANIFESTS_URI``), env
``AIRFLOW__MBT__<NAME>``, then Airflow's config (``airflow.cfg``) when Airflow is importable,
then the provider default. The env paths need no Airflow import, so ``mbt`` commands stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_mbt.provider_info import PROVIDER_INFO

_OPTIONS: dict = PROVIDER_INFO["config"]["mbt"]["options"]


def setting(name: str) -> str:
    """The value of ``[mbt] <name>`` as a string ("" when unset and without default)."""
    if name not in _OPTIONS:
        raise KeyError(f"unknown [mbt] option {name!r}")
    for env in (f"MBT_{name.upper()}", f"AIRFLOW__MBT__{name.upper()}"):
        if os.environ.get(env):
            return os.environ[env]
    default = _OPTIONS[name]["default"] or ""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency; kept for slim images
        return str(default)
    return str(conf.get("mbt", name, fallback=default) or default)


def cache_ttl_seconds() -> float:
    value = setting("cache_ttl_seconds")
    try:
        return max(0.0, float(value))
    except ValueError:
        from airflow_mbt.errors import MBTInputError

        raise MBTInputError(f"cache_ttl_seconds must be a number, got {value!r}",
                            field="[mbt] cache_ttl_seconds", hint="e.g. 60") from None


def cache_dir() -> Path:
    """Manifest cache root: ``[mbt] cache_dir`` or ``$AIRFLOW_HOME/mbt_cache``."""
    value = setting("cache_dir")
    if value:
        return Path(value).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "mbt_cache"


def project_dir() -> Path | None:
    value = setting("project_dir")
    return Path(value).expanduser() if value else None
