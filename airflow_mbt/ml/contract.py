"""The feature contract: a scoring frame must have the columns (and kinds) the preprocessor was
fitted on (datetime columns must parse as dates). The id, label, ignored and excluded columns of
the column plan may be present. All problems (missing, unexpected, wrongly typed columns) are reported in ONE
``DataContractError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mbt.errors import DataContractError
from airflow_mbt.ml.preprocessing import NUMERIC_KINDS, column_kind

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _bad_numeric_values(series: "pd.Series") -> list:
    import pandas as pd

    present = series.dropna()
    if column_kind(present) in NUMERIC_KINDS:
        return []
    converted = pd.to_numeric(present.map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce")
    return present[converted.isna()].head(3).tolist()


def _bad_datetime_values(series: "pd.Series") -> list:
    from airflow_mbt.ml.columns import as_datetime

    present = series.dropna()
    return present[as_datetime(present).isna().to_numpy()].head(3).tolist()


def problems(df: "pd.DataFrame", pre: dict, *, require_id: bool = True) -> list[str]:
    """Human-readable contract violations (empty when the frame conforms)."""
    expected = pre["input_columns"]
    id_col, label = pre.get("id_column"), pre.get("label_column")
    allowed_extra = {id_col, label, *(pre.get("ignored_columns") or []), *(pre.get("excluded_columns") or [])}
    present = list(df.columns)
    missing = [c for c in expected if c not in df.columns]
    if require_id and id_col and id_col not in df.columns:
        missing.append(id_col)
    extra = [c for c in present if c not in expected and c not in allowed_extra]
    wrong = []
    for col, kind in expected.items():
        if col not in df.columns:
            continue
        series = df[col]
        if series.isna().all():
            continue
        if kind in NUMERIC_KINDS:
            bad = _bad_numeric_values(series)
            if bad:
                wrong.append(f"{col} (expected {kind}, got text such as {', '.join(repr(v) for v in bad)})")
        elif kind == "datetime":
            bad = _bad_datetime_values(series)
            if bad:
                wrong.append(f"{col} (expected dates, got {', '.join(repr(v) for v in bad)})")
        elif column_kind(series.dropna()) in ("integer", "float") and kind == "string":
            wrong.append(f"{col} (expected text categories, got numbers {column_kind(series)})")
    out = []
    if missing:
        out.append("missing columns: " + ", ".join(missing))
    if extra:
        out.append("unexpected columns: " + ", ".join(extra))
    if wrong:
        out.append("wrong types: " + "; ".join(wrong))
    return out


def check(df: "pd.DataFrame", pre: dict, *, source: str = "scoring data", require_id: bool = True) -> None:
    """Raise one ``DataContractError`` listing every violation of the training contract."""
    found = problems(df, pre, require_id=require_id)
    if found:
        hints = []
        if any(p.startswith("unexpected") for p in found):
            hints.append("the model was trained without the unexpected columns: select only the model's columns "
                         "with serving.data_source.query (SELECT ... FROM the table), or list them in "
                         "training.schema.ignored_columns of the training pipeline and retrain")
        if any(p.startswith("missing") for p in found):
            hints.append("the table must provide every column the model was trained on")
        raise DataContractError(f"{source} does not match the training contract: " + "; ".join(found),
                                field="serving.data_source", hint="; ".join(hints) or None)
