"""Step ``load_data``: read ``training.data_source`` (``label_table``, or ``query``; optional
``where``) through the target's data connector, with the run parameters of ``ctx.run`` bound;
then open the pipeline's MLflow run with the data as its input dataset (``tracking.pipeline_run``)."""

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
    from airflow_mbt.tracking.pipeline_run import start

    df = read_source(ctx, "training")
    start(ctx, df)  # the pipeline's MLflow run opens here and logs its input dataset; log_run ends it
    return {"raw_data": df}
