"""Re-export of the metric names and the ``validation_criteria`` grammar, which live at the bottom
of the import graph in ``airflow_mbt.constants``."""

from __future__ import annotations

from airflow_mbt.constants import CRITERION_OPERATORS as OPERATORS
from airflow_mbt.constants import DEFAULT_PRIMARY, METRICS, parse_criterion

__all__ = ["DEFAULT_PRIMARY", "METRICS", "OPERATORS", "parse_criterion"]
