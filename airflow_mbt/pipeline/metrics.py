"""Metric names per problem type and the ``validation_criteria`` grammar
(``<metric> <op> <number>``, op in >=, >, <=, <, ==)."""

from __future__ import annotations

import re

METRICS = {
    "binary_classification": ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"),
    "multiclass_classification": ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro",
                                  "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
DEFAULT_PRIMARY = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro",
                   "regression": "rmse"}
OPERATORS = (">=", "<=", "==", ">", "<")
_CRITERION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_criterion(text: str) -> tuple[str, str, float] | None:
    """``"roc_auc >= 0.7"`` -> ``("roc_auc", ">=", 0.7)``; ``None`` when malformed."""
    m = _CRITERION.match(text) if isinstance(text, str) else None
    return (m.group(1), m.group(2), float(m.group(3))) if m else None
