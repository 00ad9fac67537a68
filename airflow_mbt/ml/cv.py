"""``training.split.cv: {folds: k}``: k-fold evaluation metrics on the training set.

Contract: ``cross_validate(train_set, y, folds=, seed=, problem_type=, classes=, positive_class=,
fit_and_score=, time_ordered=)`` -> ``{"folds": k, "splitter": name, "metrics": {name: {"mean",
"std", "values"}}}``. Each fold fits the preprocessing and the model on the other folds only
(``fit_and_score(train_rows, y_train, held_out_rows) -> scored frame``) and computes every metric
of the problem type on the held-out fold. Classification folds are stratified when every class
has ``k`` rows; ``time_ordered`` (``split.method: time``) uses forward-chaining folds, so no
fold is scored by a model that saw later rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from airflow_mbt.errors import DataContractError
from airflow_mbt.ml import metrics as m

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.split.cv.folds"


def splitter(y: "pd.Series", folds: int, seed: int, classification: bool, time_ordered: bool):
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    if len(y) < 2 * folds:
        raise DataContractError(f"{len(y)} training rows are too few for {folds} folds", field=FIELD,
                                hint="use fewer folds or more data")
    if time_ordered:
        return TimeSeriesSplit(n_splits=folds)
    if classification and y.value_counts().min() >= folds:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def cross_validate(train: "pd.DataFrame", y: "pd.Series", *, folds: int, seed: int, problem_type: str,
                   classes: list[Any] | None, positive_class: Any,
                   fit_and_score: Callable[["pd.DataFrame", "pd.Series", "pd.DataFrame"], "pd.DataFrame"],
                   time_ordered: bool = False) -> dict:
    import numpy as np

    split = splitter(y, folds, seed, problem_type != "regression", time_ordered)
    per_metric: dict[str, list[float | None]] = {k: [] for k in m.METRICS[problem_type]}
    for fit_idx, held_idx in split.split(train, y if problem_type != "regression" else None):
        scored = fit_and_score(train.iloc[fit_idx].reset_index(drop=True), y.iloc[fit_idx].reset_index(drop=True),
                               train.iloc[held_idx].reset_index(drop=True))
        values = m.compute(problem_type, y.iloc[held_idx].reset_index(drop=True), scored, classes=classes,
                           positive_class=positive_class)
        for k, v in values.items():
            per_metric[k].append(v)
    out = {}
    for k, vals in per_metric.items():
        present = [v for v in vals if v is not None and not math.isnan(v)]
        out[k] = {"mean": float(np.mean(present)) if present else None,
                  "std": float(np.std(present)) if present else None, "values": vals}
    return {"folds": folds, "splitter": type(split).__name__, "metrics": out}


def as_metrics(cv: dict | None) -> dict[str, float]:
    """``cv_<metric>_mean`` / ``cv_<metric>_std`` for MLflow (absent values left out)."""
    out = {}
    for k, v in ((cv or {}).get("metrics") or {}).items():
        for stat in ("mean", "std"):
            if v.get(stat) is not None:
                out[f"cv_{k}_{stat}"] = v[stat]
    return out
