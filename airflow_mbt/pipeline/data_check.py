"""Validate-time checks that read a little data or ask the tracking store (stdlib only, so
``mbt validate`` stays light).

Contract:
- ``check_labels(pipeline, csv_path)``: the label column of the local sample CSV (the first
  ``SAMPLE_ROWS`` rows, ``csv`` module) must hold only declared ``classes`` (compared as
  case-insensitive text: YAML ``true`` and CSV ``True`` are one label), else an input error at ``classes`` naming the
  unexpected values; empty labels are an input error at ``label_column`` unless ``training.filters``
  may remove them. A declared class missing from the sample is a note (a sample proves nothing).
- ``check_model_run(pipeline, target_section, root)``: a serving pipeline's ``run_id`` must exist
  (and not be deleted) in the target's tracking store when it can be asked quickly: an
  ``http(s)://`` MLflow server (REST ``runs/get``, ``TIMEOUT`` seconds) or a ``sqlite:///`` file.
  Missing is an input error at ``serving.model_source.run_id``; unreachable, unauthorised or an
  unknown store kind is a note, never an error. Returns the notes.
"""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SAMPLE_ROWS = 5000
TIMEOUT = 3.0
RUN_ID = ("serving", "model_source", "run_id")


def _sample(path: Path, column: str) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if column not in (reader.fieldnames or []):
                return None
            return [row.get(column) or "" for _, row in zip(range(SAMPLE_ROWS), reader)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_labels(pipeline: Any, csv_path: Path) -> list[str]:
    cfg, doc = pipeline.config, pipeline.doc
    target = cfg["training"]["schema"]["target"]
    label = target["label_column"]
    values = _sample(csv_path, label)
    if not values:
        return []
    base = ("training", "schema", "target")
    empty = sum(1 for v in values if not v.strip())
    if empty and not cfg["training"].get("filters"):
        raise doc.error(base + ("label_column",),
                        f"{empty} of the first {len(values)} rows of {csv_path.name} have an empty {label!r}",
                        hint=f"remove unlabeled rows with training.filters: [\"{label} IS NOT NULL\"]")
    classes = target.get("classes")
    if classes is None:
        return []
    declared = {_text(c).lower() for c in classes}
    seen = {v.strip() for v in values if v.strip()}
    unexpected = sorted(v for v in seen if v.lower() not in declared)
    if unexpected:
        shown = ", ".join(repr(v) for v in unexpected[:5])
        raise doc.error(base + ("classes",), f"{csv_path.name} has {label} values {shown} that are not in "
                                             f"classes {classes}",
                        hint="list every label value in classes (quote yes/no/on/off), or filter the rows out")
    absent = sorted(declared - {v.lower() for v in seen})
    if absent:
        return [f"classes {', '.join(absent)} do not occur in the first {len(values)} rows of {csv_path.name}"]
    return []


def _sqlite_path(uri: str, root: Path) -> Path:
    raw = uri[len("sqlite:///"):]
    path = Path(raw)
    return path if path.is_absolute() else root / path


def _run_state(uri: str, run_id: str, root: Path) -> str | None:
    """``"active"``, ``"deleted"``, ``"missing"``, or None when the store cannot be asked."""
    if uri.startswith("sqlite:///"):
        import sqlite3

        path = _sqlite_path(uri, root)
        if not path.is_file():
            return None
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT)
            try:
                row = con.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return None
        return "missing" if row is None else ("deleted" if row[0] == "deleted" else "active")
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/api/2.0/mlflow/runs/get?" + urllib.parse.urlencode({"run_id": run_id})
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:  # noqa: S310 - the target's MLflow URL
                info = json.loads(resp.read().decode("utf-8")).get("run", {}).get("info", {})
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return "missing"
            try:
                body = json.loads(exc.read().decode("utf-8"))
            except (ValueError, OSError):
                return None
            return "missing" if body.get("error_code") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") \
                else None
        except (OSError, ValueError):
            return None
        return "deleted" if info.get("lifecycle_stage") == "deleted" else "active"
    return None


def check_model_run(pipeline: Any, target_section: dict, root: Path) -> list[str]:
    run_id = ((pipeline.config.get("serving") or {}).get("model_source") or {}).get("run_id")
    uri = (target_section.get("mlflow") or {}).get("tracking_uri")
    if not isinstance(run_id, str) or not run_id.strip():
        return []
    if not isinstance(uri, str):
        return ["the model's run id was not checked (the tracking URI is a secret, resolved at run time)"]
    shown = uri.split("@")[-1] if "@" in uri else uri
    state = _run_state(uri, run_id.strip(), root)
    if state is None:
        return [f"the model's run id was not checked: MLflow at {shown} did not answer within {TIMEOUT:g} s"]
    if state == "missing":
        raise pipeline.doc.error(RUN_ID, f"MLflow run {run_id!r} does not exist at {shown}",
                                 hint="copy the run id of a finished training run from the MLflow UI "
                                      "(or the `mbt run` output)")
    if state == "deleted":
        raise pipeline.doc.error(RUN_ID, f"MLflow run {run_id!r} was deleted", hint="use a run that exists")
    return []
