"""Step ``evaluate``: score the test set with the saved model, compute metrics, write plots, then
enforce ``evaluation.validation_criteria``. A failed criterion still writes ``metrics.json`` (step dir
and ``<pipeline>/<run_id>/evaluate/metrics.json`` in storage) and logs the run to MLflow with every metric,
tagged ``mbt_status=failed_criteria``; then ``ValidationCriteriaError`` (exit 3) lists every
criterion next to its metric.

The ``metrics`` output: ``{"problem_type", "primary_metric", "primary_value", "metrics": {name:
value|None}, "validation": [{"criterion","metric","threshold","actual","passed"}], "n_test",
"plots": [file names], "class_balance": {class: share} | None,
"threshold": the binary decision threshold or None, "cv": the k-fold result of ``ml/cv.py`` or None}``.
"""

from __future__ import annotations

import json

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import criteria, drift, metrics, plots, preprocessing, reference, scoring
from airflow_mbt.ml.schema import normalize_labels, regression_labels
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.train_model import class_balance, fresh_dir


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    evaluation = (ctx.config.get("training") or {}).get("evaluation") or {}
    model_dir, pre, test = inputs["model"], inputs["preprocessor"], inputs["test_set"]
    framework, model, meta = scoring.load(model_dir, ctx.runtime)
    problem = meta["problem_type"]
    checks = criteria.parse_all(evaluation.get("validation_criteria"), problem)
    primary = evaluation.get("primary_metric") or metrics.DEFAULT_PRIMARY[problem]
    if primary not in metrics.METRICS[problem]:
        raise MBTInputError(f"metric {primary!r} is not computed for {problem}",
                            field="training.evaluation.primary_metric",
                            hint=f"available: {', '.join(metrics.METRICS[problem])}")
    y, scored, values = score_test(framework, model, meta, pre, test)
    results = criteria.evaluate(checks, values)
    plots_dir = fresh_dir(ctx.step_dir / "plots")
    written = []
    if evaluation.get("generate_plots", True):
        written = plots.write_all(plots_dir, problem, y, scored, classes=meta["classes"],
                                  positive_class=meta["positive_class"],
                                  importance=framework.feature_importance(model))
    ctx.log.info("metrics on %d test rows: %s", len(test),
                 ", ".join(f"{k}={v:.4f}" for k, v in values.items() if v is not None))
    for r in results:
        ctx.log.info("criterion %s: actual %s -> %s", r["criterion"], r["actual"], "pass" if r["passed"] else "FAIL")
    doc = {"problem_type": problem, "primary_metric": primary, "primary_value": values.get(primary),
           "metrics": values, "validation": results, "n_test": len(test), "plots": written,
           "class_balance": class_balance(y) if problem != "regression" else None,
           "threshold": meta.get("threshold"), "cv": meta.get("cv"),
           reference.PREDICTIONS_KEY: {"rows": len(test), "specs": drift.reference_predictions(
               scoring.predictions_table(None, scored, meta), meta["classes"])}}
    if meta.get("cv"):
        ctx.log.info("%d-fold CV on the training set: %s", meta["cv"]["folds"],
                     ", ".join(f"{k}={v['mean']:.4f}" for k, v in meta["cv"]["metrics"].items()
                               if v["mean"] is not None))
    if not all(r["passed"] for r in results):
        criteria.enforce(results, values, keep_failed_run(ctx, model_dir, pre, doc, plots_dir))
    return {"metrics": doc, "plots": plots_dir}


def score_test(framework, model, meta: dict, pre: dict, test) -> tuple:
    """``(labels, scored, metric values)`` of a saved model on a test set (also used by ``promote``
    to re-score the champion on the challenger's test set)."""
    problem = meta["problem_type"]
    y = test[meta["label_column"]]
    y = normalize_labels(y, meta["classes"], meta["label_column"]) if problem != "regression" \
        else regression_labels(y, meta["label_column"])
    scored = scoring.score(framework, model, meta, preprocessing.transform(test, pre))
    values = metrics.compute(problem, y, scored, classes=meta["classes"], positive_class=meta["positive_class"])
    return y, scored, values


def keep_failed_run(ctx, model_dir, pre: dict, doc: dict, plots_dir) -> str:
    """Write ``metrics.json`` (step dir and the run's storage) and log the failed run to MLflow;
    returns where both went, for the error message. An MLflow outage does not hide the criteria
    failure: it is named in the note instead."""
    from airflow_mbt.errors import InfraError
    from airflow_mbt.runtime.artifacts import run_prefix
    from airflow_mbt.tracking.run_logger import STATUS_FAILED_CRITERIA, log_failed_run

    data = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
    (ctx.step_dir / "metrics.json").write_bytes(data)
    notes = []
    try:
        key = f"{run_prefix(ctx.run_id, ctx.manifest.name)}/{ctx.step.name}/metrics.json"  # the run's prefix
        notes.append(f"metrics.json: {ctx.storage().put(key, data)}")
    except Exception as exc:  # noqa: BLE001 - a storage problem must not hide the criteria failure
        notes.append(f"metrics.json: {ctx.step_dir / 'metrics.json'} (storage failed: {exc})")
    try:
        run = log_failed_run(ctx, model_dir, pre, doc, plots_dir)
        notes.append(f"logged to MLflow run {run['run_id']} (tag mbt_status={STATUS_FAILED_CRITERIA})")
    except InfraError as exc:
        ctx.log.warning("could not log the failed run to MLflow: %s", exc)
        notes.append(f"not logged to MLflow: {exc}")
    return "; ".join(notes)
