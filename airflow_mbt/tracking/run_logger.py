"""Log a training run to MLflow: experiment (created with the target's artifact location),
params (framework, problem type, flattened framework config), metrics, tags (pipeline, mbt run id,
target, owner, manifest hash), the pyfunc model, plots, ``preprocessor.json``, ``metrics.json``
and ``manifest.json``.

Idempotent per mbt run: a retried ``log_run`` reuses the finished MLflow run it already created
(tag ``mbt_run_id``) and replaces an unfinished one.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_mbt.errors import InfraError
from airflow_mbt.tracking import store

PARAM_MAX = 6000
MODEL_NAME = "model"
MODEL_URI_TAG = "mbt_model_uri"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}`` with string values (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple, bool)) or value is None else str(value)
            out[name] = text[:PARAM_MAX]
    return out


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another step/process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def find_run(client, experiment_id: str, pipeline: str, mbt_run_id: str):
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.mbt_run_id = '{_quote(mbt_run_id)}' and tags.pipeline_name = '{_quote(pipeline)}'"),
        max_results=10)
    return runs[0] if runs else None


def describe(run, experiment_name: str, tracking_uri: str) -> dict:
    """The ``mlflow_run`` artifact of CONTRACTS §3."""
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "experiment_name": experiment_name, "tracking_uri": store.redact(tracking_uri),
            "model_uri": run.data.tags.get(MODEL_URI_TAG, f"runs:/{run.info.run_id}/{MODEL_NAME}"),
            "artifact_uri": run.info.artifact_uri}


def log_training_run(ctx, model_dir: Path, preprocessor: dict, metrics: dict, plots_dir: Path | None) -> dict:
    """Log one training run (see the module docstring); returns the ``mlflow_run`` artifact.
    MLflow failures become ``InfraError("MLflow", ...)`` (retryable)."""
    from mlflow.exceptions import MlflowException

    from airflow_mbt.ml.scoring import read_meta

    project = ctx.config.get("project") or {}
    experiment_name = (project.get("experiment_name") or ctx.manifest.pipeline.experiment_name
                       or ctx.runtime.section("mlflow").get("experiment_name") or ctx.manifest.name)
    meta = read_meta(model_dir)
    with store.session(ctx.runtime) as target:
        try:
            out = _log(ctx, store.client(target), target, experiment_name, meta, model_dir, preprocessor,
                       metrics, plots_dir)
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    ctx.log.info("logged MLflow run %s in experiment %r (%s)", out["run_id"], experiment_name, out["tracking_uri"])
    return out


def _log(ctx, client, target, experiment_name: str, meta: dict, model_dir: Path, preprocessor: dict,
         metrics: dict, plots_dir: Path | None) -> dict:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    from airflow_mbt.tracking.pyfunc import (MODEL_DIR, PREPROCESSOR, MBTPyfuncModel, pip_requirements,
                                             transform_code)

    manifest = ctx.manifest
    project = ctx.config.get("project") or {}
    experiment_id = ensure_experiment(client, experiment_name, target.artifact_location)
    previous = find_run(client, experiment_id, manifest.name, ctx.run_id)
    if previous is not None:
        if previous.info.status == "FINISHED" and MODEL_URI_TAG in previous.data.tags:
            ctx.log.info("MLflow run %s already logged for %s (retry): reusing it", previous.info.run_id, ctx.run_id)
            return describe(previous, experiment_name, target.tracking_uri)
        client.delete_run(previous.info.run_id)
    tags = {"pipeline_name": manifest.name, "mbt_run_id": ctx.run_id, "target": manifest.target_name,
            "owner": str(project.get("owner") or ""), "mbt_manifest_hash": manifest.content_hash,
            "framework": meta["framework"], "problem_type": meta["problem_type"]}
    if project.get("tags"):
        tags["project_tags"] = ",".join(map(str, project["tags"]))
    for key, value in (ctx.run.to_json() if ctx.run else {}).items():  # mbt_logical_date, mbt_interval_start...
        if value is not None and key != "run_id":
            tags[f"mbt_{key}"] = str(value)
    run_id = client.create_run(experiment_id, run_name=f"{manifest.name}-{ctx.run_id}", tags=tags).info.run_id
    try:
        params = {"framework": meta["framework"], "problem_type": meta["problem_type"],
                  **flatten(meta.get("framework_config") or {})}
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("primary_metric", str(metrics.get("primary_metric", "")))])
        if plots_dir is not None and any(Path(plots_dir).iterdir()):
            client.log_artifacts(run_id, str(plots_dir), "plots")
        client.log_dict(run_id, preprocessor, "preprocessor.json")
        client.log_dict(run_id, metrics, "metrics.json")
        client.log_text(run_id, manifest.to_json(), "manifest.json")
        with tempfile.TemporaryDirectory(prefix="mbt-log-") as tmp:
            pre_path = Path(tmp) / "preprocessor.json"
            pre_path.write_text(json.dumps(preprocessor, indent=2, sort_keys=True), encoding="utf-8")
            code = transform_code(preprocessor.get("custom_transforms") or [], ctx.project_dir, Path(tmp) / "code")
            with store.fluent_tracking_uri(target.tracking_uri), mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME, python_model=MBTPyfuncModel(),
                    artifacts={MODEL_DIR: str(model_dir), PREPROCESSOR: str(pre_path)}, code_paths=code or None,
                    pip_requirements=pip_requirements(meta["framework"]))
                mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        # metrics after the model so they are linked to it (MLflow 3 LoggedModel) as well as the run
        stamp = int(time.time() * 1000)
        values: dict[str, Any] = metrics.get("metrics") or {}
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0, model_id=info.model_id)
                                          for k, v in values.items() if v is not None])
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return describe(client.get_run(run_id), experiment_name, target.tracking_uri)
