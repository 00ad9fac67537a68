"""Step ``load_scoring_data``: stream ``serving.data_source`` (``scoring_table``, or ``query``;
optional ``where``, run parameters from ``ctx.run``) through ``connector.iter_source`` into the
``scoring_data`` streamed table, chunk by chunk.

Chunks of a typed source (PostgreSQL, DuckDB) always share the column types. A source whose types
are inferred per chunk (CSV files read with pandas) can yield a chunk that does not fit the first
one's types (a float column whose first rows are whole numbers, text in a numeric column); the
source is then read whole, as before streaming, so the feature contract sees the column as the
whole-table read types it.

With ``serving.partitions`` and ``ctx.run.partition`` set, only that partition's rows are read (the
filter runs in the database, ``partitions.py``); an empty partition is not an error (a small
interval may leave some partitions empty), an empty source still is (``verify`` checks it)."""

from __future__ import annotations

from dataclasses import replace

from airflow_mbt.errors import DataContractError
from airflow_mbt.partitions import plan_of
from airflow_mbt.runtime.table_stream import StreamError
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.load_data import bound_source


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    source = bound_source(ctx, "serving")
    plan = plan_of(ctx.config)
    index = getattr(getattr(ctx, "run", None), "partition", None)
    if plan is not None and index is not None:
        source = replace(source, partition=plan.filter(index))
    connector = ctx.connector()
    out = ctx.table_writer("scoring_data")
    try:
        with out:
            for chunk in connector.iter_source(source, ctx.chunk_rows()):
                out.write(chunk)
    except StreamError as exc:
        ctx.log.warning("chunks of %s change column types (%s); reading it whole", source.label, exc)
        out = ctx.table_writer("scoring_data")
        with out:
            out.write(connector.read_source(source))
    if out.num_rows == 0 and source.partition is None:
        out.abort()
        raise DataContractError(f"{source.label} returned no rows", field=source.field)
    ctx.log.info("read %d rows from %s in chunks of %d", out.num_rows, source.label, ctx.chunk_rows())
    return {"scoring_data": out}
