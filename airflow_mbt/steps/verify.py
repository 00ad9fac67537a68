"""Step ``verify`` (serving pipelines with ``serving.partitions``): after every partition has
published, check that the partitions' rows add up to the source rows of the run.

Inputs: ``publish_result`` of every partition, in partition order (the executor gathers
``publish_result@p<i>``; a partition that never published is an ``ArtifactNotFoundError`` naming
it). The source is counted once, unpartitioned, with the run's parameters bound
(``connector.count_source``: ``SELECT count(*)`` in the database). A difference - the source
changed while the partitions read it, or a partition published rows of another run - is an
``IntegrityError`` (exit 3, not retried: clear the partitions to publish again). Output
``verify_result``: ``{"source_rows", "published_rows", "partitions": [{"partition", "rows"}]}``.
"""

from __future__ import annotations

from airflow_mbt.errors import IntegrityError
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.load_data import bound_source


def source_rows(ctx) -> int:
    """Rows of the run's (unpartitioned) serving source."""
    source = bound_source(ctx, "serving")
    connector = ctx.connector()
    if callable(getattr(connector, "count_source", None)):
        return int(connector.count_source(source))
    return sum(len(df) for df in connector.iter_source(source, ctx.chunk_rows()))


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    results = list(inputs["publish_result"])
    parts = [{"partition": i, "rows": int(r.get("rows") or 0)} for i, r in enumerate(results)]
    stale = [i for i, r in enumerate(results) if r.get("serving_run_id") != ctx.run_id]
    if stale:
        raise IntegrityError(f"partitions {stale} were published by another run, not {ctx.run_id}")
    published = sum(p["rows"] for p in parts)
    expected = source_rows(ctx)
    detail = ", ".join(f"p{p['partition']}={p['rows']}" for p in parts)
    if published != expected:
        raise IntegrityError(f"the {len(parts)} partitions published {published} rows ({detail}), "
                             f"but the source has {expected} rows for this run; did the source change "
                             f"while the partitions read it? Clear the partitions' tasks to publish again")
    ctx.log.info("verified: %d partitions published %d rows = the source rows (%s)", len(parts), published, detail)
    return {"verify_result": {"source_rows": expected, "published_rows": published, "partitions": parts}}
