"""Step ``load_scoring_data``: stream the scoring table (``serving.data_source.scoring_table``)
through ``connector.iter_table`` into the ``scoring_data`` streamed table, chunk by chunk.

Chunks of a typed source (PostgreSQL) always share the column types. A source whose types are
inferred per chunk (CSV files) can yield a chunk that does not fit the first one's types (a float
column whose first rows are whole numbers, text in a numeric column); the table is then read
whole, as before streaming, so the feature contract sees the column as the whole-table read types it."""

from __future__ import annotations

from airflow_mbt.errors import DataContractError
from airflow_mbt.runtime.table_stream import StreamError
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.load_data import source_table


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    table, field = source_table(ctx, "serving", "scoring_table")
    connector = ctx.connector()
    out = ctx.table_writer("scoring_data")
    try:
        with out:
            for chunk in connector.iter_table(table, ctx.chunk_rows()):
                out.write(chunk)
    except StreamError as exc:
        ctx.log.warning("chunks of %s change column types (%s); reading it whole", table, exc)
        out = ctx.table_writer("scoring_data")
        with out:
            out.write(connector.read_table(table))
    if out.num_rows == 0:
        out.abort()
        raise DataContractError(f"table {table!r} has no rows", field=field)
    ctx.log.info("read %d rows from %s in chunks of %d", out.num_rows, table, ctx.chunk_rows())
    return {"scoring_data": out}
