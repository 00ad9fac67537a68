"""Where MLflow lives for a target: tracking URI and artifact location, resolved from the target's
``mlflow`` section (``tracking_uri`` / ``conn_id`` / dev default), plus scoped use of the MLflow
client so that no process-global state leaks out of a step.

Dev default: ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts in ``<project>/mlruns/artifacts``.
Relative sqlite paths and relative artifact locations resolve against the project directory.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from airflow_mbt.errors import InfraError

DEFAULT_DB = "mlruns/mlflow.db"
DEFAULT_ARTIFACTS = "mlruns/artifacts"
SQLITE = "sqlite:///"
PROBE_TIMEOUT = 10


@dataclass(frozen=True)
class TrackingTarget:
    tracking_uri: str
    artifact_location: str | None
    conn_id: str | None = None


def _local_uri(value: str, runtime) -> str:
    """A relative filesystem location as an absolute ``file://`` URI; URIs pass through."""
    if "://" in value or value.startswith("mlflow-artifacts:"):
        return value
    return runtime.path(value).resolve().as_uri()


def resolve(runtime) -> TrackingTarget:
    """The tracking target of ``runtime``'s ``mlflow`` section (secrets resolved, never logged)."""
    section = runtime.section("mlflow")
    conn_id = section.get("conn_id")
    uri = section.get("tracking_uri")
    if uri:
        uri = str(uri)
        if uri.startswith(SQLITE):
            db = uri[len(SQLITE):]
            uri = SQLITE + str(runtime.path(db).resolve()) if not db.startswith("/") else uri
    elif conn_id:
        from airflow_mbt.hooks.mlflow import MLflowHook

        uri = MLflowHook(conn_id).get_tracking_uri()
    else:
        uri = SQLITE + str(runtime.path(DEFAULT_DB).resolve())
    location = section.get("artifact_location")
    if location:
        location = _local_uri(str(location), runtime)
    elif uri.startswith(SQLITE):
        location = (Path(uri[len(SQLITE):]).parent / "artifacts").as_uri()
    if uri.startswith(SQLITE):
        Path(uri[len(SQLITE):]).parent.mkdir(parents=True, exist_ok=True)
    return TrackingTarget(tracking_uri=uri, artifact_location=location, conn_id=conn_id)


def redact(uri: str) -> str:
    """The URI without any ``user:password@`` part (for logs, messages and artifacts)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _probe(uri: str) -> None:
    """Fail fast (``InfraError``) when an HTTP tracking server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT) as resp:
            resp.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise InfraError("MLflow", f"{redact(uri)} answered HTTP {exc.code}") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise InfraError("MLflow", f"{redact(uri)} is unreachable ({reason})",
                         hint="check the target's mlflow section / the mbt_mlflow connection") from None


def local_database(runtime) -> Path | None:
    """The sqlite file a target tracks to (the dev default included), ``None`` for a server;
    unlike ``resolve`` it creates nothing."""
    section = runtime.section("mlflow")
    uri = section.get("tracking_uri")
    if not uri:
        return None if section.get("conn_id") else runtime.path(DEFAULT_DB).resolve()
    uri = str(uri)
    return runtime.path(uri[len(SQLITE):]).resolve() if uri.startswith(SQLITE) else None


@contextmanager
def session(runtime) -> Iterator[TrackingTarget]:
    """Resolve the target, check the server answers, and (with a ``conn_id``) put the
    connection's credentials in the MLflow client environment for the duration of the block."""
    target = resolve(runtime)
    _probe(target.tracking_uri)
    if target.conn_id:
        from airflow_mbt.hooks.mlflow import MLflowHook

        creds = MLflowHook(target.conn_id).credentials()
    else:
        creds = nullcontext()
    with creds:
        yield target


@contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for the block, then restore the previous global URI
    and ``MLFLOW_TRACKING_URI`` exactly as they were."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved_global = utils._tracking_uri
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_global)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def client(target: TrackingTarget):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=target.tracking_uri)
