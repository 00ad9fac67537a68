"""Step ``publish``: write the predictions to ``serving.output``: a CSV file in the project
(``local_file``) or a table through the data connector (``database``, idempotent per serving run
via ``replace_where={"serving_run_id": run_id}``)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow_mbt.errors import MBTInputError
from airflow_mbt.steps.error_location import with_pipeline_location

DESTINATIONS = ("local_file", "database")


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    serving = ctx.config.get("serving") or {}
    output = serving.get("output") or {}
    destination = output.get("destination", "local_file")
    df = inputs["predictions"].copy()
    if not output.get("include_probabilities", True) and "prediction_probability" in df.columns:
        df = df.drop(columns=["prediction_probability"])
    if destination == "local_file":
        path = ctx.runtime.path(output.get("path") or "predictions.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(path)
        ctx.log.info("wrote %d predictions to %s", len(df), path)
        return {"publish_result": {"destination": destination, "path": str(path), "rows": len(df)}}
    if destination == "database":
        table = output.get("table")
        if not table:
            raise MBTInputError("database output needs a table", field="serving.output.table",
                                hint="e.g. table: churn_predictions")
        df["execution_date"] = datetime.now(timezone.utc).replace(tzinfo=None)
        df["model_run_id"] = str((serving.get("model_source") or {}).get("run_id") or "")
        df["serving_run_id"] = ctx.run_id
        rows = ctx.connector().write_table(df, table, replace_where={"serving_run_id": ctx.run_id})
        ctx.log.info("wrote %d predictions to table %s", rows, table)
        return {"publish_result": {"destination": destination, "table": table, "rows": int(rows),
                                   "serving_run_id": ctx.run_id}}
    raise MBTInputError(f"unknown destination {destination!r}", field="serving.output.destination",
                        hint=f"use one of: {', '.join(DESTINATIONS)}")
