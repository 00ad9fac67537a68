"""``reference_stats.json`` inside the model directory: the training reference that serving's
drift checks compare with (specs of ``ml/drift.py``; docs/monitoring.md).

Written in two parts so no step changes its inputs: ``train_model`` writes the feature specs of
the training split (``write``); ``evaluate`` puts the test set's prediction specs into its metrics
(``PREDICTIONS_KEY``) and ``log_run`` adds them to its own copy of the model directory
(``complete``) before the directory is logged to MLflow with the model. Serving gets the file with
the model directory it already downloads (``read``; ``None`` for a model trained before mbt
recorded it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_mbt.ml.drift import REFERENCE_FILE, reference_doc

PREDICTIONS_KEY = "prediction_reference"  # in evaluate's metrics: {"rows", "specs"}


def write(model_dir: Path, features: dict[str, dict[str, Any]], train_rows: int) -> Path:
    path = Path(model_dir) / REFERENCE_FILE
    path.write_text(json.dumps(reference_doc(features, None, train_rows, None), indent=1, sort_keys=True),
                    encoding="utf-8")
    return path


def read(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def complete(model_dir: Path, metrics: dict[str, Any]) -> bool:
    """Add the test-set prediction specs of ``metrics`` to the model directory's reference;
    ``False`` when either part is missing (nothing written)."""
    doc, part = read(model_dir), (metrics or {}).get(PREDICTIONS_KEY)
    if doc is None or not part:
        return False
    doc["predictions"], doc["test_rows"] = part["specs"], part["rows"]
    (Path(model_dir) / REFERENCE_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
    return True
