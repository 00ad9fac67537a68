"""Entry-point registry of plugins: ``airflow_mbt.data_connectors``, ``.storage``, ``.frameworks``.

Third-party packages register more plugins under the same groups.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from typing import Any

from airflow_mbt.constants import PluginKind
from airflow_mbt.errors import MBTInputError

GROUPS = {kind.value: kind.entry_point_group for kind in PluginKind}


@lru_cache(maxsize=None)
def available(kind: str) -> dict[str, Any]:
    """Name -> entry point for one plugin kind."""
    return {ep.name: ep for ep in entry_points(group=PluginKind(kind).entry_point_group)}


def names(kind: str) -> list[str]:
    return sorted(available(kind))


def get(kind: str, name: str) -> Any:
    """The plugin class for ``name``; an ``MBTInputError`` listing the choices when unknown."""
    eps = available(kind)
    if name not in eps:
        raise MBTInputError(f"unknown {PluginKind(kind).singular} {name!r}",
                            hint=f"choose one of: {', '.join(sorted(eps)) or '(none installed)'}")
    return eps[name].load()
