"""Fetch a logged mbt model (model directory + preprocessor) back from an MLflow run id.

The custom-transform code logged with the model (``<model>/code/``, see ``pyfunc.transform_code``)
comes back inside the preprocessor as ``transform_code`` (``{relative path: source}``) with its
``transform_code_sha256``, so serving runs the code the model was trained with."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.tracking import store
from airflow_mbt.tracking.pyfunc import MODEL_DIR, PREPROCESSOR
from airflow_mbt.tracking.run_logger import MODEL_URI_TAG

FIELD = "serving.model_source.run_id"
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


class ModelFilesMissing(MBTInputError):
    """The run and its model are registered, but the model's files are not in the artifact store
    (deleted, or the tracking database outlived its artifact store). A retry cannot fix it."""


def _pyfunc_artifacts(local: Path) -> tuple[Path, Path]:
    """Paths of the model directory and preprocessor inside a downloaded pyfunc model (a download
    without an ``MLmodel`` file is ``ModelFilesMissing``, raised by the caller)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        declared = Model.load(str(local / "MLmodel")).flavors["python_function"].get("artifacts") or {}
    except (OSError, KeyError, MlflowException):
        declared = {}
    paths = {name: local / spec["path"] for name, spec in declared.items() if isinstance(spec, dict) and "path" in spec}
    return paths.get(MODEL_DIR, local / "missing"), paths.get(PREPROCESSOR, local / "missing")


def fetch(runtime, run_id: str, dest: Path) -> tuple[Path, dict]:
    """Download the model of MLflow run ``run_id`` into ``dest`` (created fresh); returns
    ``(model_dir, preprocessor)``. An unknown run is an ``MBTInputError`` naming the field."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    if not isinstance(run_id, str) or not run_id.strip() or "<" in run_id:
        raise MBTInputError(f"not an MLflow run id: {run_id!r}", field=FIELD,
                            hint="paste the run id of a training run (MLflow UI or `mbt run` output)")
    run_id = run_id.strip()
    with store.session(runtime) as target:
        client = store.client(target)
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in MISSING:
                raise MBTInputError(f"MLflow run {run_id!r} does not exist at {store.redact(target.tracking_uri)}",
                                    field=FIELD,
                                    hint="copy the run id of a finished training run from the MLflow UI") from None
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}") from None
        if run.info.lifecycle_stage == "deleted":
            raise MBTInputError(f"MLflow run {run_id!r} was deleted", field=FIELD)
        model_uri = run.data.tags.get(MODEL_URI_TAG)
        if not model_uri:
            raise MBTInputError(f"MLflow run {run_id!r} has no mbt model", field=FIELD,
                                hint="use the run id of an mbt training run whose log_run step succeeded")
        with tempfile.TemporaryDirectory(prefix="mbt-fetch-") as tmp:
            try:
                # download_artifacts(tracking_uri=...) still resolves models:/ through the global
                # URI, so scope the global one instead
                with store.fluent_tracking_uri(target.tracking_uri):
                    local = Path(download_artifacts(artifact_uri=model_uri, dst_path=tmp))
            except (MlflowException, OSError) as exc:
                code = getattr(exc, "error_code", type(exc).__name__)
                raise InfraError("MLflow", f"downloading {model_uri} of run {run_id} from "
                                           f"{store.redact(target.tracking_uri)} failed ({code})") from None
            if not (local / "MLmodel").is_file():
                raise ModelFilesMissing(f"the model files of MLflow run {run_id!r} ({model_uri}) are missing from "
                                        "its artifact store", field=FIELD,
                                        hint="the run's artifacts were deleted or the artifact store was reset: "
                                             "train and log a new model")
            source_dir, pre_file = _pyfunc_artifacts(local)
            if not source_dir.is_dir() or not pre_file.is_file():
                raise MBTInputError(f"MLflow run {run_id!r} holds a model that was not logged by mbt", field=FIELD)
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            model_dir = Path(shutil.copytree(source_dir, dest / "model"))
            pre = json.loads(pre_file.read_text(encoding="utf-8"))
            _embed_code(pre, local / "code")
            return model_dir, pre


def _embed_code(pre: dict, code_dir: Path) -> None:
    from airflow_mbt.ml.custom_transforms import code_hash, read_code

    specs = pre.get("custom_transforms") or []
    files = read_code(specs, code_dir) if specs and code_dir.is_dir() else {}
    if files:
        pre["transform_code"] = files
        pre["transform_code_sha256"] = code_hash(files)
