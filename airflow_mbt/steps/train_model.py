"""Step ``train_model``: fit the preprocessor (the column plan, printed as a table) on the training
set, train the configured framework on the transformed features, and save the model directory
(framework files + ``mbt_model.json``). Optionally: a binary decision threshold chosen on a
validation slice of the training set (``evaluation.threshold.choose``) and k-fold evaluation
metrics (``split.cv.folds``), both stored in ``mbt_model.json`` (``threshold``, ``cv``)."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any

from airflow_mbt.ml import columns, cv, drift, preprocessing, reference, row_filters, scoring, threshold
from airflow_mbt.ml.metrics import proba_column
from airflow_mbt.ml.schema import PipelineSchema, normalize_labels, regression_labels
from airflow_mbt.ml.scoring import write_meta
from airflow_mbt.steps.error_location import with_pipeline_location


def fresh_dir(path):
    """An empty directory at ``path`` (a retried step starts clean)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def class_balance(y: "pd.Series") -> dict[str, float]:
    """Share of each class (keys as text, for JSON and MLflow)."""
    shares = y.value_counts(normalize=True)
    return {str(k): round(float(v), 6) for k, v in sorted(shares.items(), key=lambda kv: str(kv[0]))}


def target_frame(y: "pd.Series", schema: PipelineSchema, classes: list[Any] | None) -> "pd.DataFrame":
    """Numeric targets for target encoding: the positive-class indicator (binary), one indicator
    per class (multiclass) or the label (regression)."""
    import pandas as pd

    if not schema.is_classification:
        return pd.DataFrame({"y": y.astype("float64").to_numpy()}, index=y.index)
    if schema.problem_type == "binary_classification":
        positive = schema.positive_class if schema.positive_class is not None else classes[-1]
        return pd.DataFrame({"y": (y == positive).astype("float64").to_numpy()}, index=y.index)
    return pd.DataFrame({str(c): (y == c).astype("float64").to_numpy() for c in classes}, index=y.index)


def _fit(ctx, schema: PipelineSchema, settings: dict, frame: "pd.DataFrame", y: "pd.Series",
         classes: list[Any] | None, framework, config: dict) -> tuple[dict, Any]:
    """Fit the preprocessing and the model on ``frame`` only; returns ``(preprocessor, model)``."""
    pre = preprocessing.fit(frame, label_column=schema.label_column, id_column=schema.primary_key,
                            ignored_columns=schema.ignored_columns, target=target_frame(y, schema, classes),
                            **preprocessing.schema_settings(ctx.config), **settings)
    return pre, framework.train(preprocessing.transform(frame, pre), y, schema.problem_type, config, ctx)


def _scorer(ctx, schema, settings, classes, positive, framework, framework_name, config, threshold=None):
    """``fit_and_score(rows, y, held_out) -> scored frame`` for CV and the threshold's validation."""
    def fit_and_score(rows, y_rows, held_out):
        pre, model = _fit(ctx, schema, settings, rows, y_rows, classes, framework, config)
        meta = {"framework": framework_name, "problem_type": schema.problem_type, "classes": classes,
                "positive_class": positive, "feature_columns": pre["output_columns"], "threshold": threshold}
        return scoring.score(framework, model, meta, preprocessing.transform(held_out, pre))
    return fit_and_score


def choose_threshold(ctx, rule: threshold.Rule, train, y, fit_and_score, positive, seed: int) -> tuple[float, str]:
    """Fit on all but a stratified ``validation_size`` slice of the training set, pick the threshold
    on that slice (the final model is then fitted on every training row)."""
    from sklearn.model_selection import train_test_split

    fit_rows, val_rows, y_fit, y_val = train_test_split(train, y, test_size=rule.validation_size, random_state=seed,
                                                        stratify=y if y.value_counts().min() >= 2 else None)
    scored = fit_and_score(fit_rows.reset_index(drop=True), y_fit.reset_index(drop=True),
                           val_rows.reset_index(drop=True))
    return threshold.choose(rule, (y_val == positive).to_numpy(), scored[proba_column(positive)].to_numpy())


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    schema = PipelineSchema.from_config(ctx.config)
    settings = preprocessing.settings_from_config(ctx.config)
    training = ctx.config["training"]
    model_training = training.get("model_training") or {}
    split = training.get("split") or {}
    rule = threshold.settings(ctx.config)
    train = inputs["train_set"]
    y = train[schema.label_column]
    classes = None
    if schema.is_classification:
        classes = schema.resolve_classes(y)
        y = normalize_labels(y, classes, schema.label_column)
    else:
        y = regression_labels(y, schema.label_column)
    framework_name = model_training.get("framework") or "sklearn"
    framework = ctx.framework(framework_name)
    config = dict(model_training.get("config") or {})
    positive = schema.positive_class if schema.problem_type == "binary_classification" else None
    if positive is None and schema.problem_type == "binary_classification":
        positive = classes[-1]
    ctx.log.info("training %s on %d rows", framework_name, len(train))
    pre, model = _fit(ctx, schema, settings, train, y, classes, framework, config)
    print(f"column plan ({len(train)} training rows):\n{columns.format_table(pre['columns'])}",
          file=sys.stderr, flush=True)
    seed = int(split.get("seed", 42))
    chosen, rule_note = (rule if isinstance(rule, float) else None), None
    if isinstance(rule, threshold.Rule):
        chosen, rule_note = choose_threshold(
            ctx, rule, train, y, _scorer(ctx, schema, settings, classes, positive, framework, framework_name, config),
            positive, seed)
        ctx.log.info("decision threshold %.4f (%s)", chosen, rule_note)
    cv_result = None
    if (split.get("cv") or {}).get("folds"):
        cv_result = cv.cross_validate(
            train, y, folds=int(split["cv"]["folds"]), seed=seed, problem_type=schema.problem_type, classes=classes,
            positive_class=positive, time_ordered=split.get("method") == "time",
            fit_and_score=_scorer(ctx, schema, settings, classes, positive, framework, framework_name, config, chosen))
    model_dir = fresh_dir(ctx.step_dir / "model")
    framework.save(model, model_dir)
    write_meta(model_dir, {
        "framework": framework_name, "problem_type": schema.problem_type, "classes": classes,
        "positive_class": positive, "feature_columns": pre["output_columns"],
        "label_column": schema.label_column, "primary_key": schema.primary_key,
        "framework_config": config, "train_rows": len(train), "mbt_run_id": ctx.run_id,
        "class_balance": class_balance(y) if schema.is_classification else None,
        "threshold": chosen, "threshold_rule": (f"{rule}: {rule_note}" if rule_note else None), "cv": cv_result,
        "pipeline_name": ctx.manifest.name, "rows_removed": train.attrs.get(row_filters.ATTR) or {},
    })
    reference.write(model_dir, drift.reference_features(train, pre), len(train))  # drift checks at serving
    return {"model": model_dir, "preprocessor": pre}
