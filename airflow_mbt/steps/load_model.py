"""Step ``load_model``: resolve the serving model and download its model directory and preprocessor.

``serving.model_source.run_id`` names one MLflow run; ``model_name`` + ``alias`` names a registered
model's alias, resolved HERE, once per run (one registry call): every later step, chunk and
partition reads the ``model_ref`` output, so the run keeps its version even if the alias moves
meanwhile. ``model_ref`` = ``{"run_id", "model_name", "alias", "version"}`` (the last three
``None`` for a run id); it is also the step's run_results summary.

The model is the schema: problem type, label, classes, primary key, framework and column plan
come from its ``mbt_model.json``/``preprocessor.json``. A serving pipeline that still restates
one of them (an older file's ``training:`` block) must agree with the model: a different value is
an input error at that field (``ml/model_facts.py``), never silently replaced."""

from __future__ import annotations

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml import model_facts
from airflow_mbt.ml.scoring import read_meta
from airflow_mbt.steps.error_location import with_pipeline_location


def model_ref(ctx) -> dict:
    """The MLflow run (and registry version) this serving run uses."""
    source = (ctx.config.get("serving") or {}).get("model_source") or {}
    if source.get("model_name"):
        from airflow_mbt.tracking import registry

        return registry.resolve(ctx.runtime, source["model_name"], source.get("alias") or "champion")
    return {"run_id": source.get("run_id"), "model_name": None, "alias": None, "version": None}


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from airflow_mbt.tracking.model_fetch import fetch

    ref = model_ref(ctx)
    run_id = ref["run_id"]
    model_dir, pre = fetch(ctx.runtime, run_id, ctx.step_dir / "fetched")
    meta = read_meta(model_dir)
    for field, declared, actual in model_facts.conflicts(ctx.config, meta):
        raise MBTInputError(f"{field} is {declared!r} but the model of MLflow run {run_id} has {actual!r}",
                            field=field, hint="remove the value (serving takes it from the model) "
                                              "or point serving.model_source at the right model")
    via = f" ({ref['model_name']}@{ref['alias']} = version {ref['version']})" if ref["model_name"] else ""
    ctx.log.info("fetched %s model of MLflow run %s%s", meta["framework"], run_id, via)
    ctx.summary.update(ref)
    return {"model": model_dir, "preprocessor": pre, "model_ref": ref}
