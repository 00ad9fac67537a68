"""The project code a pipeline runs, as a hash compiled into its manifest (``code``).

``project_code(root, config)`` covers every file under ``<project>/lib/`` and the module (file or
package) of each ``training.preprocessing.custom_transforms`` entry (``"module:function"``),
skipping byte-code caches. It returns ``{"hash": "sha256:<hex>", "files": {relpath: sha256 hex}}``
(sorted, POSIX paths relative to the project), or ``None`` when the project has no such code, so
a change of any of these files is a new release while the YAML's comments are not (see
``airflow_mbt.manifest.compute_release_hash``). Pure stdlib, no imports of the user's code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

LIB_DIR = "lib"
_SKIP_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        return
    for child in sorted(path.iterdir()):
        if child.name in _SKIP_DIRS or child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _files(child)
        elif child.is_file() and not child.name.endswith(_SKIP_SUFFIXES):
            yield child


def transform_modules(config: Mapping[str, Any]) -> list[str]:
    """Top-level module names of the pipeline's custom transforms (``lib.features:f`` -> ``lib``)."""
    specs = (((config.get("training") or {}).get("preprocessing") or {}).get("custom_transforms") or [])
    return sorted({s.split(":", 1)[0].split(".", 1)[0] for s in specs if isinstance(s, str) and ":" in s})


def project_code(root: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"hash", "files"}`` of the project code (see the module docstring), ``None`` when none."""
    root = Path(root).resolve()
    roots = [root / LIB_DIR]
    for module in transform_modules(config):
        roots += [root / module, root / f"{module}.py"]
    files: dict[str, str] = {}
    for base in roots:
        for path in _files(base):
            rel = path.resolve().relative_to(root).as_posix() if path.resolve().is_relative_to(root) else None
            if rel is not None and rel not in files:
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    if not files:
        return None
    digest = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode())
    return {"hash": "sha256:" + digest.hexdigest(), "files": dict(sorted(files.items()))}
