"""Reference statistics at training and drift (PSI, category shares, predictions) at serving.

Pure numpy/pandas, no I/O. The contract (details and formulas in docs/monitoring.md):

- ``reference_features(train, preprocessor)`` -> ``{column: spec}`` for every numeric and text
  feature of the preprocessor's ``input_columns`` (datetime columns are not monitored), learnt on
  the training split. A numeric spec is ``{"kind": "numeric", "edges": [...], "shares": [...]}``:
  up to ``BINS - 1`` interior quantile edges (deciles by default, duplicates removed) giving
  ``len(edges) + 1`` value bins ``(-inf, e1], (e1, e2], ..., (ek, +inf)`` plus one missing bin
  (NaN); ``shares`` has ``len(edges) + 2`` entries summing to 1. A categorical spec is ``{"kind":
  "categorical", "levels": [...], "shares": [...]}``: the ``MAX_LEVELS`` most frequent categories,
  then an ``other`` bucket (every other or unseen value) and a missing bucket.
- ``reference_predictions(predictions)`` -> the same specs for the predictions table of the test
  set (float columns numeric, ``prediction`` of a classifier categorical over its classes).
- ``Accumulator(specs)``: ``add(frame)`` per chunk counts values into the reference bins (memory
  independent of the rows); ``results()`` computes, at the end, one ``FeatureDrift`` per feature:
  ``psi`` (population stability index over the bins, shares clipped at ``EPSILON``),
  ``share_shift`` (total variation distance: half the sum of absolute share differences) and
  ``missing_share`` (of the scored rows).
- ``as_numeric`` / ``as_text``: the one conversion of a column, used at training and at serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

VERSION = 1
REFERENCE_FILE = "reference_stats.json"  # inside the model directory (logged with the model)
BINS = 10
MAX_LEVELS = 20
EPSILON = 1e-4
NUMERIC, CATEGORICAL = "numeric", "categorical"
NUMERIC_KINDS = ("integer", "float", "boolean")  # preprocessor input_columns kinds binned as numbers
METRICS = ("psi", "share_shift", "missing_share")


def as_numeric(series: "pd.Series") -> "np.ndarray":
    """float64 values (booleans 0/1, unparsable text and missing values NaN)."""
    import pandas as pd

    if series.dtype == object:
        series = series.map(lambda v: float(v) if isinstance(v, bool) else v)
    values: np.ndarray = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()
    return values


def as_text(series: "pd.Series") -> "pd.Series":
    """Values as strings (missing stays missing), so training and serving compare equal text."""
    out = series.astype(object)
    mask = out.isna()
    return out.where(mask, out.astype(str))


def numeric_edges(values: "np.ndarray", bins: int = BINS) -> list[float]:
    """Interior quantile edges of the finite ``values`` (at most ``bins - 1``, strictly increasing)."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0 or bins < 2:
        return []
    qs = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return [float(v) for v in np.unique(qs)]


def numeric_counts(values: "np.ndarray", edges: list[float]) -> "np.ndarray":
    """Counts per bin: ``len(edges) + 1`` value bins (right-closed, the outer ones open-ended, so
    +-inf land in them) then the missing (NaN) bin."""
    import numpy as np

    values = np.asarray(values, dtype="float64")
    # NaN sorts after +inf, so searchsorted puts it in the last value bin: move those to missing
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype("int64")
    missing = np.int64(np.count_nonzero(np.isnan(values)))
    counts[-1] -= missing
    return np.append(counts, missing)


def category_levels(text: "pd.Series", max_levels: int = MAX_LEVELS) -> list[str]:
    """The ``max_levels`` most frequent non-missing values (ties by value, deterministic)."""
    counts = text.dropna().value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return [str(k) for k, _ in ordered[:max_levels]]


def category_counts(values: "pd.Series", levels: list[str]) -> "np.ndarray":
    """Counts per level, then the ``other`` bucket (values not among the levels), then missing.
    Values compare as their text (``7`` counts as ``"7"``); each distinct value is converted once."""
    import numpy as np
    import pandas as pd

    inverse, uniques = pd.factorize(values, use_na_sentinel=True)
    missing = inverse < 0
    level_of = np.asarray(pd.Categorical([str(u) for u in uniques], categories=levels).codes, dtype="int64")
    codes = level_of[inverse[~missing]] if len(uniques) else np.zeros(0, dtype="int64")
    counts = np.bincount(codes[codes >= 0], minlength=len(levels)).astype("int64")
    return np.append(counts, [np.int64((codes < 0).sum()), np.int64(missing.sum())])


def shares(counts: "np.ndarray") -> "np.ndarray":
    import numpy as np

    total = counts.sum()
    return counts / total if total else np.zeros(len(counts), dtype="float64")


def psi(expected: "np.ndarray | list[float]", actual: "np.ndarray | list[float]", epsilon: float = EPSILON) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` over the bins, both share vectors
    clipped below at ``epsilon`` (an empty bin contributes a bounded amount; every term is >= 0)."""
    import numpy as np

    e = np.clip(np.asarray(expected, dtype="float64"), epsilon, None)
    a = np.clip(np.asarray(actual, dtype="float64"), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def share_shift(expected: "np.ndarray | list[float]", actual: "np.ndarray | list[float]") -> float:
    """Total variation distance: half the sum of absolute share differences (0 = same, 1 = disjoint)."""
    import numpy as np

    return float(0.5 * np.abs(np.asarray(actual, dtype="float64") - np.asarray(expected, dtype="float64")).sum())


def numeric_spec(values: "np.ndarray", bins: int = BINS) -> dict[str, Any]:
    edges = numeric_edges(values, bins)
    return {"kind": NUMERIC, "edges": edges, "shares": _rounded(shares(numeric_counts(values, edges)))}


def categorical_spec(text: "pd.Series", max_levels: int = MAX_LEVELS,
                     levels: list[str] | None = None) -> dict[str, Any]:
    levels = category_levels(text, max_levels) if levels is None else levels
    return {"kind": CATEGORICAL, "levels": levels, "shares": _rounded(shares(category_counts(text, levels)))}


def _rounded(values: "np.ndarray") -> list[float]:
    return [round(float(v), 10) for v in values]


def reference_features(train: "pd.DataFrame", preprocessor: dict[str, Any], bins: int = BINS,
                       max_levels: int = MAX_LEVELS) -> dict[str, dict[str, Any]]:
    """Reference specs of the training split's feature columns (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    for col, kind in (preprocessor.get("input_columns") or {}).items():
        if col not in train.columns:
            continue
        if kind in NUMERIC_KINDS:
            out[col] = numeric_spec(as_numeric(train[col]), bins)
        elif kind == "string":
            out[col] = categorical_spec(as_text(train[col]), max_levels)
    return out


def reference_predictions(predictions: "pd.DataFrame", classes: list[Any] | None = None,
                          bins: int = BINS) -> dict[str, dict[str, Any]]:
    """Reference specs of a predictions table (the test set's): float columns binned as numbers,
    a classifier's ``prediction`` as category shares over ``classes``."""
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    for col in predictions.columns:
        if col != "prediction" and not str(col).startswith("prediction_probability"):
            continue
        series = predictions[col]
        if col == "prediction" and classes:
            out[col] = categorical_spec(as_text(series), levels=[str(c) for c in classes])
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            out[col] = numeric_spec(as_numeric(series), bins)
        else:
            out[col] = categorical_spec(as_text(series))
    return out


def reference_doc(features: dict[str, dict[str, Any]], predictions: dict[str, dict[str, Any]] | None,
                  train_rows: int, test_rows: int | None) -> dict[str, Any]:
    """The ``reference_stats.json`` document."""
    return {"version": VERSION, "bins": BINS, "epsilon": EPSILON, "train_rows": int(train_rows),
            "test_rows": None if test_rows is None else int(test_rows), "features": features,
            "predictions": predictions or {}}


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    rows: int
    psi: float
    share_shift: float
    missing_share: float

    def metrics(self) -> dict[str, float]:
        return {"psi": self.psi, "share_shift": self.share_shift, "missing_share": self.missing_share}


class Accumulator:
    """Counts of every monitored column in its reference bins, chunk by chunk."""

    def __init__(self, specs: dict[str, dict[str, Any]]):
        import numpy as np

        self.specs = specs
        self.counts = {name: np.zeros(len(spec["shares"]), dtype="int64") for name, spec in specs.items()}
        self.seen: set[str] = set()

    def add(self, frame: "pd.DataFrame") -> None:
        for name, spec in self.specs.items():
            if name not in frame.columns:
                continue
            self.seen.add(name)
            if spec["kind"] == NUMERIC:
                self.counts[name] += numeric_counts(as_numeric(frame[name]), spec["edges"])
            else:  # category_counts compares non-text values as text itself: no per-value str() here
                self.counts[name] += category_counts(frame[name], spec["levels"])

    def results(self) -> list[FeatureDrift]:
        out = []
        for name, spec in self.specs.items():
            if name not in self.seen:
                continue
            counts = self.counts[name]
            actual = shares(counts)
            out.append(FeatureDrift(feature=name, kind=spec["kind"], rows=int(counts.sum()),
                                    psi=psi(spec["shares"], actual), share_shift=share_shift(spec["shares"], actual),
                                    missing_share=float(actual[-1])))
        return out


def accumulate(specs: dict[str, dict[str, Any]], frames: Iterable["pd.DataFrame"]) -> list[FeatureDrift]:
    """``Accumulator(specs)`` fed with every frame; its results."""
    acc = Accumulator(specs)
    for frame in frames:
        acc.add(frame)
    return acc.results()
