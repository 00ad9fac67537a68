"""Log a training run to MLflow: experiment (created with the target's artifact location),
params (``run_params``: framework, problem type, flattened framework config, split, preprocessing
choices, the column plan, row counts, class balance, decision threshold), metrics, tags (pipeline,
mbt run id, target, owner, manifest hash, ``mbt_status``), the pyfunc model, plots,
``preprocessor.json``, ``column_plan.json``/``.txt``, ``metrics.json`` and ``manifest.json``.

``log_failed_run`` keeps a run that failed its validation criteria: the same params, metrics and
artifacts, no model, tag ``mbt_status=failed_criteria``, MLflow status ``FAILED``.

The MLflow run is the one ``load_data`` opened for this pipeline run (``tracking.pipeline_run``,
found by the tags ``pipeline_name`` + ``mbt_run_id``); log_run logs into it and ends it. Idempotent
per mbt run: a retried ``log_run`` reuses the finished MLflow run it already logged and replaces
one that holds a half-logged model.
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
STATUS_TAG = "mbt_status"
STATUS_PASSED = "passed"
STATUS_FAILED_CRITERIA = "failed_criteria"
BATCH = 100  # MLflow accepts at most 100 params per log_batch


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


def run_params(config: dict, meta: dict, preprocessor: dict, metrics: dict) -> dict[str, str]:
    """Every choice that shaped the model, as MLflow params (string values)."""
    from airflow_mbt.ml.columns import as_params

    training = config.get("training") or {}
    split = dict(training.get("split") or {})
    split.setdefault("method", "random")
    split.setdefault("test_size", 0.2)
    if split["method"] == "time":  # ordered by time: neither a seed nor stratification applies
        split.pop("seed", None)
        split.pop("stratify", None)
    else:
        split.setdefault("seed", 42)
        split.setdefault("stratify", True)
    params = {"framework": meta["framework"], "problem_type": meta["problem_type"],
              **flatten(meta.get("framework_config") or {}), **flatten(split, "split."),
              **flatten(preprocessor.get("settings") or {}, "preprocessing."),
              "preprocessing.custom_transforms": json.dumps(preprocessor.get("custom_transforms") or []),
              "rows.train": str(meta.get("train_rows")), "rows.test": str(metrics.get("n_test")),
              "features.count": str(len(preprocessor.get("output_columns") or [])),
              **as_params(preprocessor.get("columns") or [])}
    for name, count in (meta.get("rows_removed") or {}).items():
        # MLflow param names allow no brackets: training.filters[0] -> training.filters.0
        params["rows.removed." + name.replace("[", ".").replace("]", "")] = str(count)
    for part, balance in (("train", meta.get("class_balance")), ("test", metrics.get("class_balance"))):
        for cls, share in (balance or {}).items():
            params[f"class_balance.{part}.{cls}"] = f"{share:.6g}"
    if meta.get("threshold") is not None:
        params["threshold"] = f"{meta['threshold']:.6g}"
        if meta.get("threshold_rule"):
            params["threshold.rule"] = str(meta["threshold_rule"])
    return params


def metric_values(metrics: dict) -> dict[str, float]:
    """The test-set metrics that have a value, plus ``cv_<metric>_mean|std`` when CV ran."""
    from airflow_mbt.ml.cv import as_metrics

    values: dict[str, Any] = metrics.get("metrics") or {}
    return {**{k: float(v) for k, v in values.items() if v is not None}, **as_metrics(metrics.get("cv"))}


def _log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    from airflow_mbt.redaction import redact

    items = [Param(k, redact(str(v))) for k, v in params.items()]  # no secret value reaches MLflow
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i:i + BATCH])


def _log_common(client, run_id: str, ctx, meta: dict, preprocessor: dict, metrics: dict,
                plots_dir: Path | None) -> None:
    """Params, the primary-metric tag and the artifacts shared by passed and failed runs."""
    from mlflow.entities import RunTag

    from airflow_mbt.ml.columns import format_table

    _log_params(client, run_id, run_params(ctx.config, meta, preprocessor, metrics))
    client.log_batch(run_id, tags=[RunTag("primary_metric", str(metrics.get("primary_metric", "")))])
    if plots_dir is not None and Path(plots_dir).is_dir() and any(Path(plots_dir).iterdir()):
        client.log_artifacts(run_id, str(plots_dir), "plots")
    client.log_dict(run_id, preprocessor, "preprocessor.json")
    plan = preprocessor.get("columns") or []
    client.log_dict(run_id, {"columns": plan}, "column_plan.json")
    if plan:
        client.log_text(run_id, format_table(plan) + "\n", "column_plan.txt")
    client.log_dict(run_id, metrics, "metrics.json")
    client.log_text(run_id, ctx.manifest.to_json(), "manifest.json")


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


def base_tags(ctx, meta: dict, status: str) -> dict[str, str]:
    manifest = ctx.manifest
    project = ctx.config.get("project") or {}
    tags = {"pipeline_name": manifest.name, "mbt_run_id": ctx.run_id, "target": manifest.target_name,
            "owner": str(project.get("owner") or ""), "mbt_manifest_hash": manifest.content_hash,
            "framework": meta["framework"], "problem_type": meta["problem_type"], STATUS_TAG: status}
    if project.get("tags"):
        tags["project_tags"] = ",".join(map(str, project["tags"]))
    run = getattr(ctx, "run", None)
    for key, value in (run.to_json() if run else {}).items():  # mbt_logical_date, mbt_interval_start...
        if value is not None and key != "run_id":
            tags[f"mbt_{key}"] = str(value)
    from airflow_mbt.redaction import redact_obj

    redacted: dict[str, str] = redact_obj(tags)  # no secret value reaches MLflow
    return redacted


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

    experiment_name = experiment_name_of(ctx)
    meta = read_meta(model_dir)
    with store.session(ctx.runtime) as target:
        try:
            client = store.client(target)
            out = _log(ctx, client, target, experiment_name, meta, model_dir, preprocessor, metrics, plots_dir)
            registration = (ctx.config.get("training") or {}).get("registration")
            if registration:
                out.update(register_version(ctx, client, registration["model_name"], out, meta, metrics))
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    ctx.log.info("logged MLflow run %s in experiment %r (%s)", out["run_id"], experiment_name, out["tracking_uri"])
    return out


def _log(ctx, client, target, experiment_name: str, meta: dict, model_dir: Path, preprocessor: dict,
         metrics: dict, plots_dir: Path | None) -> dict:
    import mlflow
    from mlflow.entities import Metric

    from airflow_mbt.tracking.pyfunc import (MODEL_DIR, PREPROCESSOR, MBTPyfuncModel, pip_requirements,
                                             transform_code)

    manifest = ctx.manifest
    experiment_id = ensure_experiment(client, experiment_name, target.artifact_location)
    previous = find_run(client, experiment_id, manifest.name, ctx.run_id)
    tags = base_tags(ctx, meta, STATUS_PASSED)
    if previous is not None and previous.info.status == "FINISHED" and MODEL_URI_TAG in previous.data.tags:
        ctx.log.info("MLflow run %s already logged for %s (retry): reusing it", previous.info.run_id, ctx.run_id)
        return describe(previous, experiment_name, target.tracking_uri)
    run_id = _open_run(client, previous, experiment_id, f"{manifest.name}-{ctx.run_id}", tags)
    try:
        _log_common(client, run_id, ctx, meta, preprocessor, metrics, plots_dir)
        with tempfile.TemporaryDirectory(prefix="mbt-log-") as tmp:
            pre_path = Path(tmp) / "preprocessor.json"
            pre_path.write_text(json.dumps(preprocessor, indent=2, sort_keys=True), encoding="utf-8")
            code = transform_code(preprocessor.get("custom_transforms") or [], ctx.code_dir, Path(tmp) / "code")
            with store.fluent_tracking_uri(target.tracking_uri), mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME, python_model=MBTPyfuncModel(),
                    artifacts={MODEL_DIR: str(model_dir), PREPROCESSOR: str(pre_path)}, code_paths=code or None,
                    pip_requirements=pip_requirements(meta["framework"]))
                mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
            if (Path(model_dir) / "reference_stats.json").is_file():  # drift reference, also beside the model
                client.log_artifact(run_id, str(Path(model_dir) / "reference_stats.json"))
        # metrics after the model so they are linked to it (MLflow 3 LoggedModel) as well as the run
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0, model_id=info.model_id)
                                          for k, v in metric_values(metrics).items()])
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return describe(client.get_run(run_id), experiment_name, target.tracking_uri)


def version_tags(ctx, meta: dict, metrics: dict) -> dict[str, str]:
    """Tags of a registered model version: mbt run id, pipeline, manifest hash, logical date, metrics."""
    tags = {k: v for k, v in base_tags(ctx, meta, STATUS_PASSED).items()
            if k in ("pipeline_name", "mbt_run_id", "target", "mbt_manifest_hash", "mbt_logical_date", "framework")}
    tags.update({f"metric.{k}": f"{v:.6g}" for k, v in metric_values(metrics).items()})
    return tags


def register_version(ctx, client, name: str, out: dict, meta: dict, metrics: dict) -> dict:
    """Register the run's model as a version of ``name`` (idempotent per run), tag it and point the
    ``challenger`` alias at it; returns ``{"model_name", "model_version"}`` for ``mlflow_run``."""
    from airflow_mbt.tracking import registry

    uri = out["model_uri"]
    model_id = uri[len("models:/"):] if uri.startswith("models:/m-") else None
    with store.fluent_tracking_uri(client.tracking_uri):  # MLflow resolves models:/ through the global URI
        version = registry.register(client, name, uri, out["run_id"], version_tags(ctx, meta, metrics),
                                    model_id=model_id)
    registry.move_alias(client, name, registry.CHALLENGER, version.version)
    ctx.log.info("registered %s version %s (alias %s)", name, version.version, registry.CHALLENGER)
    return {"model_name": name, "model_version": str(version.version)}


def _open_run(client, previous, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """The run ``load_data`` opened for this pipeline run (``tracking.pipeline_run``), tagged
    ``tags``: also when a failed step ended it FAILED (``pipeline_run.fail``) and a retry got here,
    which reopens it. A new run when there is none, or when the one found already ended otherwise
    (an earlier try of log_run itself)."""
    from mlflow.entities import RunTag

    from airflow_mbt.tracking.pipeline_run import FAILED_STEP_TAG, STATUS_FAILED

    reopen = (previous is not None and previous.info.status == "FAILED"
              and previous.data.tags.get(STATUS_TAG) == STATUS_FAILED)
    open_run = previous is not None and (previous.info.status == "RUNNING" or reopen)
    if open_run and MODEL_URI_TAG not in previous.data.tags:
        if reopen:
            client.update_run(previous.info.run_id, status="RUNNING")
            client.delete_tag(previous.info.run_id, FAILED_STEP_TAG)
        client.log_batch(previous.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        return str(previous.info.run_id)
    if previous is not None:
        client.delete_run(previous.info.run_id)
    return str(client.create_run(experiment_id, run_name=name, tags=tags).info.run_id)


def experiment_name_of(ctx) -> str:
    project = ctx.config.get("project") or {}
    return (project.get("experiment_name") or ctx.manifest.pipeline.experiment_name
            or ctx.runtime.section("mlflow").get("experiment_name") or ctx.manifest.name)


def log_failed_run(ctx, model_dir: Path, preprocessor: dict, metrics: dict, plots_dir: Path | None) -> dict:
    """Keep a run that failed its validation criteria (see the module docstring); returns
    ``{"run_id", "experiment_id", "experiment_name", "tracking_uri"}``. MLflow failures become
    ``InfraError("MLflow", ...)``."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from airflow_mbt.ml.scoring import read_meta

    experiment_name = experiment_name_of(ctx)
    meta = read_meta(model_dir)
    with store.session(ctx.runtime) as target:
        client = store.client(target)
        try:
            experiment_id = ensure_experiment(client, experiment_name, target.artifact_location)
            previous = find_run(client, experiment_id, ctx.manifest.name, ctx.run_id)
            run_id = _open_run(client, previous, experiment_id, f"{ctx.manifest.name}-{ctx.run_id}",
                               base_tags(ctx, meta, STATUS_FAILED_CRITERIA))
            try:
                _log_common(client, run_id, ctx, meta, preprocessor, metrics, plots_dir)
                stamp = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0)
                                                  for k, v in metric_values(metrics).items()])
            finally:
                client.set_terminated(run_id, "FAILED")
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
        uri = store.redact(target.tracking_uri)
    return {"run_id": run_id, "experiment_id": experiment_id, "experiment_name": experiment_name, "tracking_uri": uri}
