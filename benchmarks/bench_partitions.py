"""Partitioned serving: one serving run of N scoring rows (PostgreSQL table, tiny sklearn forest)
unpartitioned vs ``serving.partitions: {count: 4, by: customer_id}`` with ``mbt run --parallel 2``
(``run_pipeline(parallel=2)``: 2 worker processes, the local analogue of LocalExecutor with
parallelism 2). Each case runs in a fresh process, so its peak RSS is its own; the partitioned
case also reports the largest worker's peak RSS (``RUSAGE_CHILDREN``).

    .venv/bin/python benchmarks/bench_partitions.py [--rows 1000000]

A third case runs the 4 partitions one after another in one process, which separates the cost
of partitioning from the gain of parallelism. Prints rows, wall seconds, rows/s, the seconds of
each step (summed over partitions), peak RSS per case, the wall-time ratio (the issue's target:
>= 1.5x on 20M rows with 2 free cores) and the load average at the start of each case: the
machine is shared, so read the ratio next to the load. Each case also prints the cores the whole
machine kept busy on average (``/proc/stat``: this process, its workers and PostgreSQL): on C cores,
no way of splitting a run that keeps B cores busy can be faster than C / B, so the unpartitioned
case's figure bounds what any partitioning can gain here. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _pg_bench import REPO, load_stack_env, psql

sys.path.insert(0, str(REPO / "tests" / "unit"))
TABLE, OUTPUT = "bench_partitions_score", "bench_partitions_predictions"


def _fill(rows: int) -> None:
    psql("-c", f"DROP TABLE IF EXISTS {TABLE}; DROP TABLE IF EXISTS {OUTPUT}; "
               f"CREATE TABLE {TABLE} (customer_id text, tenure bigint, monthly_charges double precision, "
               f"total_charges double precision, contract_type text); "
               f"INSERT INTO {TABLE} SELECT 'CUST_' || i, 1 + i % 72, 18 + (i::bigint * 7919 % 10200) / 100.0, "
               f"CASE WHEN i % 50 = 0 THEN NULL ELSE (i % 5000) * 1.5 END, "
               f"(ARRAY['month-to-month', 'one_year', 'two_year'])[1 + i % 3] FROM generate_series(0, {rows - 1}) i; "
               f"ANALYZE {TABLE};")


def busy_jiffies() -> tuple[int, int]:
    """(busy, all) CPU jiffies of the whole machine since boot (``/proc/stat``, first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _case(project: Path, model_run: str, partitioned: bool, parallel: int = 2) -> dict:
    from ml_pipeline_fixtures import dev_target, make_manifest, serving_config

    from airflow_mbt.runtime.context import RunContext, TargetRuntime
    from airflow_mbt.runtime.runner import run_pipeline

    serving = {"data_source": {"scoring_table": TABLE}, "output": {"destination": "database", "table": OUTPUT}}
    if partitioned:
        serving["partitions"] = {"count": 4, "by": "customer_id"}
    name = "bench_parts_4" if partitioned else "bench_parts_1"
    target = dev_target(data_connector={"type": "postgres", "config": {"conn_id": "mbt_warehouse"}})
    manifest = make_manifest(serving_config(model_run, project={"name": name}, serving=serving), target)
    when = datetime(2026, 6, 1, tzinfo=timezone.utc)
    run = RunContext(run_id=f"run_20260601_000000_{'4' if partitioned else '1'}000", logical_date=when)
    load = os.getloadavg()[0]
    busy0, all0 = busy_jiffies()
    t0 = time.perf_counter()
    with TargetRuntime.from_manifest(manifest, project) as runtime:
        results = run_pipeline(manifest, runtime, run=run, parallel=parallel if partitioned else 1)
    seconds = time.perf_counter() - t0
    busy1, all1 = busy_jiffies()
    busy_cores = (busy1 - busy0) / max(all1 - all0, 1) * (os.cpu_count() or 1)
    steps: dict[str, float] = {}  # seconds per step, summed over its partitions
    for step in results["steps"]:
        name = step["name"].split("[")[0]
        steps[name] = steps.get(name, 0.0) + float(step["seconds"])
    kib = 1024  # ru_maxrss is KiB on Linux
    return {"seconds": seconds, "load": load, "steps": steps, "busy_cores": busy_cores,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--case", choices=["plain", "parts", "parts-seq"], help=argparse.SUPPRESS)
    ap.add_argument("--project", help=argparse.SUPPRESS)
    ap.add_argument("--model-run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    load_stack_env()
    if args.case:  # the child process of one case
        print("RESULT " + json.dumps(_case(Path(args.project), args.model_run, args.case != "plain",
                                           parallel=1 if args.case == "parts-seq" else 2)))
        return
    from ml_pipeline_fixtures import make_project, train_once, training_config

    project = make_project(Path(tempfile.mkdtemp(prefix="bench-parts-")), n_customers=2000, n_score=10)
    _, _, mlflow_run = train_once(project, training_config(training={
        "evaluation": {"generate_plots": False},
        "model_training": {"config": {"model": "RandomForestClassifier", "n_estimators": 20, "max_depth": 6}}}))
    _fill(args.rows)
    print(f"{args.rows:,} scoring rows, {os.cpu_count()} cores")
    results = {}
    for case in ("plain", "parts-seq", "parts"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--project", str(project),
                              "--model-run", mlflow_run["run_id"]], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
        results[case] = json.loads(next(line for line in out.stdout.splitlines()
                                        if line.startswith("RESULT "))[7:])
        r = results[case]
        label = {"plain": "1 partition  (in-process)", "parts-seq": "4 partitions (one after another)",
                 "parts": "4 partitions (--parallel 2)"}[case]
        print(f"{label}: {r['seconds']:7.1f} s  {args.rows / r['seconds']:>10,.0f} rows/s  "
              f"peak RSS {r['rss_mib']:,.0f} MiB (largest worker {r['worker_rss_mib']:,.0f} MiB)  "
              f"load average {r['load']:.1f}  cores busy {r['busy_cores']:.2f} of {os.cpu_count()}")
        print("    step seconds (summed over partitions): "
              + ", ".join(f"{name} {sec:.1f}" for name, sec in r["steps"].items()))
    ratio = results["plain"]["seconds"] / results["parts"]["seconds"]
    print(f"wall-time ratio 1 partition / 4 partitions: {ratio:.2f}x "
          f"(4 partitions one after another / with --parallel 2: "
          f"{results['parts-seq']['seconds'] / results['parts']['seconds']:.2f}x)")
    ceiling = (os.cpu_count() or 1) / max(results["plain"]["busy_cores"], 1e-9)
    print(f"ceiling of any split on this machine: {os.cpu_count()} cores / {results['plain']['busy_cores']:.2f} "
          f"busy in the unpartitioned run = {ceiling:.2f}x")
    psql("-c", f"DROP TABLE IF EXISTS {TABLE}; DROP TABLE IF EXISTS {OUTPUT};")


if __name__ == "__main__":
    main()
