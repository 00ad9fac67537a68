"""The column plan: every training column gets a role and a kind, decided once at training.

Contract: ``resolve(df, settings) -> list[dict]`` returns one entry per column of ``df`` (plus the
declared ignored columns, which ``split_data`` already dropped) with ``column``, ``role``
(:class:`Role`), ``kind`` (:class:`Kind`), ``treatment`` (what the preprocessing does with it),
``note`` (why, when the decision is not obvious), ``missing_share`` and ``levels`` (distinct
values of text columns). ``preprocessing.fit`` acts on it; the plan is stored in
``preprocessor.json`` under ``columns`` and serving replays the preprocessor, never re-decides.

Rules (docs/columns.md):
- the label, the primary key, declared ``id_columns``, ``ignored_columns`` and the split's time
  column are never features; integer columns named ``id`` or ``*_id`` are ids too;
- datetime columns (datetime dtypes, date objects, ISO-8601 text as CSV gives it) become derived
  numbers (``parts`` or ``age_days``) or are excluded, never one-hot encoded;
- text columns with more distinct values than ``max_levels`` are high-cardinality ``text``;
- a column that is entirely missing in training is excluded.

``check_references`` validates every column named in the pipeline against the data (did you
mean ...) and that the primary key is unique: both raise ``DataContractError`` (exit 2).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from airflow_mbt.constants import _StrEnum
from airflow_mbt.errors import DataContractError, MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class Role(_StrEnum):
    FEATURE = "feature"
    ID = "id"
    LABEL = "label"
    IGNORED = "ignored"
    TIME = "time"


class Kind(_StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"  # high-cardinality text
    UNKNOWN = "-"  # a declared ignored column that split_data already dropped


class DatetimeFeatures(_StrEnum):
    PARTS = "parts"
    AGE_DAYS = "age_days"
    EXCLUDE = "exclude"


class HighCardinality(_StrEnum):
    TOP_K = "top_k"
    FREQUENCY = "frequency"
    TARGET = "target"


DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "dayofweek", "hour")
DEFAULT_MAX_LEVELS = 50
DEFAULT_MISSING_THRESHOLD = 0.05
KIND_OVERRIDES: tuple[str, ...] = ("numeric", "categorical", "datetime", "exclude")
ID_NAME = re.compile(r"(^id$|_id$)", re.IGNORECASE)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
PRE = "training.preprocessing"


@dataclass
class ColumnSettings:
    """Everything the plan depends on, from ``training.schema``, ``training.split`` and
    ``training.preprocessing``."""

    label_column: str | None = None
    id_column: str | None = None
    id_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    time_column: str | None = None
    kinds: dict[str, str] = field(default_factory=dict)
    datetime_features: str = DatetimeFeatures.PARTS
    datetime_parts: list[str] = field(default_factory=lambda: list(DATETIME_PARTS))
    datetime_reference: str | None = None
    max_levels: int = DEFAULT_MAX_LEVELS
    high_cardinality: str = HighCardinality.TOP_K
    missing_indicator_threshold: float | None = DEFAULT_MISSING_THRESHOLD


def settings_from_config(config: dict) -> dict:
    """The plan options of ``training.preprocessing`` (defaults filled), as ``fit`` keywords."""
    pre = ((config.get("training") or {}).get("preprocessing")) or {}
    dt = pre.get("datetime") or {}
    hc = pre.get("high_cardinality") or {}
    out = {
        "kinds": dict(pre.get("column_kinds") or {}),
        "datetime_features": dt.get("features", DatetimeFeatures.PARTS.value),
        "datetime_parts": list(dt.get("parts") or DATETIME_PARTS),
        "datetime_reference": dt.get("reference"),
        "max_levels": hc.get("max_levels", DEFAULT_MAX_LEVELS),
        "high_cardinality": hc.get("encode", HighCardinality.TOP_K.value),
        "missing_indicator_threshold": pre.get("missing_indicator_threshold", DEFAULT_MISSING_THRESHOLD),
    }
    if out["datetime_features"] not in DatetimeFeatures.values():
        raise MBTInputError(f"unknown value {out['datetime_features']!r}", field=f"{PRE}.datetime.features",
                            hint=f"use one of: {', '.join(DatetimeFeatures.values())}")
    for i, part in enumerate(out["datetime_parts"]):
        if part not in DATETIME_PARTS:
            raise MBTInputError(f"unknown date part {part!r}", field=f"{PRE}.datetime.parts[{i}]",
                                hint=f"use some of: {', '.join(DATETIME_PARTS)}")
    if out["high_cardinality"] not in HighCardinality.values():
        raise MBTInputError(f"unknown value {out['high_cardinality']!r}", field=f"{PRE}.high_cardinality.encode",
                            hint=f"use one of: {', '.join(HighCardinality.values())}")
    if not isinstance(out["max_levels"], int) or isinstance(out["max_levels"], bool) or out["max_levels"] < 1:
        raise MBTInputError(f"max_levels must be a positive integer, got {out['max_levels']!r}",
                            field=f"{PRE}.high_cardinality.max_levels", hint="e.g. 50")
    t = out["missing_indicator_threshold"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1):
        raise MBTInputError(f"missing_indicator_threshold must be a share in [0, 1) or null, got {t!r}",
                            field=f"{PRE}.missing_indicator_threshold", hint="e.g. 0.05 (null: no indicators)")
    for col, kind in out["kinds"].items():
        if kind not in KIND_OVERRIDES:
            raise MBTInputError(f"unknown column kind {kind!r} for {col!r}", field=f"{PRE}.column_kinds.{col}",
                                hint=f"use one of: {', '.join(KIND_OVERRIDES)}")
    if out["datetime_reference"] is not None:
        import pandas as pd

        try:
            pd.Timestamp(str(out["datetime_reference"]))
        except ValueError:
            raise MBTInputError(f"cannot parse the date {out['datetime_reference']!r}",
                                field=f"{PRE}.datetime.reference",
                                hint="write an ISO date such as 2024-06-30") from None
    return out


def did_you_mean(name: str, columns: Iterable[str]) -> str:
    cols = [str(c) for c in columns]
    close = difflib.get_close_matches(str(name), cols, n=2, cutoff=0.6)
    head = ("did you mean " + " or ".join(repr(c) for c in close) + "? ") if close else ""
    shown = ", ".join(cols[:30]) + (" ..." if len(cols) > 30 else "")
    return f"{head}columns: {shown}"


def references(config: dict) -> list[tuple[str, str]]:
    """``(field, column)`` for every column the pipeline names (label and primary key first)."""
    training = config.get("training") or {}
    schema = training.get("schema") or {}
    ident = schema.get("identifiers") or {}
    refs = [("training.schema.target.label_column", (schema.get("target") or {}).get("label_column")),
            ("training.schema.identifiers.primary_key", ident.get("primary_key"))]
    refs += [(f"training.schema.identifiers.id_columns[{i}]", c) for i, c in enumerate(ident.get("id_columns") or [])]
    refs += [(f"training.schema.ignored_columns[{i}]", c) for i, c in enumerate(schema.get("ignored_columns") or [])]
    refs.append(("training.split.time_column", (training.get("split") or {}).get("time_column")))
    pre = training.get("preprocessing") or {}
    refs += [(f"{PRE}.column_kinds.{c}", c) for c in (pre.get("column_kinds") or {})]
    return [(f, c) for f, c in refs if c]


def check_references(df: "pd.DataFrame", config: dict, log: Any = None) -> None:
    """Every named column exists (one error naming the field and the closest column), and the
    primary key is unique and never missing. An ``ignored_columns`` entry absent from the training
    data is an error only when it looks like a typo of a column that is there (``merchnt`` for
    ``merchant``); otherwise it names a column that only the scoring data has (a snapshot date,
    say) and is logged as a warning."""
    for where, column in references(config):
        if column not in df.columns:
            close = difflib.get_close_matches(str(column), [str(c) for c in df.columns], n=1, cutoff=0.6)
            if where.startswith("training.schema.ignored_columns") and not close:
                if log is not None:
                    log.warning("%s: column %r is not in the training data (ignored when scoring data has it)",
                                where, column)
                continue
            raise DataContractError(f"column {column!r} is not in the data", field=where,
                                    hint=did_you_mean(column, df.columns))
    key = ((config.get("training") or {}).get("schema") or {}).get("identifiers", {}).get("primary_key")
    if key:
        ids = df[key]
        missing = int(ids.isna().sum())
        present = ids[ids.notna()]
        dup_mask = present.duplicated(keep=False)
        dup = int(dup_mask.sum())
        if dup > 0:
            example = present[dup_mask].iloc[0]
            raise DataContractError(f"primary key column {key!r} is not unique: {dup} of {len(ids)} rows share "
                                    f"a value (e.g. {example!r})", field="training.schema.identifiers.primary_key",
                                    hint="deduplicate the label table, or name the column that identifies a row")
        if missing:
            raise DataContractError(f"primary key column {key!r} is missing in {missing} of {len(ids)} rows",
                                    field="training.schema.identifiers.primary_key",
                                    hint="every row needs an identifier")


def is_datetime_like(series: "pd.Series") -> bool:
    """Datetime dtype, date/datetime objects, or text that is all ISO-8601 dates (a CSV column)."""
    import datetime as _dt

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
        return False
    sample = series.head(5000).dropna().head(1000)
    if not len(sample):
        sample = series.dropna().head(1000)
    if not len(sample):
        return False
    if all(isinstance(v, (_dt.date, _dt.datetime)) for v in sample):
        return True
    return all(isinstance(v, str) and _ISO.match(v.strip()) for v in sample)


def as_datetime(series: "pd.Series") -> "pd.Series":
    """Naive UTC ``datetime64[ns]``; unparsable values become ``NaT``. The same for every source:
    a Parquet/PostgreSQL timestamp (tz-aware or not), date objects, ISO text from a CSV."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = series
        if getattr(series.dtype, "tz", None) is not None:
            out = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[ns]")
    values = series.astype(object)
    if any(hasattr(v, "isoformat") for v in values.dropna().head(1000)):  # date objects (PostgreSQL date)
        values = values.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
    out = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def infer_kind(series: "pd.Series", *, max_levels: int, n_levels: int | None) -> Kind:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return Kind.BOOLEAN
    if pd.api.types.is_numeric_dtype(dtype):
        return Kind.NUMERIC
    if is_datetime_like(series):
        return Kind.DATETIME
    non_null = series.head(5000).dropna()
    if len(non_null) and all(isinstance(v, bool) for v in non_null.head(1000)):
        return Kind.BOOLEAN
    return Kind.TEXT if (n_levels or 0) > max_levels else Kind.CATEGORICAL


def entry(column: str, role: Role, kind: Kind, treatment: str = "", note: str = "",
          missing_share: float | None = None, levels: int | None = None) -> dict[str, Any]:
    """One plan row; ``missing_share`` is ``None`` for columns that are not feature candidates."""
    return {"column": column, "role": str(role), "kind": str(kind), "treatment": treatment, "note": note,
            "missing_share": None if missing_share is None else round(float(missing_share), 6), "levels": levels}


def format_table(plan: list[dict]) -> str:
    """The plan as a short fixed-width table (printed by ``train_model``)."""
    header = ("column", "role", "kind", "missing", "treatment", "note")
    rows = [(p["column"], p["role"], p["kind"],
             "-" if p["missing_share"] is None else f"{100 * p['missing_share']:.1f}%", p["treatment"], p["note"])
            for p in plan]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_params(plan: list[dict]) -> dict[str, str]:
    """MLflow params ``column.<name>`` = ``role/kind/treatment`` (keys sanitized for MLflow)."""
    out = {}
    for p in plan:
        key = "column." + re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(p["column"]))
        out[key] = "/".join(x for x in (p["role"], p["kind"], p["treatment"]) if x)[:500]
    return out
