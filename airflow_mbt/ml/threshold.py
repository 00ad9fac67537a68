"""The binary decision threshold (``training.evaluation.threshold``).

Contract: ``settings(config)`` -> ``None`` (argmax of the framework, as before), a fixed float, or
a ``Rule`` (``choose: "precision >= 0.9"`` with a ``validation_size``). ``choose(rule, y, p)``
returns ``(threshold, note)`` from validation labels and positive-class probabilities: among the
thresholds that meet the rule, the one with the best F1 (ties: the lowest); when none meets it,
the one that comes closest, with a note saying so. The threshold is stored in ``mbt_model.json``
and ``scoring.score`` applies it (evaluation, serving and the MLflow pyfunc alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mbt.constants import parse_criterion
from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml.criteria import OPS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

FIELD = "training.evaluation.threshold"
RULE_METRICS = ("precision", "recall", "f1", "accuracy")


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str
    value: float
    validation_size: float = 0.2

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def settings(config: dict) -> float | Rule | None:
    training = config.get("training") or {}
    raw = (training.get("evaluation") or {}).get("threshold")
    if raw is None:
        return None
    problem = (config.get("project") or {}).get("problem_type")
    if problem != "binary_classification":
        raise MBTInputError(f"a decision threshold needs binary_classification, not {problem}", field=FIELD,
                            hint="remove evaluation.threshold")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not 0 <= raw <= 1:
            raise MBTInputError(f"threshold must be between 0 and 1, got {raw}", field=FIELD, hint="e.g. 0.35")
        return float(raw)
    parsed = parse_criterion((raw or {}).get("choose")) if isinstance(raw, dict) else None
    if parsed is None or parsed[0] not in RULE_METRICS or parsed[1] not in (">=", ">"):
        raise MBTInputError(f"cannot use threshold {raw!r}",
                            field=f"{FIELD}.choose" if isinstance(raw, dict) else FIELD,
                            hint=f'a number, or {{choose: "precision >= 0.9"}} with one of {", ".join(RULE_METRICS)}')
    size = float(raw.get("validation_size", 0.2))
    if not 0 < size < 1:
        raise MBTInputError(f"validation_size must be a fraction, got {size}", field=f"{FIELD}.validation_size",
                            hint="e.g. 0.2")
    return Rule(parsed[0], parsed[1], parsed[2], size)


def _scores(y: "np.ndarray", pred: "np.ndarray") -> dict[str, float]:
    tp = float((pred & y).sum())
    fp = float((pred & ~y).sum())
    fn = float((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": float((pred == y).mean())}


def choose(rule: Rule, y_positive, proba) -> tuple[float, str]:
    """The threshold for ``rule`` on validation data (see the module docstring)."""
    import numpy as np

    y = np.asarray(y_positive, dtype=bool)
    p = np.asarray(proba, dtype="float64")
    candidates = np.unique(np.concatenate([p, [0.5]]))
    best, best_key, closest, closest_val = None, None, 0.5, -np.inf
    for t in candidates:
        s = _scores(y, p >= t)
        if OPS[rule.op](s[rule.metric], rule.value):
            key = (s["f1"], -t)
            if best_key is None or key > best_key:
                best, best_key = float(t), key
        elif s[rule.metric] > closest_val:
            closest, closest_val = float(t), s[rule.metric]
    if best is not None:
        return best, f"{rule} met on {len(y)} validation rows"
    return closest, f"{rule} not reachable on {len(y)} validation rows: best {rule.metric} {closest_val:.4f}"
