"""Step ``monitor`` (only in serving pipelines with ``serving.monitoring``; publish waits for it):
the drift of this run's scoring data and predictions against the model's training reference
(``reference_stats.json`` in the model directory; docs/monitoring.md).

Chunk by chunk (constant memory) it counts every monitored feature of ``scoring_data`` (after the
pipeline's custom transforms, as at training) and every monitored predictions column into the
reference bins; at the end it computes ``psi``, ``share_shift`` and ``missing_share`` per column.

Results, both replaced per partition (a retry, clear or rerun of a logical date never duplicates):
- the ``serving.monitoring.table`` (default ``model_monitoring``) on the target's data connector,
  one row per (column, metric): ``pipeline_name, execution_date, feature, kind, metric, value,
  rows, model_run_id, serving_run_id``, written in ONE transaction replacing the rows of
  (pipeline, logical date) exactly as publish replaces its partition (``publish.partition``);
- one MLflow monitoring run per (pipeline, logical date) (``tracking/monitoring_run.py``).

Then ``max_psi`` is enforced: ``on_breach: warn`` logs one warning line per breached column;
``fail`` raises ``MonitoringBreachError`` (exit 3, not retried) naming every breach, so publish
does not run. A model without reference statistics (trained before mbt recorded them) is a
warning under ``warn`` and a ``MonitoringBreachError`` under ``fail``.
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.errors import MonitoringBreachError
from airflow_mbt.ml import custom_transforms, drift, reference
from airflow_mbt.runtime.table_stream import StreamedTable, frames
from airflow_mbt.steps.error_location import with_pipeline_location
from airflow_mbt.steps.publish import partition

FIELD = "serving.monitoring"
DEFAULTS = {"max_psi": 0.25, "on_breach": "warn", "table": "model_monitoring"}
PREDICTION_KIND = "prediction"


def settings(config: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **((config.get("serving") or {}).get("monitoring") or {})}


def measure(ref: dict[str, Any], scoring_data: Any, predictions: Any, transforms: list[str], project_dir: Any,
            rows: int) -> list[tuple[str, drift.FeatureDrift]]:
    """``(kind, drift)`` for every monitored feature (kind numeric | categorical) and predictions
    column (kind ``prediction``), accumulated chunk by chunk."""
    features = drift.Accumulator(ref.get("features") or {})
    for df in _frames(scoring_data, rows, None if transforms else list(features.specs)):
        features.add(custom_transforms.apply(df, transforms, project_dir) if transforms else df)
    predicted = drift.Accumulator(ref.get("predictions") or {})
    for df in _frames(predictions, rows, list(predicted.specs)):
        predicted.add(df)
    return [(d.kind, d) for d in features.results()] + [(PREDICTION_KIND, d) for d in predicted.results()]


def _frames(value: Any, rows: int, columns: list[str] | None) -> Any:
    """Chunks of a streamed table or a frame, reading only ``columns`` (all with ``None``)."""
    if columns is not None and isinstance(value, StreamedTable):
        return value.iter_frames(rows, columns)
    return frames(value, rows)


def table_rows(measured: list[tuple[str, drift.FeatureDrift]]) -> list[dict[str, Any]]:
    return [{"feature": d.feature, "kind": kind, "metric": metric, "value": value, "rows": d.rows}
            for kind, d in measured for metric, value in d.metrics().items()]


def write_table(ctx: Any, table: str, rows: list[dict[str, Any]], stamp: dict[str, Any],
                replace: dict[str, Any]) -> int:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["feature", "kind", "metric", "value", "rows"])
    frame = frame.astype({"value": "float64", "rows": "int64"})
    frame.insert(0, "pipeline_name", stamp["pipeline_name"])
    frame.insert(1, "execution_date", pd.Series([stamp["execution_date"]] * len(frame), dtype="datetime64[us]"))
    frame["model_run_id"] = stamp["model_run_id"]
    frame["serving_run_id"] = stamp["serving_run_id"]
    written: int = ctx.connector().write_table(frame, table, replace_where=replace)
    return written


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    conf = settings(ctx.config)
    max_psi, on_breach, table = float(conf["max_psi"]), conf["on_breach"], conf["table"]
    ref = reference.read(inputs["model"])
    stamp, replace = partition(ctx, inputs.get("model_ref"))  # the run load_model resolved (alias or run id)
    if ref is None:
        text = ("the served model has no reference statistics (reference_stats.json): it was trained before "
                "mbt recorded them; retrain it to monitor drift")
        if on_breach == "fail":
            raise MonitoringBreachError(f"{FIELD}: {text}")
        ctx.log.warning("drift not checked: %s", text)
        return {"monitoring": {"skipped": text, "pipeline_name": stamp["pipeline_name"]}}
    pre = inputs["preprocessor"]
    measured = measure(ref, inputs["scoring_data"], inputs["predictions"], pre.get("custom_transforms") or [],
                       ctx.code_dir, ctx.chunk_rows())
    rows = table_rows(measured)
    breaches = [{"feature": d.feature, "kind": kind, "psi": d.psi} for kind, d in measured if d.psi > max_psi]
    report: dict[str, Any] = {
        "pipeline_name": stamp["pipeline_name"], "execution_date": stamp["execution_date"].isoformat(),
        "serving_run_id": ctx.run_id, "model_run_id": stamp["model_run_id"],
        "rows": inputs["scoring_data"].num_rows if hasattr(inputs["scoring_data"], "num_rows")
        else len(inputs["scoring_data"]),
        "max_psi": max_psi, "on_breach": on_breach, "table": table, "breaches": breaches, "results": rows}
    written = write_table(ctx, table, rows, stamp, replace)
    from airflow_mbt.tracking.monitoring_run import log_monitoring_run

    key = stamp["execution_date"].isoformat() if "execution_date" in replace else f"run:{ctx.run_id}"
    report["mlflow_run_id"] = log_monitoring_run(ctx, key, rows, report)
    ctx.log.info("drift of %d columns over %d rows: %d rows to table %s (partition %s), MLflow run %s",
                 len(measured), report["rows"], written, table, replace, report["mlflow_run_id"])
    for b in breaches:
        ctx.log.warning("drift: %s %s psi %.4f > max_psi %g (%s.max_psi)", b["kind"], b["feature"], b["psi"],
                        max_psi, FIELD)
    if breaches and on_breach == "fail":
        listed = ", ".join(f"{b['feature']} psi {b['psi']:.4f}" for b in breaches)
        raise MonitoringBreachError(
            f"{FIELD}: {len(breaches)} column(s) drifted past max_psi {max_psi:g}: {listed}; results in table "
            f"{table} and MLflow run {report['mlflow_run_id']}; predictions were not published")
    return {"monitoring": report}
