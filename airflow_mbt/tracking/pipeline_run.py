"""The training pipeline's MLflow run, opened by the first step (``load_data``) and finished by
``log_run``, so the run covers the whole pipeline run instead of the last second of it.

Contract:
- ``start(ctx, df)`` finds the run of (pipeline, mbt run id) (tags ``pipeline_name`` and
  ``mbt_run_id``; ``run_logger.find_run``) or creates it (status RUNNING, tag
  ``mbt_status=running``), and logs the training input as an MLflow dataset (context
  ``training``): its source is the pipeline's ``training.data_source`` as written (table, or query
  and filter text; run parameters are bound separately and never logged) and the connector type,
  its digest MLflow's content digest of the frame, its schema inferred from the first
  ``SCHEMA_SAMPLE_ROWS`` rows (MLflow would check every value of every text column in Python: 19 s
  of a 1M-row load_data; the dtypes are the whole columns' either way). Idempotent: a retried
  ``load_data`` reuses the run, and the same data logs the same dataset once. Returns the MLflow run id.
- ``log_run`` then logs into that run (``run_logger._log``) and ends it FINISHED; a run failing
  its criteria ends it FAILED.
- ``fail(ctx, exc)``: a step of the pipeline failed before ``log_run`` ended the run: the run
  ends FAILED (KILLED when the step was terminated) with tags ``mbt_status=failed`` and
  ``mbt_failed_step``, keeping what it logged so far. Best effort and never raises (the step's
  own error is what the user must see); it touches only a RUNNING run (a promote failing after
  ``log_run`` leaves the FINISHED run alone), creates none, and is skipped when MLflow itself
  was the failure. A retry that reaches ``log_run`` ends the same run FINISHED.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_mbt.errors import InfraError
from airflow_mbt.tracking import store

STATUS_RUNNING = "running"
SCHEMA_SAMPLE_ROWS = 10_000  # MLflow's digest reads the same number of leading rows
STATUS_FAILED = "failed"
FAILED_STEP_TAG = "mbt_failed_step"


def _source(ctx) -> Any:
    from mlflow.data.dataset_source import DatasetSource

    from airflow_mbt.redaction import redact_obj

    spec = redact_obj({"connector": ctx.manifest.target.data_connector.type,
                       **{k: v for k, v in dict((ctx.config.get("training") or {}).get("data_source") or {}).items()
                          if k in ("label_table", "query", "where")}})

    class MBTDataSource(DatasetSource):  # type: ignore[misc]
        """Where mbt read the training data: the data connector and the YAML's data_source."""

        @staticmethod
        def _get_source_type() -> str:
            return "mbt_data_source"

        def load(self, **kwargs: Any) -> Any:
            raise NotImplementedError("read it with the pipeline's data connector")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> Any:
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return dict(spec)

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]) -> Any:
            return cls()

    return MBTDataSource()


def _schema(df) -> Any:
    """MLflow's schema of the frame, inferred from its first ``SCHEMA_SAMPLE_ROWS`` rows (None when
    MLflow cannot infer one, as ``PandasDataset.schema``)."""
    from mlflow.types.utils import _infer_schema

    try:
        return _infer_schema(df.head(SCHEMA_SAMPLE_ROWS))
    except Exception:  # noqa: BLE001 - as MLflow's own PandasDataset.schema: no schema, not a failure
        return None


def start(ctx, df) -> str:
    """Open (or find) the pipeline's MLflow run and log its input dataset (see module doc)."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    from airflow_mbt.tracking.run_logger import base_tags, ensure_experiment, experiment_name_of, find_run

    label = (ctx.config.get("training") or {}).get("schema", {}).get("target", {}).get("label_column")
    source = (ctx.config.get("training") or {}).get("data_source") or {}
    with store.session(ctx.runtime) as target:
        client = store.client(target)
        try:
            experiment_id = ensure_experiment(client, experiment_name_of(ctx), target.artifact_location)
            run = find_run(client, experiment_id, ctx.manifest.name, ctx.run_id)
            if run is None:
                pipeline = ctx.manifest.pipeline
                meta = {"framework": pipeline.framework, "problem_type": pipeline.problem_type}
                tags = base_tags(ctx, meta, STATUS_RUNNING)
                run = client.create_run(experiment_id, run_name=f"{ctx.manifest.name}-{ctx.run_id}", tags=tags)
            run_id = run.info.run_id
            dataset = mlflow.data.from_pandas(df, source=_source(ctx), targets=label if label in df.columns else None,
                                              name=str(source.get("label_table") or "query"))
            dataset.__dict__["schema"] = _schema(df)  # fills the cached_property PandasDataset.schema
            client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                             tags=[InputTag("mlflow.data.context", "training")])])
            client.log_dict(run_id, {"source": dataset.source.to_dict(), "digest": dataset.digest,
                                     "rows": len(df), "columns": list(map(str, df.columns))}, "input/dataset.json")
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    ctx.log.info("MLflow run %s opened for %s (input dataset digest %s, %s)", run_id, ctx.run_id, dataset.digest,
                 json.dumps(dataset.source.to_dict()))
    return run_id


def fail(ctx, exc: BaseException) -> None:
    """End the pipeline's open MLflow run FAILED / KILLED after a step failure (see module doc)."""
    import logging

    from airflow_mbt.errors import StepTerminated

    log = logging.getLogger("airflow_mbt")
    if isinstance(exc, InfraError) and exc.service == "MLflow":
        return  # MLflow is the problem: a second call would only wait for it again
    try:
        from airflow_mbt.tracking.run_logger import STATUS_TAG, experiment_name_of, find_run

        database = store.local_database(ctx.runtime)
        if database is not None and not database.exists():
            return  # no local tracking database yet: no run was opened, and none is created here
        with store.session(ctx.runtime) as target:
            client = store.client(target)
            experiment = client.get_experiment_by_name(experiment_name_of(ctx))
            run = experiment and find_run(client, experiment.experiment_id, ctx.manifest.name, ctx.run_id)
            if not run or run.info.status != "RUNNING":
                return
            client.set_tag(run.info.run_id, STATUS_TAG, STATUS_FAILED)
            client.set_tag(run.info.run_id, FAILED_STEP_TAG, ctx.step.name)
            client.set_terminated(run.info.run_id, "KILLED" if isinstance(exc, StepTerminated) else "FAILED")
        log.info("MLflow run %s ended %s: step %s failed", run.info.run_id,
                 "KILLED" if isinstance(exc, StepTerminated) else "FAILED", ctx.step.name)
    except Exception as err:  # noqa: BLE001 - best effort: never hide the step's own error
        log.warning("could not mark the MLflow run of %s failed: %s", ctx.run_id, type(err).__name__)
