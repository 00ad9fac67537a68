"""Run ids: ``run_YYYYMMDD_HHMMSS_<16 hex>`` (UTC second + 64 bits).

A run id names one execution of a pipeline and is the second segment of every storage key of
that run (``<pipeline>/<run_id>/<step>/...``), so it is restricted to ``[A-Za-z0-9_.-]``.
Locally it is new per ``mbt run`` (64 random bits); under Airflow it is derived from the DAG run,
``sha256(dag_id, airflow run_id)`` truncated to 64 bits, so every task (and every retry) of that
DAG run shares it. The timestamp prefix keeps ids readable and sortable; the 64 bits make a
collision negligible (docs/CONTRACTS.md §3: about 1e-8 for 10,000 pipelines x 10 years of daily
runs all at the same second, and keys are namespaced by pipeline on top of that).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone

from airflow_mbt.errors import MBTInputError

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
SUFFIX_HEX = 16  # 64 bits


def _utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # naive values are taken to be UTC already
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _stamp(moment: datetime) -> str:
    return f"run_{moment:%Y%m%d_%H%M%S}"


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: the UTC second of ``now`` and 64 random bits."""
    return f"{_stamp(_utc(now or datetime.now(timezone.utc)))}_{secrets.token_hex(SUFFIX_HEX // 2)}"


def run_id_from_airflow(dag_id: str, airflow_run_id: str, when: datetime | str | None) -> str:
    """The run id of an Airflow DAG run: its logical date (or ``run_after`` when the run has no
    logical date) plus the first 64 bits of ``sha256(dag_id + "\\n" + run_id)``.

    Deterministic, so all tasks and retries of one DAG run share it.
    """
    if not dag_id or not airflow_run_id:
        raise MBTInputError("dag_id and the Airflow run_id are required to derive an mbt run id")
    if when is None:
        raise MBTInputError("the DAG run has neither a logical date nor run_after",
                            hint="pass logical_date or run_after of the DAG run")
    digest = hashlib.sha256(f"{dag_id}\n{airflow_run_id}".encode()).hexdigest()
    return f"{_stamp(_utc(when))}_{digest[:SUFFIX_HEX]}"


def validate_run_id(value: object, field: str = "run_id") -> str:
    """Return ``value`` when it is a safe run id (it becomes part of storage keys)."""
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise MBTInputError(f"invalid run id {value!r}", field=field,
                            hint="use letters, digits, '_', '.' and '-' only (at most 128 characters, "
                                 "not starting with '.' or '-'), e.g. run_20260101_120000_0123456789abcdef")
    return value
