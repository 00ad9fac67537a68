"""``run_results.json``: the record of one ``mbt run`` (CONTRACTS section 3).

``{"pipeline", "run_id", "target", "status", "started_at", "finished_at", "seconds",
"mlflow_run_id", "steps": [{"name", "status", "seconds", "error"?, "outputs"?}]}``
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from airflow_mbt.runtime.files import atomic_write_bytes


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_path(project_dir: Path, pipeline: str) -> Path:
    return Path(project_dir) / "target" / pipeline / "run_results.json"


def write(path: Path, results: dict) -> Path:
    text = json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(Path(path), text.encode("utf-8"))
    return Path(path)


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
