"""Deterministic churn demo data (stdlib only): labeled customers and rows to score.

Used by ``mbt init`` (CSV files in ``sample_data/``) and by the stack seeding of PostgreSQL.
Churn follows a learnable signal: short tenure, month-to-month contracts and high monthly
charges churn more; about a quarter of the customers churn.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

COLUMNS = ["customer_id", "tenure", "monthly_charges", "total_charges", "contract_type", "churned"]
CONTRACT_TYPES = ("month-to-month", "one_year", "two_year")
_CONTRACT_WEIGHTS = (0.55, 0.25, 0.20)
_CONTRACT_EFFECT = {"month-to-month": 1.1, "one_year": -0.6, "two_year": -1.6}
MISSING_TOTAL_RATE = 0.02


def _churn_probability(tenure: int, monthly: float, contract: str) -> float:
    logit = -2.0 + _CONTRACT_EFFECT[contract] - 0.045 * (tenure - 24) + 0.03 * (monthly - 65)
    return 1.0 / (1.0 + math.exp(-logit))


def iter_rows(n: int, seed: int = 42, labeled: bool = True) -> Iterator[dict]:
    """Yield ``n`` customer rows. ``labeled=False`` gives scoring rows (``CUST_NEW_``, no label).

    ``total_charges`` is ``None`` for about 2% of rows (a missing value to impute).
    """
    rng = random.Random(f"{seed}:{'labeled' if labeled else 'score'}")
    prefix = "CUST_" if labeled else "CUST_NEW_"
    for i in range(1, n + 1):
        contract = rng.choices(CONTRACT_TYPES, weights=_CONTRACT_WEIGHTS)[0]
        tenure = max(1, min(72, int(rng.expovariate(1 / (12 if contract == "month-to-month" else 36))) + 1))
        monthly = round(min(120.0, max(18.0, rng.gauss(65, 22))), 2)
        total = round(monthly * tenure * rng.uniform(0.9, 1.1), 2)
        row = {
            "customer_id": f"{prefix}{i:05d}",
            "tenure": tenure,
            "monthly_charges": monthly,
            "total_charges": None if rng.random() < MISSING_TOTAL_RATE else total,
            "contract_type": contract,
        }
        if labeled:
            row["churned"] = 1 if rng.random() < _churn_probability(tenure, monthly, contract) else 0
        yield row


def _write(path: Path, rows: Iterator[dict], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in columns})
    return path


def write_csvs(directory, n_customers: int = 5000, n_score: int = 1000, seed: int = 42) -> list[Path]:
    """Write ``customers.csv`` (labeled) and ``customers_to_score.csv`` into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _write(out / "customers.csv", iter_rows(n_customers, seed, labeled=True), COLUMNS),
        _write(out / "customers_to_score.csv", iter_rows(n_score, seed, labeled=False), COLUMNS[:-1]),
    ]


# ---- the dated example (examples/daily_scoring): two training tables joined by a query, and a
# scoring table with one snapshot of new customers per day, scored one day per run -------------
PROFILE_COLUMNS = ["customer_id", "tenure", "contract_type"]
BILLING_COLUMNS = ["customer_id", "monthly_charges", "total_charges", "churned"]
DAILY_COLUMNS = ["snapshot_date", "customer_id", "tenure", "monthly_charges", "total_charges", "contract_type"]


def iter_daily_rows(start: date, days: int, rows_per_day: int, seed: int = 42) -> Iterator[dict]:
    """``rows_per_day`` scoring rows for each of ``days`` days from ``start`` (``snapshot_date``
    as ``YYYY-MM-DD``; ids ``CUST_<yyyymmdd>_<n>`` are unique across days)."""
    for offset in range(days):
        day = start + timedelta(days=offset)
        for row in iter_rows(rows_per_day, seed=seed + offset, labeled=False):
            number = row["customer_id"].rsplit("_", 1)[-1]
            yield {**row, "snapshot_date": day.isoformat(), "customer_id": f"CUST_{day:%Y%m%d}_{number}"}


def write_dated_csvs(directory, n_customers: int = 2000, start: date = date(2026, 1, 1), days: int = 7,
                     rows_per_day: int = 100, seed: int = 42) -> list[Path]:
    """Write ``customer_profiles.csv`` + ``customer_billing.csv`` (the labeled customers split in
    two tables sharing ``customer_id``) and ``customers_daily.csv`` (``days`` snapshots)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    labeled = list(iter_rows(n_customers, seed, labeled=True))
    return [
        _write(out / "customer_profiles.csv", iter(labeled), PROFILE_COLUMNS),
        _write(out / "customer_billing.csv", iter(labeled), BILLING_COLUMNS),
        _write(out / "customers_daily.csv", iter_daily_rows(start, days, rows_per_day, seed), DAILY_COLUMNS),
    ]
