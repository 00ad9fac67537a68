"""Entry-point registry of plugins: ``airflow_mbt.data_connectors``, ``.storage``, ``.frameworks``.

Third-party packages register more plugins under the same groups.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from airflow_mbt.errors import MBTInputError

GROUPS = {
    "data_connectors": "airflow_mbt.data_connectors",
    "storage": "airflow_mbt.storage",
    "frameworks": "airflow_mbt.frameworks",
}


@lru_cache(maxsize=None)
def available(kind: str) -> dict[str, object]:
    """Name -> entry point for one plugin kind."""
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    return sorted(available(kind))


def get(kind: str, name: str):
    """The plugin class for ``name``; an ``MBTInputError`` listing the choices when unknown."""
    eps = available(kind)
    if name not in eps:
        raise MBTInputError(f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}",
                            hint=f"choose one of: {', '.join(sorted(eps)) or '(none installed)'}")
    return eps[name].load()
