"""Runtime objects handed to steps: ``TargetRuntime`` (resolved target: secrets, connections,
plugins) and ``StepContext`` (one step of one run).

Secrets are resolved only here, at run time, and are never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_mbt import redaction
from airflow_mbt.constants import PluginKind
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import SECRET_KEY, Manifest, ManifestStep, TargetSpec, is_secret_ref, plain

log = logging.getLogger("airflow_mbt")


def resolve_secrets(value: Any, provider: str = "env", where: str = "") -> Any:
    """Replace every ``{"$secret": NAME}`` in a nested structure by its value.

    Provider ``env`` reads the environment variable NAME (the only provider for now).
    """
    if is_secret_ref(value):
        name = value[SECRET_KEY]
        if provider != "env":
            raise MBTInputError(f"unknown secrets provider {provider!r}", field="secrets.provider",
                                hint="use provider: env")
        if name not in os.environ:
            raise MBTInputError(f"secret {name!r} is not set", field=where or None,
                                hint=f"export {name}=... in the environment of the step")
        secret = os.environ[name]
        redaction.register(secret, name)  # masked in every message, log, result and MLflow value
        return secret
    if isinstance(value, dict):
        return {k: resolve_secrets(v, provider, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, provider, where) for v in value]
    return value


@dataclass
class TargetRuntime:
    """The manifest's target, made usable: plugin instances, connections, resolved secrets.

    ``project_dir`` anchors relative paths (``./local_artifacts``, ``./sample_data``...).
    ``code_dir`` is where the project code (``lib/``, custom transforms) is imported from: the
    release's code fetched by the invocation path when the project's differs
    (``manifests.code_archive``), else ``None`` = ``project_dir``; ``code_root`` is the one to use.
    A context manager: leaving the block closes every plugin (frameworks, connections).
    """

    target: TargetSpec
    project_dir: Path
    code_dir: Path | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.target, TargetSpec):  # a plain dict, as tests and tools build it
            self.target = TargetSpec.from_json(dict(self.target))
        self.project_dir = Path(self.project_dir)
        self.code_dir = Path(self.code_dir) if self.code_dir is not None else None

    @classmethod
    def from_manifest(cls, manifest: Manifest, project_dir: Path | None = None,
                      code_dir: Path | None = None) -> TargetRuntime:
        return cls(target=manifest.target, project_dir=Path(project_dir or os.getcwd()).resolve(), code_dir=code_dir)

    @property
    def code_root(self) -> Path:
        """The folder the project code is imported from (``code_dir``, else ``project_dir``)."""
        return self.code_dir if self.code_dir is not None else self.project_dir

    def __enter__(self) -> TargetRuntime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def secrets_provider(self) -> str:
        return self.target.secrets_provider

    def section(self, key: str) -> dict[str, Any]:
        """A target section (``storage``, ``data_connector``, ``mlflow``, ``h2o``, ...) with
        secrets resolved. Never log the result."""
        raw = self.target.raw.get(key) or {}
        return resolve_secrets(plain(raw), self.secrets_provider, key)  # type: ignore[no-any-return]

    def path(self, value: str | os.PathLike[str]) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.project_dir / p)

    def connection(self, conn_id: str) -> Any:
        """An Airflow ``Connection`` by id (works from ``AIRFLOW_CONN_<ID>`` without a DB)."""
        from airflow_mbt.connections import get_connection

        return get_connection(conn_id)

    def _plugin(self, kind: PluginKind, section_key: str) -> Any:
        if section_key not in self._cache:
            from airflow_mbt.plugins import registry

            sec = self.section(section_key)
            if not sec.get("type"):
                raise MBTInputError(f"target {self.name!r} has no {section_key}.type",
                                    field=f"outputs.{self.name}.{section_key}.type")
            cls = registry.get(kind, sec["type"])
            self._cache[section_key] = cls(sec.get("config") or {}, self)
        return self._cache[section_key]

    def storage(self) -> Any:
        return self._plugin(PluginKind.STORAGE, "storage")

    def connector(self) -> Any:
        return self._plugin(PluginKind.DATA_CONNECTORS, "data_connector")

    def framework(self, name: str) -> Any:
        key = f"framework:{name}"
        if key not in self._cache:
            from airflow_mbt.plugins import registry

            self._cache[key] = registry.get(PluginKind.FRAMEWORKS, name)(self)
        return self._cache[key]

    def close(self) -> None:
        for obj in self._cache.values():
            for meth in ("close", "cleanup"):
                fn = getattr(obj, meth, None)
                if fn:
                    try:
                        fn()
                    except Exception:  # noqa: BLE001 - cleanup is best effort
                        log.warning("cleanup of %s failed", type(obj).__name__, exc_info=True)
        self._cache.clear()


@dataclass(frozen=True)
class RunContext:
    """Who runs this step and for what: the same fields under Airflow (from the task context)
    and locally (from ``mbt run`` / ``mbt step execute`` arguments). Datetimes are UTC-aware.

    ``interval_start``/``interval_end`` is the data interval the run covers (Airflow's data
    interval, or the cadence period ending at the logical date). ``template_values()`` is what
    ``{{ ds }}``, ``{{ logical_date }}``, ``{{ interval_start }}`` and ``{{ interval_end }}`` in a
    data source render to (as bind parameters, never SQL text)."""

    run_id: str
    try_number: int = 1
    logical_date: datetime | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    dag_id: str | None = None
    airflow_run_id: str | None = None
    run_type: str | None = None
    partition: int | None = None  # the partition of serving.partitions this step runs for (partitions.py)

    @property
    def ds(self) -> str | None:
        """The logical date as ``YYYY-MM-DD`` (Airflow's ``ds``)."""
        return self.logical_date.date().isoformat() if self.logical_date else None

    def template_values(self) -> dict[str, Any]:
        return {"ds": self.ds, "logical_date": self.logical_date, "interval_start": self.interval_start,
                "interval_end": self.interval_end}

    def to_json(self) -> dict[str, Any]:
        """For run_results.json and MLflow tags (ISO 8601 strings)."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"run_id": self.run_id, "try_number": self.try_number, "logical_date": iso(self.logical_date),
                "ds": self.ds, "interval_start": iso(self.interval_start), "interval_end": iso(self.interval_end),
                "dag_id": self.dag_id, "airflow_run_id": self.airflow_run_id, "run_type": self.run_type,
                **({"partition": self.partition} if self.partition is not None else {})}


@dataclass
class StepContext:
    """Everything one step execution needs."""

    manifest: Manifest
    step: ManifestStep
    run_id: str
    runtime: TargetRuntime
    work_dir: Path
    try_number: int = 1
    run: RunContext | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("airflow_mbt.step"))
    rows_removed: dict[str, int] = field(default_factory=dict)  # row filters: field -> rows removed
    summary: dict[str, Any] = field(default_factory=dict)  # small JSON facts for run_results and XCom

    @property
    def config(self) -> Mapping[str, Any]:
        """The compiled pipeline document (``training``, ``serving``, ``project``...)."""
        return self.manifest.config

    @property
    def project_dir(self) -> Path:
        """Anchors relative data paths (``./sample_data``); never the code's folder."""
        return self.runtime.project_dir

    @property
    def code_dir(self) -> Path:
        """Where custom transforms and ``lib/`` are imported from (``TargetRuntime.code_root``)."""
        return self.runtime.code_root

    def connector(self) -> Any:
        return self.runtime.connector()

    def storage(self) -> Any:
        return self.runtime.storage()

    def framework(self, name: str | None = None) -> Any:
        return self.runtime.framework(name or self.manifest.pipeline.framework)

    def table_writer(self, name: str) -> Any:
        """A ``table_stream.TableWriter`` for the table output ``name``: write frames chunk by
        chunk and return the writer as the output value (the executor closes and stores it)."""
        from airflow_mbt.runtime.table_stream import TableWriter

        return TableWriter(self.work_dir / ".mbt-tables" / self.step.name / f"{name}.parquet", name)

    def chunk_rows(self) -> int:
        """Rows per chunk for streamed tables (env ``MBT_CHUNK_ROWS``, default 250,000)."""
        from airflow_mbt.runtime.table_stream import default_chunk_rows

        return default_chunk_rows()

    @cached_property
    def step_dir(self) -> Path:
        d = self.work_dir / self.step.name
        d.mkdir(parents=True, exist_ok=True)
        return d
