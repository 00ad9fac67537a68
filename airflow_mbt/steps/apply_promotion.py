"""Step ``apply_promotion`` (``registration.approval: required``): move the alias to the approved
challenger.

Under Airflow the DAG runs it after the ``approve_promotion`` ApprovalOperator: a rejection skips
it (the alias stays, the run succeeds as "not promoted"), so running under Airflow (the run
context has a ``dag_id``) means a human approved. Under ``mbt run`` there is nobody to approve:
the step moves nothing and reports ``awaiting_approval``. Only a ``promote`` decision of
``awaiting_approval`` is applied; any other decision passes through unchanged.

Output ``promotion_applied``: the ``promotion`` document with ``decision`` (``promoted`` once
applied), ``alias_moved`` and ``approved``; the same goes to the run_results summary (with
``asset_uri`` when the alias moved, for the model's Airflow asset event).
"""

from __future__ import annotations

from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.promote import AWAITING, PROMOTED


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from mlflow.exceptions import MlflowException

    from airflow_mbt.errors import InfraError
    from airflow_mbt.step_specs import model_asset
    from airflow_mbt.tracking import registry, store

    doc = dict(inputs["promotion"])
    approved = bool(ctx.run and ctx.run.dag_id)
    doc["approved"] = approved and doc["decision"] == AWAITING
    if doc["decision"] == AWAITING and approved:
        name, alias, version = doc["model_name"], doc["alias"], doc["challenger"]["version"]
        with store.session(ctx.runtime) as target:
            client = store.client(target)
            try:
                registry.move_alias(client, name, alias, version)
                client.set_model_version_tag(name, version, "mbt_promotion", f"{PROMOTED} (approved)")
            except MlflowException as exc:
                raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                           f"{str(exc.message)[:300]}") from None
        doc.update(decision=PROMOTED, alias_moved=True)
        ctx.log.info("approved: %s@%s -> version %s", name, alias, version)
    elif doc["decision"] == AWAITING:
        ctx.log.warning("%s@%s NOT moved: awaiting approval. `mbt run` cannot ask a human: deploy the pipeline "
                        "and approve in Airflow, or set the alias in the MLflow UI", doc["model_name"], doc["alias"])
    ctx.summary.update(doc)
    if doc["alias_moved"]:
        ctx.summary["asset_uri"] = model_asset(doc["model_name"], doc["alias"])[1]
    return {"promotion_applied": doc}
