"""Load throughput: ``PostgresConnector.read_table`` (COPY -> pyarrow CSV -> pandas) and
``iter_table`` vs ``psql \\copy ... TO /dev/null``, on 1,000,000 rows shaped like
``churn_predictions``.

    .venv/bin/python benchmarks/bench_load.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse

from _pg_bench import connector_config, load_stack_env, machine, psql, timed

TABLE = "bench_load"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load_stack_env()

    from airflow_mbt.plugins.connectors.postgres import PostgresConnector

    psql("-c", f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (LIKE churn_predictions); "
               f"INSERT INTO {TABLE} SELECT 'CUST_' || lpad(g::text, 8, '0'), g % 2, random(), "
               f"timestamp '2026-11-29 07:00:00', '0123456789abcdef0123456789abcdef', 'run_bench' "
               f"FROM generate_series(1, {args.rows}) g")
    psql("-c", f"VACUUM ANALYZE {TABLE}")
    connector = PostgresConnector(connector_config(), None)
    try:
        shape = connector.read_table(TABLE)
        assert len(shape) == args.rows
        dtypes = ", ".join(f"{c}:{t}" for c, t in shape.dtypes.astype(str).items())
        del shape
        ours = timed(lambda: connector.read_table(TABLE), args.repeat)
        # transport + parse only (arrow, no Python str objects): what COPY itself costs us
        schema, name, catalog = connector._select_columns(TABLE, None)
        arrow = timed(lambda: sum(t.num_rows for t in connector._copy_out(schema, name, catalog)), args.repeat)
        chunked = timed(lambda: sum(len(c) for c in connector.iter_table(TABLE, 200_000)), args.repeat)
        psql_s = timed(lambda: psql("-c", f"\\copy {TABLE} TO '/dev/null' (FORMAT csv)"), args.repeat)
    finally:
        connector.close()
        psql("-c", f"DROP TABLE IF EXISTS {TABLE}")
    n = args.rows
    print(f"load of {n:,} rows shaped like churn_predictions ({machine()}), median of {args.repeat}")
    print(f"  mbt read_table -> DataFrame        {n / ours:>10,.0f} rows/s  ({ours:.2f} s)  [{dtypes}]")
    print(f"  mbt COPY -> arrow (no pandas)      {n / arrow:>10,.0f} rows/s  ({arrow:.2f} s)")
    print(f"  mbt iter_table 200k-row chunks     {n / chunked:>10,.0f} rows/s  ({chunked:.2f} s)")
    print(f"  psql \\copy TO /dev/null            {n / psql_s:>10,.0f} rows/s  ({psql_s:.2f} s)")
    print(f"  ratio read_table / psql \\copy = {psql_s / ours:.2f}  (target >= 0.6)")
    print(f"  ratio COPY->arrow / psql \\copy = {psql_s / arrow:.2f}")


if __name__ == "__main__":
    main()
