"""Step ``load_model``: download the model directory and preprocessor of the MLflow run
``serving.model_source.run_id``."""

from __future__ import annotations

from airflow_mbt.ml.scoring import read_meta
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from airflow_mbt.tracking.model_fetch import fetch

    run_id = ((ctx.config.get("serving") or {}).get("model_source") or {}).get("run_id")
    model_dir, pre = fetch(ctx.runtime, run_id, ctx.step_dir / "fetched")
    meta = read_meta(model_dir)
    declared = ((ctx.config.get("training") or {}).get("model_training") or {}).get("framework")
    if declared and declared != meta["framework"]:
        ctx.log.warning("run %s was trained with %s, the pipeline declares %s: using %s",
                        run_id, meta["framework"], declared, meta["framework"])
    ctx.log.info("fetched %s model of MLflow run %s", meta["framework"], run_id)
    return {"model": model_dir, "preprocessor": pre}
