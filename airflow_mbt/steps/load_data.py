"""Step ``load_data``: read ``training.data_source`` (``label_table``, or ``query``; optional
``where``) through the target's data connector, with the run parameters of ``ctx.run`` bound."""

from __future__ import annotations

from airflow_mbt.errors import DataContractError
from airflow_mbt.sources import SourceQuery, bind
from airflow_mbt.steps.error_location import with_pipeline_location


def bound_source(ctx, section: str) -> SourceQuery:
    """``<section>.data_source`` of the pipeline bound to this run (``ctx.run``)."""
    return bind(ctx.config, section, getattr(ctx, "run", None))


def read_source(ctx, section: str):
    """Read ``<section>.data_source`` through the target's data connector (one DataFrame)."""
    source = bound_source(ctx, section)
    df = ctx.connector().read_source(source)
    if df.empty:
        raise DataContractError(f"{source.label} returned no rows", field=source.field)
    ctx.log.info("read %d rows x %d columns from %s", len(df), len(df.columns), source.label)
    return df


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    return {"raw_data": read_source(ctx, "training")}
