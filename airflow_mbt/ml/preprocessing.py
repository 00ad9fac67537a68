"""Fit and replay the tabular preprocessing (impute, scale, one-hot) as a pure-JSON dict.

``fit`` learns everything from the training frame and returns the ``preprocessor`` artifact of
CONTRACTS §3; ``transform`` replays it on any frame (evaluation, serving, the MLflow pyfunc)
without sklearn, producing exactly ``output_columns`` in that order.

Column kinds recorded in ``input_columns``: ``integer``, ``float``, ``boolean`` (numeric) and
``string`` (categorical; object/category/string dtypes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from airflow_mbt.errors import MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

VERSION = 1
NUMERIC_KINDS = ("integer", "float", "boolean")
OTHER_LEVEL = "__other__"
IMPUTE_NUMERIC = ("median", "mean", "zero", "none")
IMPUTE_CATEGORICAL = ("most_frequent", "missing", "none")  # the pipeline schema's values
SCALES = ("standard", "minmax", "none")
ENCODINGS = ("onehot", "none")
MISSING_LEVEL = "__missing__"


def column_kind(series: "pd.Series") -> str:
    """The dtype kind of a column as recorded in ``input_columns``."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or dtype == object:
        non_null = series.dropna()
        if len(non_null) and all(isinstance(v, bool) for v in non_null.head(1000)):
            return "boolean"
        return "string"
    return "string"


def settings_from_config(config: dict) -> dict:
    """Validated ``training.preprocessing`` settings (defaults of CONTRACTS §1 filled)."""
    pre = ((config.get("training") or {}).get("preprocessing")) or {}
    impute = pre.get("impute") or {}
    settings = {
        "impute_numeric": impute.get("numeric", "median"),
        "impute_categorical": impute.get("categorical", "most_frequent"),
        "scale": pre.get("scale", "standard"),
        "encode": pre.get("encode", "onehot"),
        "custom_transforms": list(pre.get("custom_transforms") or []),
    }
    for key, allowed, fld in (("impute_numeric", IMPUTE_NUMERIC, "impute.numeric"),
                              ("impute_categorical", IMPUTE_CATEGORICAL, "impute.categorical"),
                              ("scale", SCALES, "scale"), ("encode", ENCODINGS, "encode")):
        if settings[key] not in allowed:
            raise MBTInputError(f"unknown value {settings[key]!r}", field=f"training.preprocessing.{fld}",
                                hint=f"use one of: {', '.join(allowed)}")
    return settings


def _as_float(series: "pd.Series") -> "pd.Series":
    import pandas as pd

    if series.dtype == object:
        series = series.map(lambda v: float(v) if isinstance(v, bool) else v)
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _as_text(series: "pd.Series") -> "pd.Series":
    """Categorical values as strings; missing (None, NaN, NaT, pd.NA) becomes ``None``."""
    import numpy as np
    import pandas as pd

    values = series.astype(object)
    missing = values.isna().to_numpy()
    text = np.array([None if gone else str(v) for v, gone in zip(values.to_numpy(), missing)], dtype=object)
    return pd.Series(text, index=series.index, dtype=object)


def fit(df: "pd.DataFrame", *, label_column: str | None, id_column: str | None = None,
        ignored_columns: Iterable[str] = (), custom_transforms: Iterable[str] = (),
        impute_numeric: str = "median", impute_categorical: str = "most_frequent",
        scale: str = "standard", encode: str = "onehot", max_levels: int = 50) -> dict:
    """Learn the preprocessing of every feature column of ``df`` (all columns but the label, the id
    and the ignored ones) and return the JSON preprocessor."""
    ignored = list(ignored_columns)
    skip = {label_column, id_column, *ignored}
    input_columns: dict[str, str] = {}
    numeric: dict[str, dict] = {}
    categorical: dict[str, dict] = {}
    output_columns: list[str] = []
    for col in df.columns:
        if col in skip:
            continue
        kind = column_kind(df[col])
        if kind == "datetime":
            raise MBTInputError(f"column {col!r} is a date/time column, which the preprocessing cannot use",
                                field="training.schema.ignored_columns",
                                hint=f"add {col!r} to ignored_columns or derive numbers from it in a custom transform")
        input_columns[col] = kind
        if kind in NUMERIC_KINDS:
            numeric[col] = _fit_numeric(_as_float(df[col]), impute_numeric, scale)
            output_columns.append(col)
        else:
            spec = _fit_categorical(_as_text(df[col]), impute_categorical, max_levels)
            categorical[col] = spec
            if encode == "onehot":
                output_columns.extend(onehot_names(col, spec["levels"]))
            else:
                output_columns.append(col)
    if not input_columns:
        raise MBTInputError("no feature columns left after removing the label, id and ignored columns",
                            field="training.schema.ignored_columns")
    return {
        "version": VERSION,
        "input_columns": input_columns,
        "id_column": id_column,
        "label_column": label_column,
        "ignored_columns": ignored,
        "custom_transforms": list(custom_transforms),
        "encode": encode,
        "numeric": numeric,
        "categorical": categorical,
        "output_columns": output_columns,
    }


def _fit_numeric(x: "pd.Series", impute: str, scale: str) -> dict:
    present = x.dropna()
    if impute == "median":
        fill = float(present.median()) if len(present) else 0.0
    elif impute == "mean":
        fill = float(present.mean()) if len(present) else 0.0
    elif impute == "zero":
        fill = 0.0
    else:
        fill = None
    filled = x.fillna(fill) if fill is not None else present
    filled = filled.dropna()
    center, spread = 0.0, 1.0
    if len(filled) and scale == "standard":
        center, spread = float(filled.mean()), float(filled.std(ddof=0))
    elif len(filled) and scale == "minmax":
        center, spread = float(filled.min()), float(filled.max() - filled.min())
    if not spread or spread != spread:
        spread = 1.0
    return {"impute": fill, "center": center, "scale": spread}


def _fit_categorical(values: "pd.Series", impute: str, max_levels: int) -> dict:
    counts = values.dropna().value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if impute == "most_frequent":
        fill = ordered[0][0] if ordered else MISSING_LEVEL
    elif impute == "missing":
        fill = MISSING_LEVEL
    else:
        fill = None
    levels = [level for level, _ in ordered[:max_levels]]
    if fill == MISSING_LEVEL and values.isna().any() and MISSING_LEVEL not in levels:
        levels.append(MISSING_LEVEL)
    return {"impute": fill, "levels": sorted(levels)}


def onehot_names(col: str, levels: list[str]) -> list[str]:
    return [f"{col}={level}" for level in levels] + [f"{col}={OTHER_LEVEL}"]


def transform(df: "pd.DataFrame", pre: dict) -> "pd.DataFrame":
    """Replay a fitted preprocessor: returns exactly ``pre["output_columns"]`` (float64 columns,
    or text columns when ``encode`` is ``none``), aligned with ``df``'s index. Unseen categories go
    to ``<col>=__other__``; missing values get the training imputation."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    for col, kind in pre["input_columns"].items():
        if col not in df.columns:
            from airflow_mbt.errors import DataContractError

            raise DataContractError(f"column {col!r} is missing", field="input columns",
                                    hint="the scoring data must have the columns used in training")
        if kind in NUMERIC_KINDS:
            spec = pre["numeric"][col]
            x = _as_float(df[col])
            if spec["impute"] is not None:
                x = x.fillna(spec["impute"])
            out[col] = (x - spec["center"]) / spec["scale"]
            continue
        spec = pre["categorical"][col]
        values = _as_text(df[col])
        if spec["impute"] is not None:
            values = values.map(lambda v, f=spec["impute"]: f if v is None else v)
        if pre.get("encode", "onehot") == "onehot":
            arr = values.to_numpy(dtype=object)
            known = np.zeros(len(arr), dtype=bool)
            for level, name in zip(spec["levels"], onehot_names(col, spec["levels"])):
                hit = arr == level
                known |= hit
                out[name] = hit.astype("float64")
            out[f"{col}={OTHER_LEVEL}"] = (~known).astype("float64")
        else:
            out[col] = values
    result = pd.DataFrame(out, index=df.index)
    return result[pre["output_columns"]]
