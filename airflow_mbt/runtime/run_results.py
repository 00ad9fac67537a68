"""``StepResult`` and ``RunResults``: the record of a step and of one run (``run_results.json``).

JSON (``schema_version`` 1)::

    {"schema_version": 1, "pipeline", "run_id", "target", "status", "started_at", "finished_at",
     "seconds", "mlflow_run_id", "run": RunContext.to_json() | null,
     "steps": [{"name", "status", "seconds", "error"?, "outputs"?, "rows_removed"?, "summary"?,
                "peak_rss_mib"?}]}

``rows_removed`` (additive): the rows each row filter of the step removed
(``{"training.filters[0]": 12, "training.drop_duplicates": 3}``), only when the step has filters.
``summary`` (additive) is what a step reports beyond its artifacts: ``promote``'s decision and both
models' metrics, ``load_model``'s resolved model version. ``peak_rss_mib`` (additive): the peak
resident memory of the process that ran the step, read when the step ended (``ru_maxrss``). Under
Airflow each task is its own process, so it is the task's peak; in one ``mbt run`` process it is
the peak of the run so far.

``run`` (additive, same schema_version) records what the run covered: logical_date, ds,
interval_start, interval_end, run_type, try_number, dag_id, airflow_run_id.

``StepResult.to_xcom()`` is what an operator returns: ``{"step", "name", "status", "seconds",
"outputs", "run_id", "peak_rss_mib"?}``. A reader that meets another ``schema_version`` raises an input error
naming both versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_mbt.constants import StepStatus
from airflow_mbt.errors import MBTInputError
from airflow_mbt._fs import atomic_write_bytes

SCHEMA_VERSION = 1


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_path(project_dir: Path, pipeline: str) -> Path:
    return Path(project_dir) / "target" / pipeline / "run_results.json"


@dataclass
class StepResult:
    name: str
    status: StepStatus
    seconds: float = 0.0
    run_id: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # artifact name -> URI
    error: str | None = None
    rows_removed: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # what the step decided (e.g. promote), optional
    peak_rss_mib: float | None = None  # the process's peak RSS when the step ended

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": str(self.status), "seconds": self.seconds}
        if self.error is not None:
            out["error"] = self.error
        if self.summary:
            out["summary"] = dict(self.summary)
        if self.status == StepStatus.SUCCESS:
            out["outputs"] = dict(self.outputs)
        if self.rows_removed:
            out["rows_removed"] = dict(self.rows_removed)
        if self.peak_rss_mib is not None:
            out["peak_rss_mib"] = self.peak_rss_mib
        return out

    def to_xcom(self) -> dict[str, Any]:
        out = {"step": self.name, "name": self.name, "status": str(self.status), "seconds": self.seconds,
               "outputs": dict(self.outputs), "run_id": self.run_id}
        if self.summary:
            out["summary"] = dict(self.summary)
        if self.peak_rss_mib is not None:
            out["peak_rss_mib"] = self.peak_rss_mib
        return out


@dataclass
class RunResults:
    pipeline: str
    run_id: str
    target: str
    status: StepStatus = StepStatus.RUNNING
    started_at: str = field(default_factory=utc_now_iso)
    finished_at: str | None = None
    seconds: float | None = None
    mlflow_run_id: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    run: dict[str, Any] | None = None  # RunContext.to_json()

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "pipeline": self.pipeline, "run_id": self.run_id,
                "target": self.target, "status": str(self.status), "started_at": self.started_at,
                "finished_at": self.finished_at, "seconds": self.seconds, "mlflow_run_id": self.mlflow_run_id,
                "run": self.run, "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "run_results.json") -> RunResults:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MBTInputError(f"run_results schema_version {version!r} is not supported: this mbt reads "
                                f"schema_version {SCHEMA_VERSION}", file=source, field="schema_version",
                                hint="read it with the mbt version that wrote it")
        steps = [StepResult(name=s["name"], status=StepStatus(s["status"]), seconds=s.get("seconds") or 0.0,
                            run_id=data["run_id"], outputs=dict(s.get("outputs") or {}), error=s.get("error"),
                            rows_removed=dict(s.get("rows_removed") or {}),
                            summary=dict(s.get("summary") or {}), peak_rss_mib=s.get("peak_rss_mib"))
                 for s in data.get("steps") or []]
        return cls(pipeline=data["pipeline"], run_id=data["run_id"], target=data["target"],
                   status=StepStatus(data["status"]), started_at=data["started_at"],
                   finished_at=data.get("finished_at"), seconds=data.get("seconds"),
                   mlflow_run_id=data.get("mlflow_run_id"), steps=steps, run=data.get("run"))

    def write(self, path: Path) -> Path:
        return write(path, self.to_json())


def write(path: Path, results: dict[str, Any]) -> Path:
    """Write the results atomically, every registered secret redacted."""
    from airflow_mbt.redaction import redact_obj

    text = json.dumps(redact_obj(results), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(Path(path), text.encode("utf-8"))
    return Path(path)


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data
