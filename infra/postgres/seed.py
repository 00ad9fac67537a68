"""Seed the warehouse tables of the local stack from the deterministic churn generator.

Run by ``scripts/stack.sh up`` after ``init.sql`` (project venv python). Each table is filled with
COPY only when it is empty, under a table lock, so concurrent or repeated runs are harmless.
Connection settings come from ``scripts/stack.env`` (MBT_PG_*).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from airflow_mbt.scaffold import sample_data  # noqa: E402  (stdlib only)

TABLES = {
    # table: (rows, labeled)
    "customers": (5000, True),
    "customers_to_score": (1000, False),
}
SEED = 42


def main() -> int:
    import psycopg

    conninfo = dict(host=os.environ.get("MBT_STACK_HOST", "127.0.0.1"),
                    port=int(os.environ.get("MBT_PG_PORT", "5432")),
                    dbname=os.environ.get("MBT_PG_DATABASE", "warehouse"),
                    user=os.environ.get("MBT_PG_USER", "mbt_user"),
                    password=os.environ.get("MBT_PG_PASSWORD", ""), connect_timeout=5)
    with psycopg.connect(**conninfo) as conn:
        for table, (n_rows, labeled) in TABLES.items():
            columns = sample_data.COLUMNS if labeled else sample_data.COLUMNS[:-1]
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
                cur.execute(f'SELECT count(*) FROM "{table}"')
                existing = cur.fetchone()[0]
                if existing:
                    print(f"[seed] {table}: {existing} rows present, left as is")
                    continue
                cols = ", ".join(f'"{c}"' for c in columns)
                with cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
                    for row in sample_data.iter_rows(n_rows, SEED, labeled=labeled):
                        copy.write_row([row[c] for c in columns])
                print(f"[seed] {table}: inserted {n_rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
