"""The MLflow Model Registry side of mbt: register a trained run's model, read and move aliases.

Contract:
- ``register(client, name, model_uri, run_id, tags)`` creates the registered model when missing
  and one version for the MLflow run ``run_id``; idempotent per run (a retried ``log_run`` finds the
  version it already created by ``run_id`` and returns it). The version carries ``tags``.
- ``alias_version(client, name, alias)`` is the version an alias points to, ``None`` when the
  model or the alias does not exist. ONE registry call.
- ``resolve(runtime, name, alias)`` is what serving calls once per run: ``{"model_name", "alias",
  "version", "run_id"}``; an unknown model/alias is an ``MBTInputError`` naming
  ``serving.model_source``. ``CALLS`` counts the registry calls it made (tests and benchmarks).
- ``move_alias(client, name, alias, version)`` points ``alias`` at ``version``.

MLflow errors other than "does not exist" become ``InfraError("MLflow", ...)`` at the callers.
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.tracking import store

CHALLENGER = "challenger"
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
CALLS = {"resolve": 0}  # registry calls made by resolve() in this process


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def register(client: Any, name: str, model_uri: str, run_id: str, tags: dict[str, str],
             model_id: str | None = None) -> Any:
    """The model version of MLflow run ``run_id`` under ``name`` (created once; see module doc)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="registered by airflow-mbt training pipelines")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = client.search_model_versions(f"name = '{_quote(name)}' and run_id = '{_quote(run_id)}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version))
    else:
        version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
    for key, value in tags.items():
        if (version.tags or {}).get(key) != value:
            client.set_model_version_tag(name, version.version, key, value)
    return version


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The version ``alias`` points to (``None``: no such model or alias). One registry call."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in MISSING:
            return None
        raise


def move_alias(client: Any, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, str(version))


def resolve(runtime: Any, name: str, alias: str, field: str = "serving.model_source") -> dict[str, Any]:
    """Resolve ``name@alias`` once (see module doc)."""
    from mlflow.exceptions import MlflowException

    with store.session(runtime) as target:
        client = store.client(target)
        CALLS["resolve"] += 1
        try:
            version = alias_version(client, name, alias)
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    if version is None:
        raise MBTInputError(f"registered model {name!r} has no alias {alias!r} at {store.redact(target.tracking_uri)}",
                            field=field, hint=f"train the pipeline registering {name!r} (training.registration) so "
                                              f"its promote step sets {alias!r}, or set the alias in the MLflow UI")
    return {"model_name": name, "alias": alias, "version": str(version.version), "run_id": version.run_id}
