"""Step ``train_model``: fit the preprocessor on the training set, train the configured framework
on the transformed features, and save the model directory (framework files + ``mbt_model.json``)."""

from __future__ import annotations

import shutil

from airflow_mbt.ml import preprocessing
from airflow_mbt.ml.schema import PipelineSchema, normalize_labels, regression_labels
from airflow_mbt.ml.scoring import write_meta
from airflow_mbt.steps.error_location import with_pipeline_location


def fresh_dir(path):
    """An empty directory at ``path`` (a retried step starts clean)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    schema = PipelineSchema.from_config(ctx.config)
    settings = preprocessing.settings_from_config(ctx.config)
    training = ctx.config["training"]
    model_training = training.get("model_training") or {}
    train = inputs["train_set"]
    y = train[schema.label_column]
    classes = None
    if schema.is_classification:
        classes = schema.resolve_classes(y)
        y = normalize_labels(y, classes, schema.label_column)
    else:
        y = regression_labels(y, schema.label_column)
    pre = preprocessing.fit(train, label_column=schema.label_column, id_column=schema.primary_key,
                            ignored_columns=schema.ignored_columns, **settings)
    X = preprocessing.transform(train, pre)
    framework_name = model_training.get("framework") or "sklearn"
    framework = ctx.framework(framework_name)
    config = dict(model_training.get("config") or {})
    ctx.log.info("training %s on %d rows x %d features", framework_name, len(X), X.shape[1])
    model = framework.train(X, y, schema.problem_type, config, ctx)
    model_dir = fresh_dir(ctx.step_dir / "model")
    framework.save(model, model_dir)
    positive = schema.positive_class if schema.problem_type == "binary_classification" else None
    if positive is None and schema.problem_type == "binary_classification":
        positive = classes[-1]
    write_meta(model_dir, {
        "framework": framework_name, "problem_type": schema.problem_type, "classes": classes,
        "positive_class": positive, "feature_columns": pre["output_columns"],
        "label_column": schema.label_column, "primary_key": schema.primary_key,
        "framework_config": config, "train_rows": len(train), "mbt_run_id": ctx.run_id,
        "pipeline_name": ctx.manifest.name,
    })
    return {"model": model_dir, "preprocessor": pre}
