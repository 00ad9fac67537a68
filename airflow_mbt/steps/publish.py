"""Step ``publish``: write the predictions to ``serving.output``, chunk by chunk: a CSV file in the
project (``local_file``, written to a temp file and renamed into place) or a table through the
data connector (``database``, idempotent per serving run via
``replace_where={"serving_run_id": run_id}``; ``connector.write_chunks`` when the connector has
it - one transaction for all chunks - else one ``write_table`` of the concatenated chunks)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_mbt.errors import MBTInputError
from airflow_mbt._fs import atomic_target
from airflow_mbt.runtime.table_stream import frames
from airflow_mbt.steps.error_location import with_pipeline_location

DESTINATIONS = ("local_file", "database")


def _chunks(predictions, rows: int, include_probabilities: bool):
    for df in frames(predictions, rows):
        if not include_probabilities and "prediction_probability" in df.columns:
            df = df.drop(columns=["prediction_probability"])
        yield df


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    serving = ctx.config.get("serving") or {}
    output = serving.get("output") or {}
    destination = output.get("destination", "local_file")
    if destination not in DESTINATIONS:
        raise MBTInputError(f"unknown destination {destination!r}", field="serving.output.destination",
                            hint=f"use one of: {', '.join(DESTINATIONS)}")
    chunks = _chunks(inputs["predictions"], ctx.chunk_rows(), output.get("include_probabilities", True))
    if destination == "local_file":
        path = ctx.runtime.path(output.get("path") or "predictions.csv")
        rows, header = 0, True
        with atomic_target(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            for df in chunks:
                df.to_csv(fh, index=False, header=header)
                rows, header = rows + len(df), False
        ctx.log.info("wrote %d predictions to %s", rows, path)
        return {"publish_result": {"destination": destination, "path": str(path), "rows": rows}}
    table = output.get("table")
    if not table:
        raise MBTInputError("database output needs a table", field="serving.output.table",
                            hint="e.g. table: churn_predictions")
    stamp = {"execution_date": datetime.now(timezone.utc).replace(tzinfo=None),
             "model_run_id": str((serving.get("model_source") or {}).get("run_id") or ""),
             "serving_run_id": ctx.run_id}
    stamped = (df.assign(**stamp) for df in chunks)
    connector = ctx.connector()
    replace = {"serving_run_id": ctx.run_id}
    if callable(getattr(connector, "write_chunks", None)):
        rows = connector.write_chunks(stamped, table, replace_where=replace)
    else:
        import pandas as pd

        rows = connector.write_table(pd.concat(list(stamped), ignore_index=True), table, replace_where=replace)
    ctx.log.info("wrote %d predictions to table %s", rows, table)
    return {"publish_result": {"destination": destination, "table": table, "rows": int(rows),
                               "serving_run_id": ctx.run_id}}
