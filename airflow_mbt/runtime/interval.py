"""The data interval a run covers, and parsing of the dates that define it.

Contract (``resolve(run, manifest) -> RunContext``, called once by ``runtime.invocation.invoke``):

1. ``deployment.interval`` in the pipeline (``{cadence: daily}`` or ``{days: 1, hours: 0,
   minutes: 0}``) wins: the interval is that period ending at the logical date.
2. Otherwise an interval the caller passed (Airflow's ``data_interval_start/end``) is kept when
   start < end (a timetable with data intervals, e.g. ``CronDataIntervalTimetable``).
3. Otherwise (Airflow 3's default ``CronTriggerTimetable``: start == end or absent; ``mbt run``)
   it is the cadence period that ENDS at the logical date: the previous hour / day / 7 days /
   calendar month for ``hourly``/``daily``/``weekly``/``monthly``, and for a cron the previous fire
   time strictly before the logical date (croniter, which Airflow ships), in UTC.

A manual run (Airflow ``run_type`` ``manual``) first has its logical date aligned down to the
latest cadence fire time at or before it (``align``: ``daily`` -> midnight UTC of that day), so it
covers the same period, and replaces the same output partition, as the scheduled run of that
period: two manual runs on one day, or a manual run after that day's scheduled one, leave ONE
partition. Scheduled and backfill runs already sit on fire times (alignment changes nothing);
``mbt run --logical-date`` is taken as given.

A run without a logical date keeps no interval. All datetimes are UTC-aware.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_mbt.errors import MBTInputError

DATE_HINT = "use YYYY-MM-DD or an ISO 8601 time such as 2026-11-26T03:00:00+00:00 (naive times are UTC)"
NAMED_CADENCES = ("hourly", "daily", "weekly", "monthly")
_CRON_OF = {"@hourly": "hourly", "@daily": "daily", "@weekly": "weekly", "@monthly": "monthly"}
_CRON_EXPR = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
              "hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0", "monthly": "0 0 1 * *"}
MANUAL = "manual"
log = logging.getLogger("airflow_mbt.runtime.interval")


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_datetime(value: str, field: str) -> datetime:
    """``YYYY-MM-DD`` or ISO 8601 (``Z`` accepted) as a UTC datetime; else an input error."""
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise MBTInputError(f"invalid date {value!r}", field=field, hint=DATE_HINT) from None
    return utc(parsed)


def _minus_month(moment: datetime) -> datetime:
    year, month = (moment.year - 1, 12) if moment.month == 1 else (moment.year, moment.month - 1)
    last_day = (datetime(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def period_start(end: datetime, cadence: str) -> datetime:
    """Start of the cadence period ending at ``end`` (named cadence, ``@daily`` or a cron)."""
    name = _CRON_OF.get(cadence, cadence)
    if name == "hourly":
        return end - timedelta(hours=1)
    if name == "daily":
        return end - timedelta(days=1)
    if name == "weekly":
        return end - timedelta(days=7)
    if name == "monthly":
        return _minus_month(end)
    from croniter import croniter  # type: ignore[import-untyped]  # shipped with Airflow

    previous: datetime = croniter(" ".join(cadence.split()), end).get_prev(datetime)
    return utc(previous)


def align(moment: datetime, schedule: str) -> datetime:
    """The latest fire time of ``schedule`` (named cadence, ``@daily`` or a 5-field cron) at or
    before ``moment``, in UTC (cron resolution is one minute)."""
    from croniter import croniter  # shipped with Airflow (untyped; see period_start)

    expr = _CRON_EXPR.get(schedule, " ".join(schedule.split()))
    previous: datetime = croniter(expr, utc(moment) + timedelta(seconds=1)).get_prev(datetime)
    return utc(previous)


def _override(config: Any) -> tuple[str | None, timedelta | None]:
    spec = ((config or {}).get("deployment") or {}).get("interval") if isinstance(config, dict) else None
    if not spec:
        return None, None
    if spec.get("cadence"):
        return str(spec["cadence"]), None
    span = timedelta(days=int(spec.get("days") or 0), hours=int(spec.get("hours") or 0),
                     minutes=int(spec.get("minutes") or 0))
    if span <= timedelta(0):
        raise MBTInputError("the interval must be longer than zero", field="deployment.interval",
                            hint="e.g. interval: {days: 1} or interval: {cadence: daily}")
    return None, span


def interval_for(logical_date: datetime, schedule: str, config: Any,
                 given: tuple[datetime | None, datetime | None] = (None, None)) -> tuple[datetime, datetime]:
    """The (start, end) interval of a run at ``logical_date`` (rules 1-3 of the module docstring)."""
    end = utc(logical_date)
    cadence, span = _override(config)
    if span is not None:
        return end - span, end
    if cadence is not None:
        return period_start(end, cadence), end
    start_given, end_given = given
    if start_given is not None and end_given is not None and utc(start_given) < utc(end_given):
        return utc(start_given), utc(end_given)
    return period_start(end, schedule), end


def resolve(run: Any, manifest: Any) -> Any:
    """``run`` (a ``RunContext``) with its interval filled in for ``manifest``."""
    if run.logical_date is None:
        return run
    logical_date, given = utc(run.logical_date), (run.interval_start, run.interval_end)
    if run.run_type == MANUAL:
        aligned = align(logical_date, manifest.schedule)
        if aligned != logical_date:
            log.info("mbt: manual run at %s covers the %s period starting %s (its output partition)",
                     logical_date.isoformat(), manifest.schedule, aligned.isoformat())
            logical_date, given = aligned, (None, None)  # Airflow's manual interval is start == end anyway
    start, end = interval_for(logical_date, manifest.schedule, manifest.config, given)
    if (logical_date, start, end) == (run.logical_date, run.interval_start, run.interval_end):
        return run
    return dataclasses.replace(run, logical_date=logical_date, interval_start=start, interval_end=end)
