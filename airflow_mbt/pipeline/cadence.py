"""``deployment.cadence``: a named interval or a 5-field cron, mapped to an Airflow schedule."""

from __future__ import annotations

import re

NAMED = {"hourly": "@hourly", "daily": "@daily", "weekly": "@weekly", "monthly": "@monthly"}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_ITEM = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a valid 5-field cron, or ``None`` when it is."""
    parts = expr.split()
    if len(parts) == 1:
        return "not a named cadence (hourly, daily, weekly, monthly) nor a 5-field cron"
    if len(parts) != 5:
        return f"a cron expression has 5 fields (minute hour day month weekday), got {len(parts)}"
    for part, (label, low, high) in zip(parts, _FIELDS):
        for item in part.split(","):
            m = _ITEM.match(item)
            if not m:
                return f"cannot read {label} field {part!r}"
            if m.group(2) is not None and int(m.group(2)) == 0:
                return f"step 0 in {label} field {part!r}"
            if m.group(1) != "*":
                bounds = [int(x) for x in m.group(1).split("-")]
                if any(not low <= b <= high for b in bounds) or bounds != sorted(bounds):
                    return f"{label} field {part!r} is outside {low}-{high}"
    return None


def to_schedule(cadence: str) -> str:
    """``monthly`` -> ``@monthly``; a cron expression is kept (whitespace normalized)."""
    return NAMED.get(cadence, " ".join(cadence.split()))
