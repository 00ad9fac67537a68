"""Step ``load_scoring_data``: read the scoring table (``serving.data_source.scoring_table``)."""

from __future__ import annotations

from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.load_data import read_source


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    return {"scoring_data": read_source(ctx, "serving", "scoring_table")}
