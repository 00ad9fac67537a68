"""Step ``load_data``: read the label table (``training.data_source.label_table``)."""

from __future__ import annotations

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.steps.error_location import with_pipeline_location


def source_table(ctx, section: str, key: str) -> tuple[str, str]:
    """(table name, YAML field) of ``<section>.data_source.<key>``; an input error when unset."""
    table = ((ctx.config.get(section) or {}).get("data_source") or {}).get(key)
    field = f"{section}.data_source.{key}"
    if not table:
        raise MBTInputError("no table configured", field=field, hint=f"set {field}: <table name>")
    return table, field


def read_source(ctx, section: str, key: str):
    """Read ``<section>.data_source.<key>`` through the target's data connector."""
    table, field = source_table(ctx, section, key)
    df = ctx.connector().read_table(table)
    if df.empty:
        raise DataContractError(f"table {table!r} has no rows", field=field)
    ctx.log.info("read %d rows x %d columns from %s", len(df), len(df.columns), table)
    return df


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    return {"raw_data": read_source(ctx, "training", "label_table")}
