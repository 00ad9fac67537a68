"""Step ``publish``: write the predictions to ``serving.output``, chunk by chunk, as ONE partition
of the output: the rows of (pipeline, logical date).

Every row carries ``execution_date`` (the run's logical date, ``ctx.run.logical_date``, as naive
UTC; the wall clock only when the run has no logical date), ``model_run_id``, ``serving_run_id``
and ``pipeline_name``. A retry, a cleared task, a rerun or a second manual run for the same
logical date replaces that partition (``replace_where={"pipeline_name", "execution_date"}``) in
one transaction; without a logical date the partition is the run (``serving_run_id``). Pipelines
writing to one table never touch each other's rows.

Destinations: ``database`` - the target's data connector (``write_chunks`` when it has it: one
DELETE + COPY transaction on PostgreSQL, an atomic file rewrite on local_file; a table without
``pipeline_name`` is migrated with ``ensure_columns``); ``local_file`` - the CSV at
``serving.output.path``, rewritten atomically without the partition's old rows plus the new ones.

With ``serving.partitions`` each partition's task publishes its own rows, stamped
``mbt_partition = i`` (an integer column, added to an existing table), and replaces only them
(``replace_where`` adds ``mbt_partition``): a retried partition publishes exactly once and never
touches the other partitions' rows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.partitions import PARTITION_COLUMN as SERVING_PARTITION_COLUMN
from airflow_mbt.runtime.table_stream import frames
from airflow_mbt.steps.error_location import with_pipeline_location

DESTINATIONS = ("local_file", "database")
PARTITION_COLUMN = "pipeline_name"
ADDED_COLUMNS = {PARTITION_COLUMN: "text"}  # migration of tables created before the column existed
PARTITIONED_COLUMNS = {SERVING_PARTITION_COLUMN: "integer"}  # added when serving.partitions is used


def _chunks(predictions, rows: int, include_probabilities: bool):
    for df in frames(predictions, rows):
        if not include_probabilities and "prediction_probability" in df.columns:
            df = df.drop(columns=["prediction_probability"])
        yield df


def partition(ctx, model_ref: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stamp columns of every row, ``replace_where`` of the partition) for this run;
    ``model_run_id`` is the run ``load_model`` resolved (``model_ref``), else the YAML's run id."""
    run = getattr(ctx, "run", None)
    logical = getattr(run, "logical_date", None)
    when = logical or datetime.now(timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    name = ctx.manifest.pipeline.name
    serving = ctx.config.get("serving") or {}
    stamp = {"execution_date": when,
             "model_run_id": str((model_ref or {}).get("run_id") or (serving.get("model_source") or {}).get("run_id")
                                 or ""),
             "serving_run_id": ctx.run_id,
             PARTITION_COLUMN: name}
    replace = ({PARTITION_COLUMN: name, "execution_date": when} if logical is not None
               else {PARTITION_COLUMN: name, "serving_run_id": ctx.run_id})
    index = getattr(run, "partition", None)
    if index is not None:  # serving.partitions: this task replaces only its partition's rows
        stamp[SERVING_PARTITION_COLUMN] = index
        replace[SERVING_PARTITION_COLUMN] = index
    return stamp, replace


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    serving = ctx.config.get("serving") or {}
    output = serving.get("output") or {}
    destination = output.get("destination", "local_file")
    if destination not in DESTINATIONS:
        raise MBTInputError(f"unknown destination {destination!r}", field="serving.output.destination",
                            hint=f"use one of: {', '.join(DESTINATIONS)}")
    stamp, replace = partition(ctx, inputs.get("model_ref"))
    chunks = _chunks(inputs["predictions"], ctx.chunk_rows(), output.get("include_probabilities", True))
    stamped = (df.assign(**stamp) for df in chunks)
    result = {"destination": destination, "serving_run_id": ctx.run_id,
              "execution_date": stamp["execution_date"].isoformat(), PARTITION_COLUMN: stamp[PARTITION_COLUMN],
              **({SERVING_PARTITION_COLUMN: stamp[SERVING_PARTITION_COLUMN]}
                 if SERVING_PARTITION_COLUMN in stamp else {})}
    if destination == "local_file":
        from airflow_mbt.plugins.connectors.local_file import replace_csv_rows

        path = ctx.runtime.path(output.get("path") or "predictions.csv")
        rows = replace_csv_rows(path, stamped, replace)
        ctx.log.info("wrote %d predictions to %s (partition %s)", rows, path, replace)
        return {"publish_result": {**result, "path": str(path), "rows": rows}}
    table = output.get("table")
    if not table:
        raise MBTInputError("database output needs a table", field="serving.output.table",
                            hint="e.g. table: churn_predictions")
    connector = ctx.connector()
    if callable(getattr(connector, "ensure_columns", None)):
        added = {**ADDED_COLUMNS, **(PARTITIONED_COLUMNS if SERVING_PARTITION_COLUMN in stamp else {})}
        connector.ensure_columns(table, added)
    if callable(getattr(connector, "write_chunks", None)):
        rows = connector.write_chunks(stamped, table, replace_where=replace)
    else:
        import pandas as pd

        rows = connector.write_table(pd.concat(list(stamped), ignore_index=True), table, replace_where=replace)
    ctx.log.info("wrote %d predictions to table %s (partition %s)", rows, table, replace)
    return {"publish_result": {**result, "table": table, "rows": int(rows)}}
