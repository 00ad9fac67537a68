"""Fit and replay the tabular preprocessing (impute, scale, one-hot) as a pure-JSON dict.

``fit`` learns everything from the training frame and returns the ``preprocessor`` artifact of
CONTRACTS §3; ``transform`` replays it on any frame (evaluation, serving, the MLflow pyfunc)
without sklearn, producing exactly ``output_columns`` in that order.

Which columns are features, and how each is treated, is the column plan of ``ml/columns.py``
(stored under ``columns``). Kinds recorded in ``input_columns``: ``integer``, ``float``,
``boolean`` (numeric), ``string`` (text; object/category/string dtypes) and ``datetime`` (parsed
and turned into derived numbers). Version 2 adds ``columns``, ``excluded_columns``, ``datetime``,
``encoded`` (frequency/target encodings), ``missing_indicators`` and ``settings``; a version-1
preprocessor (without them) replays unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import columns

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

VERSION = 2
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
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or dtype == object:  # noqa: E721 - numpy dtype equality, not a type check
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
    settings.update(columns.settings_from_config(config))
    return settings


def schema_settings(config: dict) -> dict:
    """The ``fit`` keywords that come from ``training.schema`` and ``training.split``: declared
    id columns and the split's time column."""
    training = config.get("training") or {}
    ident = (training.get("schema") or {}).get("identifiers") or {}
    return {"id_columns": list(ident.get("id_columns") or []),
            "time_column": (training.get("split") or {}).get("time_column")}


def _as_float(series: "pd.Series") -> "pd.Series":
    import pandas as pd

    if series.dtype == object:
        series = series.map(lambda v: float(v) if isinstance(v, bool) else v)
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _as_text(series: "pd.Series", missing: "np.ndarray | None" = None) -> "pd.Series":
    """Categorical values as strings; missing (None, NaN, NaT, pd.NA) becomes ``None``. ``missing``
    (``series.isna()`` as an array) saves a scan when the caller has it."""
    import numpy as np
    import pandas as pd

    values = series.astype(object)
    if missing is None:
        missing = values.isna().to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):  # already text: no per-value str()
        text = values.to_numpy(dtype=object, copy=True)
        text[missing] = None
    else:
        text = np.array([None if gone else str(v) for v, gone in zip(values.to_numpy(), missing)], dtype=object)
    return pd.Series(text, index=series.index, dtype=object)


def fit(df: "pd.DataFrame", *, label_column: str | None, id_column: str | None = None,
        ignored_columns: Iterable[str] = (), custom_transforms: Iterable[str] = (),
        impute_numeric: str = "median", impute_categorical: str = "most_frequent",
        scale: str = "standard", encode: str = "onehot", max_levels: int = columns.DEFAULT_MAX_LEVELS,
        id_columns: Iterable[str] = (), time_column: str | None = None, kinds: dict | None = None,
        datetime_features: str = columns.DatetimeFeatures.PARTS, datetime_parts: Iterable[str] = columns.DATETIME_PARTS,
        datetime_reference: str | None = None, high_cardinality: str = columns.HighCardinality.TOP_K,
        missing_indicator_threshold: float | None = columns.DEFAULT_MISSING_THRESHOLD,
        target: "pd.DataFrame | None" = None) -> dict:
    """Resolve the column plan (``columns.py``) of ``df`` and learn the preprocessing of every
    feature column; returns the JSON preprocessor. ``target`` (numeric columns aligned with ``df``:
    the positive-class indicator, one indicator per class, or the regression label) is needed only
    for ``high_cardinality: target``; it is fitted on these (training) rows only."""
    ignored = list(ignored_columns)
    kinds = dict(kinds or {})
    declared_ids = [c for c in [id_column, *id_columns] if c]
    input_columns: dict[str, str] = {}
    numeric: dict[str, dict] = {}
    categorical: dict[str, dict] = {}
    encoded: dict[str, dict] = {}
    dates: dict[str, dict] = {}
    indicators: list[str] = []
    output_columns: list[str] = []
    plan: list[dict] = [columns.entry(c, columns.Role.IGNORED, columns.Kind.UNKNOWN, "dropped",
                                      "ignored_columns") for c in ignored if c not in df.columns]
    n = len(df)
    for col in df.columns:
        series = df[col]
        share = None  # computed for feature candidates only (a full scan of text columns costs)
        E = columns.entry
        if col == label_column:
            plan.append(E(col, columns.Role.LABEL, _plain_kind(series), "target", "", share))
            continue
        if col in declared_ids:
            plan.append(E(col, columns.Role.ID, _plain_kind(series), "kept for output" if col == id_column else "",
                          "primary_key" if col == id_column else "id_columns", share))
            continue
        if col in ignored:
            plan.append(E(col, columns.Role.IGNORED, _plain_kind(series), "dropped", "ignored_columns", share))
            continue
        if col == time_column:
            plan.append(E(col, columns.Role.TIME, columns.Kind.DATETIME, "orders the split",
                          "split.time_column: not a feature", share))
            continue
        override = kinds.get(col)
        if override == "exclude":
            plan.append(E(col, columns.Role.IGNORED, _plain_kind(series), "dropped", "column_kinds: exclude", share))
            continue
        missing = series.isna().to_numpy()
        share = float(missing.mean()) if n else 0.0
        text = counts = None
        datetime_like = not _numeric_dtype(series) and columns.is_datetime_like(series)
        if override == "categorical" or (override is None and not _numeric_dtype(series) and not datetime_like):
            text = _as_text(series, missing)
            counts = text[~missing].value_counts()
        if override == "numeric":
            kind = columns.Kind.NUMERIC
        elif override == "categorical":
            kind = columns.Kind.CATEGORICAL if len(counts) <= max_levels else columns.Kind.TEXT
        elif override == "datetime":
            kind = columns.Kind.DATETIME
        else:
            kind = columns.Kind.DATETIME if datetime_like else \
                columns.infer_kind(series, max_levels=max_levels, n_levels=None if counts is None else len(counts))
        levels = None if counts is None or kind == columns.Kind.DATETIME else len(counts)
        if share == 1.0:
            plan.append(E(col, columns.Role.IGNORED, kind, "dropped", "entirely missing in training", share))
            continue
        if (override is None and kind == columns.Kind.NUMERIC and _is_integer(series)
                and columns.ID_NAME.search(str(col))):
            plan.append(E(col, columns.Role.ID, kind, "dropped", "integer column named like an id", share))
            continue
        if kind == columns.Kind.DATETIME and datetime_features == columns.DatetimeFeatures.EXCLUDE:
            plan.append(E(col, columns.Role.IGNORED, kind, "dropped", "datetime.features: exclude", share))
            continue
        note = ""
        if kind == columns.Kind.DATETIME:
            input_columns[col] = "datetime"
            spec, derived, note = _fit_datetime(columns.as_datetime(series), datetime_features, list(datetime_parts),
                                                datetime_reference)
            if not derived:
                plan.append(E(col, columns.Role.IGNORED, kind, "dropped", note, share))
                del input_columns[col]
                continue
            dates[col] = spec
            for name, values in derived.items():
                numeric[name] = _fit_numeric(values, impute_numeric, scale)
                output_columns.append(name)
            treatment = (f"{spec['features']}: " + ",".join(spec["parts"]) if spec["features"] == "parts"
                         else f"age_days from {spec['reference'][:10]}")
        elif kind in (columns.Kind.NUMERIC, columns.Kind.BOOLEAN):
            input_columns[col] = "boolean" if kind == columns.Kind.BOOLEAN else (
                column_kind(series) if column_kind(series) in NUMERIC_KINDS else "float")
            numeric[col] = _fit_numeric(_as_float(series), impute_numeric, scale)
            output_columns.append(col)
            treatment = f"impute {impute_numeric}, scale {scale}"
        else:
            input_columns[col] = "string"
            if text is None:
                text = _as_text(series, missing)
                counts = text[~missing].value_counts()
            if kind == columns.Kind.TEXT and high_cardinality != columns.HighCardinality.TOP_K:
                spec = _fit_encoded(text, counts, high_cardinality, target, col)
                encoded[col] = spec
                output_columns.extend(spec["outputs"])
                treatment = f"{high_cardinality} encoding"
                note = f"{levels} levels > max_levels {max_levels}"
            else:
                spec = _fit_categorical(text, impute_categorical, max_levels, counts)
                categorical[col] = spec
                if encode == "onehot":
                    output_columns.extend(onehot_names(col, spec["levels"]))
                    treatment = f"onehot {len(spec['levels'])} levels + {OTHER_LEVEL}"
                else:
                    output_columns.append(col)
                    treatment = "text kept (encode: none)"
                if kind == columns.Kind.TEXT:
                    note = f"top {max_levels} of {levels} levels, the rest -> {OTHER_LEVEL}"
        if missing_indicator_threshold is not None and share > missing_indicator_threshold:
            indicators.append(col)
            output_columns.append(indicator_name(col))
            treatment += " + missing indicator"
        plan.append(E(col, columns.Role.FEATURE, kind, treatment, note, share, levels))
    if not input_columns:
        raise MBTInputError("no feature columns left after removing the label, id and ignored columns",
                            field="training.schema.ignored_columns")
    excluded = [p["column"] for p in plan if p["role"] != columns.Role.FEATURE and p["column"] not in ignored]
    return {
        "version": VERSION,
        "input_columns": input_columns,
        "id_column": id_column,
        "label_column": label_column,
        "ignored_columns": ignored,
        "excluded_columns": [c for c in excluded if c not in (id_column, label_column)],
        "custom_transforms": list(custom_transforms),
        "encode": encode,
        "numeric": numeric,
        "categorical": categorical,
        "encoded": encoded,
        "datetime": dates,
        "missing_indicators": indicators,
        "columns": plan,
        "settings": {"impute_numeric": impute_numeric, "impute_categorical": impute_categorical, "scale": scale,
                     "encode": encode, "max_levels": max_levels, "high_cardinality": str(high_cardinality),
                     "datetime_features": str(datetime_features), "datetime_parts": list(datetime_parts),
                     "datetime_reference": datetime_reference,
                     "missing_indicator_threshold": missing_indicator_threshold},
        "output_columns": output_columns,
    }


def indicator_name(col: str) -> str:
    return f"{col}__missing"


def _numeric_dtype(series: "pd.Series") -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype)


def _is_integer(series: "pd.Series") -> bool:
    import pandas as pd

    return pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _plain_kind(series: "pd.Series") -> "columns.Kind":
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return columns.Kind.BOOLEAN
    if pd.api.types.is_numeric_dtype(series.dtype):
        return columns.Kind.NUMERIC
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return columns.Kind.DATETIME
    return columns.Kind.CATEGORICAL


def _date_part(dt: "pd.Series", part: str) -> "pd.Series":
    return getattr(dt.dt, part).astype("float64")


def _fit_datetime(dt: "pd.Series", features: str, parts: list[str], reference: str | None):
    """``(spec, {output name: raw float values}, note)``; parts constant in training are dropped."""
    import pandas as pd

    col = dt.name
    if features == columns.DatetimeFeatures.AGE_DAYS:
        ref = pd.Timestamp(str(reference)) if reference is not None else dt.max()
        if ref is pd.NaT or ref != ref:
            return {}, {}, "no parsable dates in training"
        if ref.tzinfo is not None:
            ref = ref.tz_convert("UTC").tz_localize(None)
        spec = {"features": "age_days", "parts": [], "reference": ref.isoformat()}
        return spec, {f"{col}__age_days": _age_days(dt, ref)}, ""
    kept, dropped = [], []
    derived = {}
    for part in parts:
        values = _date_part(dt, part)
        if values.nunique(dropna=True) <= 1:
            dropped.append(part)
            continue
        kept.append(part)
        derived[f"{col}__{part}"] = values
    note = f"constant in training: {', '.join(dropped)}" if dropped else ""
    return {"features": "parts", "parts": kept, "reference": None}, derived, note


def _age_days(dt: "pd.Series", ref) -> "pd.Series":
    return ((ref - dt).dt.total_seconds() / 86400.0).astype("float64")


def _fit_encoded(text: "pd.Series", counts: "pd.Series", how: str, target: "pd.DataFrame | None", col: str,
                 smoothing: float = 10.0) -> dict:
    """Frequency or (smoothed) target encoding: ``{"encoding", "outputs": {name: {level: value}},
    "default": {name: value}}``; unseen and missing levels get the default."""
    if how == columns.HighCardinality.FREQUENCY:
        total = float(counts.sum()) or 1.0
        name = f"{col}__freq"
        return {"encoding": "frequency", "outputs": {name: {str(k): float(v) / total for k, v in counts.items()}},
                "default": {name: 0.0}}
    if target is None or not len(target.columns):
        raise MBTInputError(f"target encoding of {col!r} needs the label",
                            field=f"{columns.PRE}.high_cardinality.encode",
                            hint="use frequency or top_k")
    outputs, default = {}, {}
    single = len(target.columns) == 1
    for t in target.columns:
        y = target[t].astype("float64").to_numpy()
        prior = float(y.mean()) if len(y) else 0.0
        frame = __import__("pandas").DataFrame({"k": text.to_numpy(), "y": y}).dropna(subset=["k"])
        stats = frame.groupby("k")["y"].agg(["sum", "count"])
        values = (stats["sum"] + smoothing * prior) / (stats["count"] + smoothing)
        name = f"{col}__target" if single else f"{col}__target_{t}"
        outputs[name] = {str(k): float(v) for k, v in values.items()}
        default[name] = prior
    return {"encoding": "target", "outputs": outputs, "default": default, "smoothing": smoothing}


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


def _fit_categorical(values: "pd.Series", impute: str, max_levels: int, counts: "pd.Series | None" = None) -> dict:
    if counts is None:
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
    to ``<col>=__other__`` (or the encoding's default); missing values get the training imputation;
    datetime columns are parsed as in training and give the same derived numbers."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    dates = pre.get("datetime") or {}
    encoded = pre.get("encoded") or {}
    for col, kind in pre["input_columns"].items():
        if col not in df.columns:
            from airflow_mbt.errors import DataContractError

            raise DataContractError(f"column {col!r} is missing", field="input columns",
                                    hint="the scoring data must have the columns used in training")
        if col in dates:
            spec = dates[col]
            dt = columns.as_datetime(df[col])
            if spec["features"] == columns.DatetimeFeatures.AGE_DAYS:
                raw = {f"{col}__age_days": _age_days(dt, pd.Timestamp(spec["reference"]))}
            else:
                raw = {f"{col}__{part}": _date_part(dt, part) for part in spec["parts"]}
            for name, x in raw.items():
                num = pre["numeric"][name]
                if num["impute"] is not None:
                    x = x.fillna(num["impute"])
                out[name] = (x - num["center"]) / num["scale"]
        elif kind in NUMERIC_KINDS:
            spec = pre["numeric"][col]
            x = _as_float(df[col])
            if spec["impute"] is not None:
                x = x.fillna(spec["impute"])
            out[col] = (x - spec["center"]) / spec["scale"]
        elif col in encoded:
            spec = encoded[col]
            values = _as_text(df[col])
            for name, mapping in spec["outputs"].items():
                table = np.array([*mapping.values(), spec["default"][name]], dtype="float64")
                out[name] = table[pd.Index(list(mapping)).get_indexer(values.to_numpy())]  # -1 -> the default
        else:
            spec = pre["categorical"][col]
            values = _as_text(df[col])
            if spec["impute"] is not None:
                filled = values.to_numpy(dtype=object, copy=True)
                filled[pd.isna(filled)] = spec["impute"]
                values = pd.Series(filled, index=values.index, dtype=object)
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
    for col in pre.get("missing_indicators") or []:
        out[indicator_name(col)] = df[col].isna().to_numpy().astype("float64")
    result = pd.DataFrame(out, index=df.index)
    return result[pre["output_columns"]]
