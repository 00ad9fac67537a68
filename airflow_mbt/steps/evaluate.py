"""Step ``evaluate``: score the test set with the saved model, compute metrics, write plots, then
enforce ``evaluation.validation_criteria`` (``ValidationCriteriaError`` when one fails).

The ``metrics`` output: ``{"problem_type", "primary_metric", "primary_value", "metrics": {name:
value|None}, "validation": [{"criterion","metric","threshold","actual","passed"}], "n_test",
"plots": [file names]}``.
"""

from __future__ import annotations

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import criteria, metrics, plots, preprocessing, scoring
from airflow_mbt.ml.schema import normalize_labels, regression_labels
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.train_model import fresh_dir


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
    y = test[meta["label_column"]]
    y = normalize_labels(y, meta["classes"], meta["label_column"]) if problem != "regression" \
        else regression_labels(y, meta["label_column"])
    scored = scoring.score(framework, model, meta, preprocessing.transform(test, pre))
    values = metrics.compute(problem, y, scored, classes=meta["classes"], positive_class=meta["positive_class"])
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
    criteria.enforce(results)
    return {"metrics": {"problem_type": problem, "primary_metric": primary, "primary_value": values.get(primary),
                        "metrics": values, "validation": results, "n_test": len(test), "plots": written},
            "plots": plots_dir}
