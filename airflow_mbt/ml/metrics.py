"""Evaluation metrics per problem type (sklearn.metrics), computed on the held-out test set.

A metric that cannot be computed (e.g. ROC AUC when the test set has one class, or a
probability metric for a model without probabilities) is reported as ``None``. Multiclass
``roc_auc_ovr`` is the macro average of the one-vs-rest ROC AUCs (``None`` unless every class
occurs in the test set).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from airflow_mbt.constants import DEFAULT_PRIMARY, METRICS, proba_column  # noqa: F401 - one list for all

LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mape"}
NEEDS_PROBA = {"roc_auc", "log_loss", "pr_auc"}


def _safe(fn, *args, **kwargs) -> float | None:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined metrics come back as None instead
            value = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return None if math.isnan(value) else value


def compute(problem_type: str, y_true: "pd.Series", pred: "pd.DataFrame", *, classes: list | None = None,
            positive_class: Any = None) -> dict[str, float | None]:
    """All metrics of ``problem_type``. ``pred`` is the framework's prediction frame: ``prediction``
    and, for classification, ``proba_<class>`` columns; its predictions are already mapped onto
    the declared classes."""
    import numpy as np
    from sklearn import metrics as m

    if problem_type == "regression":
        yt = np.asarray(y_true, dtype="float64")
        yp = np.asarray(pred["prediction"], dtype="float64")
        return {
            "rmse": _safe(lambda: math.sqrt(m.mean_squared_error(yt, yp))),
            "mae": _safe(m.mean_absolute_error, yt, yp),
            "r2": _safe(m.r2_score, yt, yp),
            "mape": _safe(m.mean_absolute_percentage_error, yt, yp),
        }
    classes = list(classes or [])
    index = {str(c): i for i, c in enumerate(classes)}
    yt = np.array([index[str(v)] for v in y_true])
    yp = np.array([index.get(str(v), -1) for v in pred["prediction"]])
    cols = [proba_column(c) for c in classes]
    proba = pred[cols].to_numpy(dtype="float64") if all(c in pred.columns for c in cols) else None
    if proba is not None:
        proba = np.clip(proba, 1e-15, 1.0)
        proba = proba / proba.sum(axis=1, keepdims=True)
    labels = list(range(len(classes)))
    out: dict[str, float | None] = {"accuracy": _safe(m.accuracy_score, yt, yp)}
    if problem_type == "binary_classification":
        pos = index[str(positive_class if positive_class is not None else classes[-1])]
        yt_bin, yp_bin = (yt == pos).astype(int), (yp == pos).astype(int)
        out.update({
            "f1": _safe(m.f1_score, yt_bin, yp_bin, zero_division=0),
            "precision": _safe(m.precision_score, yt_bin, yp_bin, zero_division=0),
            "recall": _safe(m.recall_score, yt_bin, yp_bin, zero_division=0),
            "roc_auc": None, "pr_auc": None, "log_loss": None,
        })
        if proba is not None:
            score = proba[:, pos]
            out["roc_auc"] = _safe(m.roc_auc_score, yt_bin, score)
            out["pr_auc"] = _safe(m.average_precision_score, yt_bin, score)
            out["log_loss"] = _safe(m.log_loss, yt, proba, labels=labels)
    else:
        for avg in ("macro", "weighted"):
            out[f"f1_{avg}"] = _safe(m.f1_score, yt, yp, average=avg, labels=labels, zero_division=0)
        out["precision_macro"] = _safe(m.precision_score, yt, yp, average="macro", labels=labels, zero_division=0)
        out["recall_macro"] = _safe(m.recall_score, yt, yp, average="macro", labels=labels, zero_division=0)
        out["log_loss"] = _safe(m.log_loss, yt, proba, labels=labels) if proba is not None else None
        out["roc_auc_ovr"] = (_safe(m.roc_auc_score, yt, proba, multi_class="ovr", average="macro", labels=labels)
                              if proba is not None and len(set(yt)) == len(labels) else None)
    return {k: out.get(k) for k in METRICS[problem_type]}
