"""User feature functions (``training.preprocessing.custom_transforms``: ``"module:function"``).

Contract:
- ``load(spec, root)`` imports ``module:function`` from ``root`` (``lib.features:add_ratio`` finds
  ``<root>/lib/features.py``) **in isolation**: ``root`` is on ``sys.path`` only while the module
  is imported, and every module imported from ``root`` is removed from ``sys.modules`` afterwards
  (earlier entries of the same names are restored). One project's ``lib/`` never shadows
  another's, and nothing of a project is left on ``sys.path``.
- ``apply(df, specs, root)`` runs the functions in order on a copy of the raw frame; each takes
  and returns a pandas DataFrame with the same rows (``row_filters=True``: a subset of the rows,
  for ``training.preprocessing.row_filters``). They run in ``split_data`` for training and in
  ``apply_transforms`` for serving.
- The model side of "serving runs the code it was trained with": ``code_files(specs, root)`` are
  the project files the transforms need (what ``log_run`` logs with the model), ``code_hash`` their
  sha256. ``load_model`` embeds the logged files in the preprocessor (``transform_code``);
  ``materialize`` writes them to a scratch folder that ``apply_transforms`` imports from, and
  ``changed_files`` names the files of the current ``lib/`` that differ (a warning, not an error).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from airflow_mbt.errors import DataContractError, MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.preprocessing.custom_transforms"
Transform = Callable[["pd.DataFrame"], "pd.DataFrame"]


def _from(module: Any, root: Path) -> bool:
    files = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", []) or [])
    return any(f and Path(f).resolve().is_relative_to(root) for f in files)


@contextmanager
def isolated(root: Path, tops: Iterable[str] = ()) -> Iterator[None]:
    """``root`` importable only inside the block; its modules are forgotten afterwards. Cached
    modules named ``tops`` (or below) that come from elsewhere are hidden during the block."""
    tops = set(tops)
    root = Path(root).resolve()
    saved_path = list(sys.path)
    saved_modules = dict(sys.modules)
    # a same-named module imported from elsewhere (another project) must not answer the import
    for name, module in list(sys.modules.items()):
        if module is not None and getattr(module, "__file__", None) and not _from(module, root) \
                and name.split(".")[0] in tops:
            del sys.modules[name]
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in [n for n, m in sys.modules.items() if m is not None and _from(m, root)]:
            del sys.modules[name]
        for name, module in saved_modules.items():
            sys.modules.setdefault(name, module)
        importlib.invalidate_caches()


def _split(spec: Any, index: int, field: str) -> tuple[str, str]:
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise MBTInputError(f"{spec!r} is not of the form module:function", field=f"{field}[{index}]",
                            hint="e.g. lib.features:add_ratio for def add_ratio(df) in lib/features.py")
    module, func = spec.split(":")
    return module, func


def load(spec: str, project_dir: Path, index: int = 0, field: str = FIELD) -> Transform:
    """Import ``module:function`` from ``project_dir`` in isolation (see the module docstring)."""
    where = f"{field}[{index}]"
    module_name, func_name = _split(spec, index, field)
    root = Path(project_dir).resolve()
    with isolated(root, [module_name.split(".")[0]]):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MBTInputError(f"cannot import {module_name!r}: {exc}", field=where,
                                hint=f"put the module under {root} (e.g. lib/features.py)") from None
        except Exception as exc:  # noqa: BLE001 - user code failed at import
            raise MBTInputError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                                field=where) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise MBTInputError(f"{module_name!r} has no function {func_name!r}", field=where,
                            hint=f"define def {func_name}(df): ... return df")
    return func  # type: ignore[no-any-return]


def load_all(specs: Iterable[str], root: Path, field: str = FIELD) -> list[tuple[str, Transform]]:
    return [(spec, load(spec, root, i, field)) for i, spec in enumerate(specs)]


def run(df: "pd.DataFrame", loaded: list[tuple[str, Transform]], *, field: str = FIELD,
        row_filters: bool = False, root: Path | None = None) -> "pd.DataFrame":
    """Run loaded transforms in order; a missing column inside one is a ``DataContractError``.
    With ``root`` (where they were loaded from) the calls run inside ``isolated(root)``, so an
    import inside a function body finds the project's modules too."""
    if root is None or not loaded:
        return _run(df, loaded, field, row_filters)
    with isolated(Path(root).resolve(), {spec.split(".")[0].split(":")[0] for spec, _ in loaded}):
        return _run(df, loaded, field, row_filters)


def _run(df: "pd.DataFrame", loaded: list[tuple[str, Transform]], field: str, row_filters: bool) -> "pd.DataFrame":
    import pandas as pd

    for i, (spec, func) in enumerate(loaded):
        where = f"{field}[{i}]"
        try:
            result = func(df.copy())
        except KeyError as exc:
            raise DataContractError(f"custom transform {spec} needs column {exc.args[0]!r}, which is missing",
                                    field=where,
                                    hint="the input table must have the columns the transform reads") from None
        except Exception as exc:  # noqa: BLE001 - report user code failures as input errors
            raise MBTInputError(f"custom transform {spec} failed: {type(exc).__name__}: {exc}", field=where) from None
        if not isinstance(result, pd.DataFrame):
            raise MBTInputError(f"custom transform {spec} returned {type(result).__name__}, not a DataFrame",
                                field=where, hint="return the (modified) frame")
        if row_filters:
            if len(result) > len(df) or not result.index.isin(df.index).all():
                raise MBTInputError(f"row filter {spec} must return a subset of its input rows "
                                    f"({len(df)} in, {len(result)} out)", field=where,
                                    hint="return df[mask] (keep the index); do not add rows")
        elif len(result) != len(df):
            raise MBTInputError(f"custom transform {spec} changed the row count ({len(df)} -> {len(result)})",
                                field=where, hint="declare row-removing functions under "
                                                  "training.preprocessing.row_filters; transforms keep every row")
        df = result
    return df


def apply(df: "pd.DataFrame", specs: Iterable[str], project_dir: Path, *, field: str = FIELD,
          row_filters: bool = False) -> "pd.DataFrame":
    """Import (in isolation) and run the transforms ``specs`` from ``project_dir``."""
    return run(df, load_all(list(specs), project_dir, field), field=field, row_filters=row_filters,
               root=Path(project_dir))


def code_files(specs: Iterable[str], project_dir: Path) -> list[Path]:
    """The project files (relative paths) the transforms import: each module's file and the
    ``__init__.py`` of its packages. Modules outside the project (installed packages) are none."""
    root = Path(project_dir)
    out: list[Path] = []
    for spec in specs:
        parts = str(spec).split(":", 1)[0].split(".")
        source = root.joinpath(*parts[:-1], parts[-1] + ".py")
        if not source.is_file():
            source = root.joinpath(*parts, "__init__.py")
        if not source.is_file():
            continue
        found = [source] + [root.joinpath(*parts[:d], "__init__.py") for d in range(1, len(parts))]
        out += [f.relative_to(root) for f in found if f.is_file()]
    return sorted(set(out))


def code_hash(files: dict[str, str]) -> str:
    """sha256 over ``{relative path: source text}`` (path order), the identity of the code."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].encode("utf-8") + b"\0")
    return digest.hexdigest()


def read_code(specs: Iterable[str], root: Path) -> dict[str, str]:
    """``{relative path: text}`` of ``code_files`` under ``root``."""
    return {str(rel.as_posix()): (Path(root) / rel).read_text(encoding="utf-8") for rel in code_files(specs, root)}


def materialize(files: dict[str, str], dest: Path) -> Path:
    """Write logged code files under ``dest`` (paths stay inside it); returns ``dest``."""
    dest = Path(dest).resolve()
    for rel, text in files.items():
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest):
            raise MBTInputError(f"logged transform code has an unsafe path {rel!r}",
                                hint="retrain the model with mbt (its code is logged under code/)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return dest


def changed_files(files: dict[str, str], project_dir: Path) -> list[str]:
    """Logged files whose current copy under ``project_dir`` differs or is gone."""
    out = []
    for rel, text in sorted(files.items()):
        path = Path(project_dir) / rel
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            out.append(rel)
    return out
