"""Step ``predict``: score the features with the model directory; output the predictions table
(``<primary_key>, prediction, prediction_probability``) with the YAML's class labels."""

from __future__ import annotations

from airflow_mbt.ml import scoring
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    framework, model, meta = scoring.load(inputs["model"], ctx.runtime)
    features = inputs["features"]
    scored = scoring.score(framework, model, meta, features)
    id_col = meta.get("primary_key")
    ids = features[id_col] if id_col and id_col in features.columns else None
    table = scoring.predictions_table(ids, scored, meta)
    ctx.log.info("scored %d rows", len(table))
    return {"predictions": table}
