"""User feature functions (``training.preprocessing.custom_transforms``: ``"module:function"``).

Imported with the project directory on ``sys.path`` (so ``lib.features:add_ratio`` finds
``<project>/lib/features.py``); each function takes and returns a pandas DataFrame. They run on
raw frames: in ``split_data`` for training and in ``apply_transforms`` for serving.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from airflow_mbt.errors import DataContractError, MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.preprocessing.custom_transforms"


def _forget_foreign(module: str, project_dir: Path) -> None:
    """Drop cached modules of the same dotted name imported from another project."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        cached = sys.modules.get(name)
        if cached is None:
            continue
        files = [getattr(cached, "__file__", None)] + list(getattr(cached, "__path__", []) or [])
        if not any(f and Path(f).resolve().is_relative_to(project_dir) for f in files):
            del sys.modules[name]


def load(spec: str, project_dir: Path, index: int = 0) -> Callable[["pd.DataFrame"], "pd.DataFrame"]:
    """Import ``module:function`` from the project."""
    where = f"{FIELD}[{index}]"
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise MBTInputError(f"{spec!r} is not of the form module:function", field=where,
                            hint="e.g. lib.features:add_ratio for def add_ratio(df) in lib/features.py")
    module_name, func_name = spec.split(":")
    project_dir = Path(project_dir).resolve()
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    _forget_foreign(module_name, project_dir)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MBTInputError(f"cannot import {module_name!r}: {exc}", field=where,
                            hint=f"put the module under {project_dir} (e.g. lib/features.py)") from None
    except Exception as exc:  # noqa: BLE001 - user code failed at import
        raise MBTInputError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", field=where) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise MBTInputError(f"{module_name!r} has no function {func_name!r}", field=where,
                            hint=f"define def {func_name}(df): ... return df")
    return func


def apply(df: "pd.DataFrame", specs: Iterable[str], project_dir: Path) -> "pd.DataFrame":
    """Run the custom transforms in order; a missing column inside one becomes a
    ``DataContractError`` naming the transform and the column."""
    import pandas as pd

    for i, spec in enumerate(specs):
        func = load(spec, project_dir, i)
        try:
            result = func(df.copy())
        except KeyError as exc:
            raise DataContractError(f"custom transform {spec} needs column {exc.args[0]!r}, which is missing",
                                    field=f"{FIELD}[{i}]",
                                    hint="the input table must have the columns the transform reads") from None
        except Exception as exc:  # noqa: BLE001 - report user code failures as input errors
            raise MBTInputError(f"custom transform {spec} failed: {type(exc).__name__}: {exc}",
                                field=f"{FIELD}[{i}]") from None
        if not isinstance(result, pd.DataFrame):
            raise MBTInputError(f"custom transform {spec} returned {type(result).__name__}, not a DataFrame",
                                field=f"{FIELD}[{i}]", hint="return the (modified) frame")
        if len(result) != len(df):
            raise MBTInputError(f"custom transform {spec} changed the row count ({len(df)} -> {len(result)})",
                                field=f"{FIELD}[{i}]", hint="transforms must keep every row")
        df = result
    return df
