"""Publish throughput: ``PostgresConnector.write_table`` replacing the (pipeline_name,
execution_date) partition - what the publish step does - vs ``psql \\copy`` from a CSV file vs
pandas ``to_sql`` (on a sample, extrapolated), for rows shaped like ``churn_predictions``.

    .venv/bin/python benchmarks/bench_publish.py [--rows 1000000] [--sample 100000] [--repeat 3]

Needs the stack's PostgreSQL (``scripts/stack.sh up postgres``). Prints rows/s and ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _pg_bench import connector_config, load_stack_env, machine, predictions_frame, psql, timed

TABLE = "bench_publish"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load_stack_env()

    from airflow_mbt.plugins.connectors.postgres import PostgresConnector

    psql("-c", f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (LIKE churn_predictions INCLUDING INDEXES); "
               f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS pipeline_name text; "
               f"CREATE INDEX IF NOT EXISTS {TABLE}_partition ON {TABLE} (pipeline_name, execution_date)")
    truncate = lambda: psql("-c", f"TRUNCATE {TABLE}")  # noqa: E731
    df = predictions_frame(args.rows).assign(pipeline_name="serving_bench")
    partition = {"pipeline_name": "serving_bench", "execution_date": df["execution_date"].iloc[0].to_pydatetime()}
    connector = PostgresConnector(connector_config(), None)
    try:
        ours = timed(lambda: connector.write_table(df, TABLE, replace_where=partition),
                     args.repeat, truncate)
        # idempotent re-publish: the same run again, DELETE of the previous rows included
        republish = timed(lambda: connector.write_table(df, TABLE, replace_where=partition),
                          1)
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "preds.csv"
            df.to_csv(csv, index=False, header=False)
            psql_s = timed(lambda: psql("-c", f"\\copy {TABLE} FROM '{csv}' (FORMAT csv)"), args.repeat, truncate)

        import sqlalchemy

        truncate()
        url = sqlalchemy.engine.URL.create("postgresql+psycopg", username=connector.params.user,
                                           password=connector.params.password, host="127.0.0.1",
                                           port=connector.params.port, database="warehouse")
        engine = sqlalchemy.create_engine(url)
        sample = df.head(args.sample)
        t0 = time.perf_counter()
        sample.to_sql(TABLE, engine, if_exists="append", index=False)
        to_sql_s = time.perf_counter() - t0
        engine.dispose()
    finally:
        connector.close()
        psql("-c", f"DROP TABLE IF EXISTS {TABLE}")

    n = args.rows
    rate = {"write_table": n / ours, "psql_copy": n / psql_s, "to_sql": args.sample / to_sql_s}
    print(f"publish of {n:,} rows shaped like churn_predictions ({machine()}), median of {args.repeat}")
    print(f"  mbt publish (DELETE partition + COPY)    {rate['write_table']:>10,.0f} rows/s  ({ours:.2f} s)")
    print(f"  mbt re-publish same logical date         {n / republish:>10,.0f} rows/s  ({republish:.2f} s, "
          f"deletes {n:,} rows first)")
    print(f"  psql \\copy from CSV file                 {rate['psql_copy']:>10,.0f} rows/s  ({psql_s:.2f} s)")
    print(f"  pandas to_sql (default, {args.sample:,} rows)     {rate['to_sql']:>10,.0f} rows/s  "
          f"(extrapolated {n / rate['to_sql']:.1f} s for {n:,})")
    print(f"  ratio write_table / psql \\copy = {rate['write_table'] / rate['psql_copy']:.2f}  (target >= 0.75)")
    print(f"  ratio write_table / to_sql     = {rate['write_table'] / rate['to_sql']:.1f}  (target ~10)")


if __name__ == "__main__":
    main()
