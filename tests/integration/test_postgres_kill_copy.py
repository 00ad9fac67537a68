"""A publish killed with SIGKILL in the middle of its COPY leaves no row of that serving run
(the transaction never commits), other runs are untouched, and a rerun succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

ROWS = 1_500_000

PUBLISHER = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(Path(__file__).resolve().parents[2] / "benchmarks")!r})
    from _pg_bench import predictions_frame  # the benchmarks' churn_predictions-shaped frame
    from airflow_mbt.plugins.connectors.postgres import PostgresConnector

    table, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = predictions_frame(n, run_id)
    print("frame ready", flush=True)
    written = PostgresConnector({{"conn_id": "mbt_warehouse"}}, None).write_table(
        df, table, replace_where={{"serving_run_id": run_id}})
    print("written", written, flush=True)
""")


def _backend_count(conn, marker: str) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                        (f"%{marker}%",)).fetchone()[0]


def test_sigkill_during_copy_commits_nothing_and_rerun_succeeds(scratch_schema, pg_warehouse):
    table = f"{scratch_schema}.churn_predictions"
    pg_warehouse.execute(f'CREATE TABLE "{scratch_schema}".churn_predictions (LIKE public.churn_predictions)')
    pg_warehouse.execute(f"INSERT INTO \"{scratch_schema}\".churn_predictions (customer_id, serving_run_id) "
                         "SELECT 'KEEP_' || g, 'run_other' FROM generate_series(1, 500) g")
    run_id = "run_killed_mid_copy"
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, table, run_id, str(ROWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    progressed = 0
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            row = pg_warehouse.execute(
                "SELECT p.tuples_processed FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND p.command = 'COPY FROM'",
                (scratch_schema,)).fetchone()
            if row and row[0] >= 200_000:
                progressed = row[0]
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and not progressed:
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert progressed, f"the COPY was never observed running; publisher said:\n{out}\n{err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err[-2000:])
    assert "written" not in out

    # the server notices the dead client and rolls back; wait for that backend to go away
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _backend_count(pg_warehouse, f"{scratch_schema}") > 0:
        time.sleep(0.2)

    def count(rid):
        return pg_warehouse.execute(f'SELECT count(*) FROM "{scratch_schema}".churn_predictions '
                                    "WHERE serving_run_id = %s", (rid,)).fetchone()[0]

    assert count(run_id) == 0
    assert count("run_other") == 500

    rerun = subprocess.run([sys.executable, "-c", PUBLISHER, table, run_id, str(ROWS)], capture_output=True,
                           text=True, timeout=600, env=os.environ.copy())
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"written {ROWS}" in rerun.stdout
    assert count(run_id) == ROWS
    assert count("run_other") == 500
