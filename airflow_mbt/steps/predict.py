"""Step ``predict``: score the features with the model directory, chunk by chunk; output the
predictions table (``<primary_key>, prediction, prediction_probability``) with the YAML's class
labels (``include_probabilities: all`` adds ``prediction_probability_<class>`` for every class; a
binary decision threshold stored with the model is applied). A framework may ask for bigger chunks
(``predict_batch_rows``). Empty chunks (an empty partition) are skipped."""

from __future__ import annotations

from airflow_mbt.ml import scoring
from airflow_mbt.runtime.table_stream import frames
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    framework, model, meta = scoring.load(inputs["model"], ctx.runtime)
    rows = max(ctx.chunk_rows(), int(getattr(framework, "predict_batch_rows", 0) or 0))
    id_col = meta.get("primary_key")
    include = ((ctx.config.get("serving") or {}).get("output") or {}).get("include_probabilities", True)
    out = ctx.table_writer("predictions")
    with out:
        for features in frames(inputs["features"], rows):
            if features.empty:  # an empty partition: nothing to score
                continue
            scored = scoring.score(framework, model, meta, features)
            ids = features[id_col] if id_col and id_col in features.columns else None
            out.write(scoring.predictions_table(ids, scored, meta, include))
    ctx.log.info("scored %d rows in chunks of %d", out.num_rows, rows)
    return {"predictions": out}
