"""Step ``log_run``: log the trained model, metrics, plots and the manifest to MLflow
(see ``tracking.run_logger``); outputs the ``mlflow_run`` json of CONTRACTS §3."""

from __future__ import annotations

from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from airflow_mbt.ml import reference
    from airflow_mbt.tracking.run_logger import log_training_run

    reference.complete(inputs["model"], inputs["metrics"])  # the step's own copy: logged with the model
    return {"mlflow_run": log_training_run(ctx, inputs["model"], inputs["preprocessor"], inputs["metrics"],
                                           inputs.get("plots"))}
