"""``evaluation.validation_criteria``: parse ``"<metric> <op> <number>"`` and enforce it.

``parse_all`` is usable at compile time (it raises ``MBTInputError`` naming the list item);
``enforce`` raises ``ValidationCriteriaError`` listing every failed criterion with its threshold and
the actual value.
"""

from __future__ import annotations

import operator

from airflow_mbt.errors import MBTInputError, ValidationCriteriaError
from airflow_mbt.ml.metrics import METRICS
from airflow_mbt.constants import parse_criterion
from airflow_mbt.manifest import Criterion  # the one type: compiled into the manifest, used here

FIELD = "training.evaluation.validation_criteria"
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}




def parse(text: str, problem_type: str | None = None, index: int = 0) -> Criterion:
    where = f"{FIELD}[{index}]"
    parsed = parse_criterion(text)
    if parsed is None:
        raise MBTInputError(f"cannot parse criterion {text!r}", field=where,
                            hint='write "<metric> <op> <number>", e.g. "roc_auc >= 0.7" (op: >=, >, <=, <, ==)')
    metric, op, number = parsed
    if problem_type and metric not in METRICS.get(problem_type, ()):
        raise MBTInputError(f"metric {metric!r} is not computed for {problem_type}", field=where,
                            hint=f"available: {', '.join(METRICS[problem_type])}")
    return Criterion(metric, op, float(number))


def parse_all(items: list[str] | None, problem_type: str | None = None) -> list[Criterion]:
    return [parse(t, problem_type, i) for i, t in enumerate(items or [])]


def evaluate(criteria: list[Criterion], metrics: dict[str, float | None]) -> list[dict]:
    """One result per criterion: ``{"criterion", "metric", "threshold", "actual", "passed"}``."""
    return [{"criterion": str(c), "metric": c.metric, "threshold": c.threshold,
             "actual": metrics.get(c.metric), "passed": c.passes(metrics.get(c.metric))} for c in criteria]


def report(results: list[dict], metrics: dict[str, float | None] | None = None) -> str:
    """Every criterion with its actual value and verdict, then every other metric."""
    def fmt(v: float | None) -> str:
        return "not available" if v is None else format(v, ".4f")

    parts = [f"{r['criterion']} (actual {fmt(r['actual'])}): {'passed' if r['passed'] else 'FAILED'}"
             for r in results]
    judged = {r["metric"] for r in results}
    others = [f"{k}={fmt(v)}" for k, v in (metrics or {}).items() if k not in judged]
    return "; ".join(parts) + (f"; other metrics: {', '.join(others)}" if others else "")


def enforce(results: list[dict], metrics: dict[str, float | None] | None = None, note: str = "") -> None:
    """Raise ``ValidationCriteriaError`` (exit 3) when a criterion fails; the message lists every
    criterion next to its metric's value, the other metrics, and ``note``."""
    if all(r["passed"] for r in results):
        return
    raise ValidationCriteriaError("model failed validation criteria: " + report(results, metrics)
                                  + (f". {note}" if note else ""))
