"""Log a serving run's drift results to MLflow as one *monitoring run* (serving logs no other
MLflow run), in the experiment of the serving pipeline.

Keyed by (pipeline, partition): tags ``pipeline_name``, ``mbt_kind=monitoring`` and
``mbt_monitoring_key`` (the logical date, ISO; ``run:<mbt run id>`` for a run without one). A
retry, clear or rerun of the same logical date deletes the previous monitoring run of that key
and logs a new one, so the experiment holds one run per partition. Metrics: ``drift.<feature>.<metric>``
(names outside MLflow's metric alphabet are replaced by ``_``) plus ``drift.rows`` and
``drift.breaches``; tags: the mbt run id, the model's run id, ``mbt_drift_status`` (ok | breach);
artifact ``monitoring.json`` (the step's output). MLflow failures become ``InfraError``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from airflow_mbt.errors import InfraError
from airflow_mbt.tracking import store

KIND_TAG, KEY_TAG = "mbt_kind", "mbt_monitoring_key"
KIND = "monitoring"
_BAD = re.compile(r"[^\w.\- /]")


def metric_key(feature: str, metric: str) -> str:
    return f"drift.{_BAD.sub('_', feature)}.{metric}"[:250]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def log_monitoring_run(ctx: Any, key: str, rows: list[dict[str, Any]], report: dict[str, Any]) -> str:
    """Replace the monitoring run of (pipeline, ``key``); returns its MLflow run id."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from airflow_mbt.tracking.run_logger import ensure_experiment, experiment_name_of

    pipeline = ctx.manifest.name
    with store.session(ctx.runtime) as target:
        client = store.client(target)
        try:
            experiment_id = ensure_experiment(client, experiment_name_of(ctx), target.artifact_location)
            for old in client.search_runs([experiment_id], max_results=50, filter_string=(
                    f"tags.{KIND_TAG} = '{KIND}' and tags.pipeline_name = '{_quote(pipeline)}' "
                    f"and tags.{KEY_TAG} = '{_quote(key)}'")):
                client.delete_run(old.info.run_id)
            tags = {"pipeline_name": pipeline, KIND_TAG: KIND, KEY_TAG: key, "mbt_run_id": ctx.run_id,
                    "mbt_model_run_id": str(report.get("model_run_id") or ""),
                    "mbt_drift_status": "breach" if report.get("breaches") else "ok"}
            run_id: str = client.create_run(experiment_id, run_name=f"{pipeline}-monitoring-{key}",
                                            tags=tags).info.run_id
            stamp = int(time.time() * 1000)
            metrics = [Metric(metric_key(r["feature"], r["metric"]), float(r["value"]), stamp, 0) for r in rows]
            metrics += [Metric("drift.rows", float(report.get("rows") or 0), stamp, 0),
                        Metric("drift.breaches", float(len(report.get("breaches") or [])), stamp, 0)]
            for i in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
                client.log_batch(run_id, metrics=metrics[i:i + 1000])
            client.log_dict(run_id, report, "monitoring.json")
            client.set_terminated(run_id, "FINISHED")
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    return run_id
