"""Unit-tier test layout: tests mirror the package (``tests/unit/<package>/test_*.py``); the
shared helper modules (``airflow_manifests``, ``ml_pipeline_fixtures``, ``hostile_cases``) live
here and are importable from every sub-folder."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
