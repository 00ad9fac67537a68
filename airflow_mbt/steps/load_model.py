"""Step ``load_model``: download the model directory and preprocessor of the MLflow run
``serving.model_source.run_id``.

The model is the schema: problem type, label, classes, primary key, framework and column plan
come from its ``mbt_model.json``/``preprocessor.json``. A serving pipeline that still restates
one of them (an older file's ``training:`` block) must agree with the model: a different value is
an input error at that field (``ml/model_facts.py``), never silently replaced."""

from __future__ import annotations

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import model_facts
from airflow_mbt.ml.scoring import read_meta
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from airflow_mbt.tracking.model_fetch import fetch

    run_id = ((ctx.config.get("serving") or {}).get("model_source") or {}).get("run_id")
    model_dir, pre = fetch(ctx.runtime, run_id, ctx.step_dir / "fetched")
    meta = read_meta(model_dir)
    for field, declared, actual in model_facts.conflicts(ctx.config, meta):
        raise MBTInputError(f"{field} is {declared!r} but the model of MLflow run {run_id} has {actual!r}",
                            field=field, hint="remove the value (serving takes it from the model) "
                                              "or point serving.model_source.run_id at the right model")
    ctx.log.info("fetched %s model of MLflow run %s", meta["framework"], run_id)
    return {"model": model_dir, "preprocessor": pre}
