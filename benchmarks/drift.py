"""Cost of drift monitoring (issue 11 point 5): a serving run with ``serving.monitoring`` vs the
same run without it, on a large PostgreSQL scoring table, plus peak memory.

Trains the sklearn churn model once (on the stack's MLflow server, as in prod: a dev sqlite store
costs seconds per process to open and would hide the step's own cost), fills ``bench_drift_score`` with N rows generated
in SQL (``bench_serving_memory.fill_scoring_table``), then runs every serving step in one process (as
``mbt run`` does) twice per repeat: without monitoring (load_model .. publish) and with it
(.. predict, monitor, publish; the monitor step writes ``bench_drift_monitoring`` and logs an MLflow
monitoring run). Prints the seconds of each run and of each step, the ratio with/without (target
<= 1.10), the monitor step's own seconds as a share of the run without it, and the peak RSS
(target <= 1,536 MiB).

    .venv/bin/python benchmarks/drift.py [--rows 5000000] [--repeat 1]

Whole-run times on a shared machine vary by more than the 10 % measured here; the monitor
step's own seconds (in the same run) are the steadier figure. Chunks:
``MBT_CHUNK_ROWS`` (default 250,000).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _pg_bench import REPO, connector_config, load_stack_env, machine, psql
import bench_serving_memory
from bench_serving_memory import SERVING_STEPS, fill_scoring_table

# tables of our own, so this never meets a concurrent bench_serving_memory.py run
SCORE_TABLE, OUT_TABLE = "bench_drift_score", "bench_drift_predictions"
bench_serving_memory.SCORE_TABLE, bench_serving_memory.OUT_TABLE = SCORE_TABLE, OUT_TABLE  # fill_scoring_table's

# one process running the steps, as ``mbt run`` does; prints each step's own seconds and the peak RSS
CHILD = """
import json, resource, sys, time
from pathlib import Path
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.runtime.executor import execute_step
manifest = Manifest.read(Path(sys.argv[1]))
runtime = TargetRuntime(target=manifest.target, project_dir=Path(sys.argv[2]))
t0, steps = time.perf_counter(), {}
for step in sys.argv[4].split(","):
    steps[step] = execute_step(manifest, step, sys.argv[3], runtime).seconds
runtime.close()
print(json.dumps({"steps": steps, "seconds": time.perf_counter() - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(manifest_path: Path, project: Path, run_id: str, steps: list[str]) -> dict:
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-c", CHILD, str(manifest_path), str(project), run_id, ",".join(steps)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"steps {steps} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

sys.path.insert(0, str(REPO / "tests" / "unit"))

MONITOR_TABLE = "bench_drift_monitoring"
MONITORED_STEPS = SERVING_STEPS[:-1] + ["monitor", SERVING_STEPS[-1]]


TARGET = {"name": "bench", "profile": "demo",
          "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
          "mlflow": {"conn_id": "mbt_mlflow"}, "secrets": {"provider": "env"}}


def train(project: Path, experiment: str) -> str:
    """The churn model trained and logged to the MLflow server; its MLflow run id."""
    from ml_pipeline_fixtures import fetch, make_manifest, run_steps, training_config

    target = {**TARGET, "data_connector": {"type": "local_file", "config": {"data_path": "./sample_data"}}}
    manifest = make_manifest(training_config(project={"experiment_name": experiment}), target)
    run_id = run_steps(manifest, project)
    return str(fetch(project, manifest, run_id, "mlflow_run")["run_id"])


def manifests(project: Path, model_run_id: str, experiment: str) -> tuple[Path, Path]:
    import json

    from ml_pipeline_fixtures import make_manifest, serving_config

    from airflow_mbt.manifest import Manifest
    from airflow_mbt.pipeline.compiler import manifest_steps

    target = {**TARGET, "data_connector": {"type": "postgres", "config": connector_config()}}
    serving = {"data_source": {"scoring_table": SCORE_TABLE},
               "output": {"destination": "database", "table": OUT_TABLE, "include_probabilities": True}}
    project_section = {"experiment_name": experiment}
    plain = make_manifest(serving_config(model_run_id, project=project_section, serving=serving), target)
    body = json.loads(make_manifest(serving_config(model_run_id, project=project_section, serving={
        **serving, "monitoring": {"max_psi": 0.25, "on_breach": "warn", "table": MONITOR_TABLE}}), target).to_json())
    body.pop("content_hash")
    body["steps"] = manifest_steps("serving", {}, monitoring=True)
    monitored = Manifest.build(body)
    assert [s.name for s in monitored.steps] == MONITORED_STEPS
    return plain.write(project / "plain.json"), monitored.write(project / "monitored.json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    load_stack_env()

    from ml_pipeline_fixtures import make_project, scratch_experiment

    from airflow_mbt.runtime.run_id import new_run_id
    from airflow_mbt.runtime.table_stream import default_chunk_rows

    plain_runs, monitored_runs = [], []
    with tempfile.TemporaryDirectory(prefix="mbt-bench-drift-") as tmp, \
            scratch_experiment(os.environ["MBT_MLFLOW_URI"], "h_drift_bench") as experiment:
        project = make_project(Path(tmp))
        t0 = time.perf_counter()
        model_run_id = train(project, experiment)
        print(f"trained the sklearn churn model in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        fill_scoring_table(args.rows)
        print(f"filled {SCORE_TABLE} with {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        plain_path, monitored_path = manifests(project, model_run_id, experiment)
        try:
            for _ in range(args.repeat):  # alternate, so a load change hits both
                plain_runs.append(run_child(plain_path, project, new_run_id(), SERVING_STEPS))
                run_id = new_run_id()
                monitored_runs.append(run_child(monitored_path, project, run_id, MONITORED_STEPS))
        finally:
            psql("-c", f"DROP TABLE IF EXISTS {SCORE_TABLE}; DROP TABLE IF EXISTS {OUT_TABLE}; "
                       f"DROP TABLE IF EXISTS {MONITOR_TABLE}")

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    base, with_monitor = median(plain_runs, "seconds"), median(monitored_runs, "seconds")
    step = statistics.median(r["steps"]["monitor"] for r in monitored_runs)
    print(f"serving {args.rows:,} rows from PostgreSQL in chunks of {default_chunk_rows():,}, all steps in one "
          f"process, median of {args.repeat} ({machine()})")
    print(f"  without monitoring: {base:7.1f} s  peak RSS {max(r['peak_rss_mib'] for r in plain_runs):7,.0f} MiB")
    print(f"  with monitoring:    {with_monitor:7.1f} s  peak RSS "
          f"{max(r['peak_rss_mib'] for r in monitored_runs):7,.0f} MiB")
    print(f"  ratio with/without: {with_monitor / base:.3f}  (target <= 1.10)")
    print(f"  the monitor step's own seconds: {step:.1f} s = {step / base:.1%} of the run without it")
    for label, runs in (("without", plain_runs), ("with", monitored_runs)):
        print(f"    steps {label:<7}: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs[0]["steps"].items()))
    print("  peak RSS target: <= 1,536 MiB")


if __name__ == "__main__":
    main()
