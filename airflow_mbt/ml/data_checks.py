"""Data checks no imputation can fix, as input errors that name the column and the row count.

- ``non_finite``: ``+inf``/``-inf`` in a numeric column. Imputing replaces missing values, not
  infinities, so training would fail deep inside the estimator with no column name.
  ``training.preprocessing.non_finite`` decides: ``error`` (default) fails with the columns and
  counts; ``drop`` drops those training rows (counted in the log). Serving never drops rows (every
  scoring row gets a prediction), so infinities there are always an error.
- ``single_class``: a classification label with one distinct value cannot train a classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mbt.constants import _StrEnum
from airflow_mbt.errors import DataContractError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.preprocessing.non_finite"


class NonFinite(_StrEnum):
    ERROR = "error"
    DROP = "drop"


def non_finite_counts(df: pd.DataFrame, skip: set[str]) -> dict[str, int]:
    """Column -> number of rows holding +inf or -inf (numeric columns only)."""
    import numpy as np
    import pandas as pd

    out: dict[str, int] = {}
    for col in df.columns:
        if col in skip or not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            continue
        n = int(np.isinf(df[col].to_numpy(dtype="float64", na_value=np.nan)).sum())
        if n:
            out[str(col)] = n
    return out


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{col!r} ({n} row{'s' if n != 1 else ''})" for col, n in counts.items())


def handle_non_finite(df: pd.DataFrame, mode: Any, skip: set[str], log: Any) -> pd.DataFrame:
    """Training: ``df`` without infinite values (``drop``), or a ``DataContractError`` (``error``)."""
    counts = non_finite_counts(df, skip)
    if not counts:
        return df
    if NonFinite(mode or NonFinite.ERROR) == NonFinite.DROP:
        import numpy as np

        bad = np.zeros(len(df), dtype=bool)
        for col in counts:
            bad |= np.isinf(df[col].to_numpy(dtype="float64", na_value=np.nan))
        log.warning("dropped %d training rows with infinite values in %s", int(bad.sum()), _describe(counts))
        return df.loc[~bad].reset_index(drop=True)
    raise DataContractError(f"infinite values in {_describe(counts)}", field=FIELD,
                            hint="imputation does not replace inf: fix the data, or set "
                                 "training.preprocessing.non_finite: drop to drop those rows")


def reject_non_finite(df: pd.DataFrame, skip: set[str], source: str) -> None:
    """Serving: infinite values are an error (rows are never dropped from scoring)."""
    counts = non_finite_counts(df, skip)
    if counts:
        raise DataContractError(f"{source}: infinite values in {_describe(counts)}", field=FIELD,
                                hint="every scoring row gets a prediction, so serving cannot drop them: "
                                     "fix the scoring data (e.g. NULL instead of inf)")


def reject_single_class(labels: pd.Series, label_column: str) -> None:
    values = labels.dropna().unique()
    if len(values) < 2:
        shown = repr(values[0].item() if hasattr(values[0], "item") else values[0]) if len(values) else "no value"
        raise DataContractError(f"the label column {label_column!r} has {shown} in every row: a classifier "
                                "needs at least two classes", field="training.schema.target.label_column",
                                hint="check the label table (or its where/filters), or use problem_type: "
                                     "regression for a numeric target")
