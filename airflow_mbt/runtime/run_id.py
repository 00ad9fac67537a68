"""Run ids: ``run_YYYYMMDD_HHMMSS_xxxx`` (UTC).

A run id names one execution of a pipeline and prefixes every storage key of that run, so it
is restricted to ``[A-Za-z0-9_.-]``. Locally it is new per ``mbt run``; under Airflow it is derived
from the DAG run so that every task (and every retry of a task) of that DAG run shares it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import datetime, timezone

from airflow_mbt.errors import MBTInputError

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

_issued_lock = threading.Lock()
_issued: dict[str, set[str]] = {}  # second stamp -> suffixes issued by this process


def _utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # naive values are taken to be UTC already
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _stamp(moment: datetime) -> str:
    return f"run_{moment:%Y%m%d_%H%M%S}"


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id for the current UTC second with 4 random hex characters.

    Never repeats within one process (suffixes already issued in the same second are skipped);
    across processes two ids of the same second collide with probability 1/65536.
    """
    stamp = _stamp(_utc(now or datetime.now(timezone.utc)))
    with _issued_lock:
        used = _issued.setdefault(stamp, set())
        if len(_issued) > 8:  # forget old seconds
            for old in sorted(_issued)[:-8]:
                if old != stamp:
                    del _issued[old]
        if len(used) >= 0x10000:
            raise RuntimeError("more than 65536 run ids requested within one second")
        while True:
            suffix = secrets.token_hex(2)
            if suffix not in used:
                used.add(suffix)
                return f"{stamp}_{suffix}"


def run_id_from_airflow(dag_id: str, airflow_run_id: str, when: datetime | str) -> str:
    """The run id of an Airflow DAG run: its logical date (or ``run_after`` when the run has no
    logical date) plus 4 hex characters of ``sha1(dag_id, run_id)``.

    Deterministic, so all tasks and retries of one DAG run share it.
    """
    if not dag_id or not airflow_run_id:
        raise MBTInputError("dag_id and the Airflow run_id are required to derive an mbt run id")
    if when is None:
        raise MBTInputError("the DAG run has neither a logical date nor run_after",
                            hint="pass logical_date or run_after of the DAG run")
    digest = hashlib.sha1(f"{dag_id}\n{airflow_run_id}".encode("utf-8")).hexdigest()
    return f"{_stamp(_utc(when))}_{digest[:4]}"


def validate_run_id(value: object, field: str = "run_id") -> str:
    """Return ``value`` when it is a safe run id (it becomes part of storage keys)."""
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise MBTInputError(f"invalid run id {value!r}", field=field,
                            hint="use letters, digits, '_', '.' and '-' only (at most 128 characters, "
                                 "not starting with '.' or '-'), e.g. run_20260101_120000_ab12")
    return value
