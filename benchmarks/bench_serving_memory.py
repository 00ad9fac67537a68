"""Peak memory of the serving steps on a large scoring table in the stack's PostgreSQL.

Trains the churn model once (sklearn, the step helpers of the unit tests, local MLflow), fills
``bench_score`` with N rows shaped like ``customers_to_score`` (generated in SQL), then runs
load_model, load_scoring_data, apply_transforms, predict and publish (to ``bench_predictions``)
- each step in a fresh process, as pods do (peak RSS per step), and all in one process, as
``mbt run`` does (peak RSS of the whole serving run).

    .venv/bin/python benchmarks/bench_serving_memory.py [--rows 5000000]

The streamed steps use chunks of ``MBT_CHUNK_ROWS`` rows (default 250,000); set it in the
environment to measure another chunk size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pg_bench import REPO, connector_config, load_stack_env, machine, psql

sys.path.insert(0, str(REPO / "tests" / "unit"))

SERVING_STEPS = ["load_model", "load_scoring_data", "apply_transforms", "predict", "publish"]
SCORE_TABLE, OUT_TABLE = "bench_score", "bench_predictions"

CHILD = """
import json, resource, sys, time
from pathlib import Path
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.runtime.executor import execute_step
manifest = Manifest.read(Path(sys.argv[1]))
project, run_id, steps = Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
runtime = TargetRuntime(target=manifest.target, project_dir=project)
t0 = time.perf_counter()
for step in steps:
    execute_step(manifest, step, run_id, runtime)
runtime.close()
print(json.dumps({"steps": steps, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def fill_scoring_table(rows: int) -> None:
    psql("-c", f"DROP TABLE IF EXISTS {SCORE_TABLE}; CREATE TABLE {SCORE_TABLE} (LIKE customers_to_score); "
               f"DROP TABLE IF EXISTS {OUT_TABLE}; CREATE TABLE {OUT_TABLE} (LIKE churn_predictions)")
    psql("-c", f"""
        INSERT INTO {SCORE_TABLE}
        SELECT 'CUST_NEW_' || lpad(g::text, 8, '0'), t, m,
               CASE WHEN random() < 0.02 THEN NULL ELSE round((m * t * (0.9 + random() * 0.2))::numeric, 2) END,
               (ARRAY['month-to-month', 'one_year', 'two_year'])[1 + (g % 3)]
        FROM (SELECT g, 1 + (random() * 71)::int AS t, round((18 + random() * 100)::numeric, 2)::float8 AS m
              FROM generate_series(1, {rows}) g) s""")
    psql("-c", f"VACUUM ANALYZE {SCORE_TABLE}")


def run_child(manifest_path: Path, project: Path, run_id: str, steps: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(manifest_path), str(project), run_id, ",".join(steps)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"steps {steps} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    args = ap.parse_args()
    load_stack_env()

    from ml_pipeline_fixtures import make_manifest, make_project, serving_config, train_once

    from airflow_mbt.runtime.run_id import new_run_id

    with tempfile.TemporaryDirectory(prefix="mbt-bench-serving-") as tmp:
        project = make_project(Path(tmp))
        t0 = time.perf_counter()
        _manifest, _rid, mlflow_run = train_once(project)
        print(f"trained the sklearn churn model in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        fill_scoring_table(args.rows)
        print(f"filled {SCORE_TABLE} with {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")

        target = {"name": "bench", "profile": "demo",
                  "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
                  "data_connector": {"type": "postgres", "config": connector_config()},
                  "mlflow": {"tracking_uri": "sqlite:///mlruns/mlflow.db", "artifact_location": "./mlruns/artifacts"},
                  "secrets": {"provider": "env"}}
        config = serving_config(mlflow_run["run_id"], serving={
            "data_source": {"scoring_table": SCORE_TABLE},
            "output": {"destination": "database", "table": OUT_TABLE, "include_probabilities": True}})
        manifest = make_manifest(config, target)
        manifest_path = manifest.write(project / "manifest.json")

        results = []
        try:
            run_id = new_run_id()
            for step in SERVING_STEPS:
                results.append(run_child(manifest_path, project, run_id, [step]))
            whole = run_child(manifest_path, project, new_run_id(), SERVING_STEPS)
            published = subprocess.run(["psql", "-X", "-tA", "-h", "127.0.0.1", "-U", "mbt_user", "-d", "warehouse",
                                        "-c", f"SELECT count(*) FROM {OUT_TABLE}"], capture_output=True,
                                       text=True, env={"PGPASSWORD": connector_config()["password"],
                                                       "PATH": "/usr/bin:/bin"}).stdout.strip()
        finally:
            psql("-c", f"DROP TABLE IF EXISTS {SCORE_TABLE}; DROP TABLE IF EXISTS {OUT_TABLE}")

    from airflow_mbt.runtime.table_stream import default_chunk_rows

    print(f"serving on {args.rows:,} scoring rows in chunks of {default_chunk_rows():,} ({machine()}); "
          f"rows published in total: {published}")
    print("  one process per step (pod-per-step):")
    for r in results:
        print(f"    {r['steps'][0]:<18} peak RSS {r['peak_rss_mib']:>7,.0f} MiB  {r['seconds']:6.1f} s")
    print(f"  all serving steps in one process (mbt run): peak RSS {whole['peak_rss_mib']:,.0f} MiB, "
          f"{whole['seconds']:.1f} s")
    print("  target: <= 1,536 MiB")


if __name__ == "__main__":
    main()
