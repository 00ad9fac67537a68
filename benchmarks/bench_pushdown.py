"""Interval pushdown: reading ONE day of a 30-day dated table (``where: "snapshot_date = {{ ds }}"``)
vs reading a whole table of one day's size, through ``PostgresConnector.iter_source`` (what
``load_scoring_data`` streams; the later serving steps see the same number of rows either way).

    .venv/bin/python benchmarks/bench_pushdown.py [--days 30] [--per-day 100000] [--repeat 3]

Prints both times (median of ``--repeat``), their ratio (target <= 1.5) and the rows the
PostgreSQL scan touched for the day (``EXPLAIN ANALYZE`` of the same SELECT: rows returned +
rows removed by filter / recheck; target <= 1.1x the day's rows), plus ``psql \\copy`` of the
day as a reference. Needs the stack's PostgreSQL. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

from _pg_bench import connector_config, load_stack_env, machine, psql, timed

DAILY, SMALL = "bench_pushdown_daily", "bench_pushdown_small"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
COLUMNS = ("snapshot_date date, customer_id text, tenure integer, monthly_charges double precision, "
           "total_charges double precision, contract_type text")


def _fill(table: str, rows: int, per_day: int) -> str:
    return (f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({COLUMNS}); "
            f"INSERT INTO {table} SELECT DATE '2026-01-01' + (i / {per_day}), 'CUST_' || i, 1 + i % 72, "
            f"18 + (i::bigint * 7919 % 10200) / 100.0, CASE WHEN i % 50 = 0 THEN NULL ELSE (i % 5000) * 1.5 END, "
            f"(ARRAY['month-to-month', 'one_year', 'two_year'])[1 + i % 3] FROM generate_series(0, {rows - 1}) i; "
            f"CREATE INDEX ON {table} (snapshot_date); ANALYZE {table};")


def _scanned(plan: dict) -> int:
    """Rows touched by the table scan nodes of an EXPLAIN ANALYZE plan (a bitmap index scan
    only yields row pointers; its heap scan counts the rows)."""
    total = 0
    kind = plan.get("Node Type", "")
    if kind.endswith("Scan") and kind != "Bitmap Index Scan":
        total += int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))
        total += int(plan.get("Rows Removed by Filter", 0)) + int(plan.get("Rows Removed by Index Recheck", 0))
    for child in plan.get("Plans", []):
        total += _scanned(child)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    args = ap.parse_args()
    load_stack_env()

    from airflow_mbt.plugins.connectors.postgres import PostgresConnector
    from airflow_mbt.runtime.context import RunContext
    from airflow_mbt.sources import bind

    psql("-c", _fill(DAILY, args.days * args.per_day, args.per_day))
    psql("-c", _fill(SMALL, args.per_day, args.per_day))
    day = START + timedelta(days=args.days // 2)
    run = RunContext(run_id="run_20260116_000000_beef", logical_date=day, interval_start=day,
                     interval_end=day + timedelta(days=1))
    dated = bind({"serving": {"data_source": {"scoring_table": DAILY, "where": "snapshot_date = {{ ds }}"}}},
                 "serving", run)
    whole = bind({"serving": {"data_source": {"scoring_table": SMALL}}}, "serving", run)
    connector = PostgresConnector(connector_config(), None)
    try:
        def read(source) -> int:
            return sum(len(df) for df in connector.iter_source(source, args.chunk_rows))

        rows_day, rows_small = read(dated), read(whole)
        t_day = timed(lambda: read(dated), args.repeat)
        t_small = timed(lambda: read(whole), args.repeat)
        select, _catalog, _label = connector._source_select(dated)
        from psycopg import sql

        plan = connector.conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(select)).fetchone()[0]
        plan = plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]
        scanned = _scanned(plan)
        t_psql = timed(lambda: psql("-c", f"\\copy (SELECT * FROM {DAILY} WHERE snapshot_date = "
                                          f"'{day:%Y-%m-%d}') TO '/dev/null' (FORMAT csv)"), args.repeat)
    finally:
        connector.close()
        psql("-c", f"DROP TABLE IF EXISTS {DAILY}; DROP TABLE IF EXISTS {SMALL}")

    total = args.days * args.per_day
    print(f"pushdown: one day of a {args.days}-day, {total:,}-row table vs a {args.per_day:,}-row table "
          f"({machine()}), median of {args.repeat}")
    print(f"  iter_source where snapshot_date = {{{{ ds }}}}  {t_day:.2f} s  ({rows_day:,} rows)")
    print(f"  iter_source whole {args.per_day:,}-row table   {t_small:.2f} s  ({rows_small:,} rows)")
    print(f"  psql \\copy of the day (reference)         {t_psql:.2f} s")
    print(f"  ratio dated day / small table = {t_day / t_small:.2f}  (target <= 1.5)")
    print(f"  rows scanned for the day = {scanned:,} = {scanned / rows_day:.2f}x the day's rows "
          f"(target <= 1.1; plan: {plan['Node Type']})")


if __name__ == "__main__":
    main()
