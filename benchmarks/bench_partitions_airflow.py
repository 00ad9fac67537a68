"""Partitioned serving under live Airflow (issue 12's measurement): the same scoring table served
by two deployed serving DAGs, one unpartitioned and one with ``serving.partitions: {count: 4, by:
customer_id}`` (its chunked steps mapped over 4 partitions), on the stack's Airflow 3 with
LocalExecutor. Every task of both DAGs runs in an Airflow pool of 2 slots, so at most 2 tasks run
at once: "LocalExecutor with parallelism 2" without restarting the stack's scheduler.

    bash scripts/stack.sh up && bash scripts/airflow.sh up
    .venv/bin/python benchmarks/bench_partitions_airflow.py [--rows 20000000]

The model is a tiny sklearn forest trained with ``mbt run`` on the dev target (the stack's MLflow
server). The rows are generated in PostgreSQL (``generate_series``). The DAGs run one after the
other, each once. Prints per DAG: the run's wall time (Airflow's start and end dates), rows/s, each
task's duration and peak RSS (``peak_rss_mib`` of the step's XCom: the task process's own
``ru_maxrss``), the cores the machine kept busy (``/proc/stat``), and the wall-time ratio. It checks
that both DAGs published every source row once; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

import yaml

from _pg_bench import REPO, connector_config, load_stack_env, psql
from bench_partitions import busy_jiffies

sys.path.insert(0, str(REPO / "tests" / "e2e"))
from airflow_api import AirflowAPI  # noqa: E402
from spec_workflow import cli_env, edit_profile_for_local_stack, sh  # noqa: E402
from stack_clients import s3_client, s3_delete_prefix  # noqa: E402

TRAIN = "bench_airflow_parts_train"
SERVE = {"plain": "bench_airflow_parts_1", "parts": "bench_airflow_parts_4"}
SOURCE = "bench_airflow_parts_score"
OUTPUT = {"plain": "bench_airflow_parts_1_out", "parts": "bench_airflow_parts_4_out"}
POOL, SLOTS = "mbt_bench_partitions", 2
MANIFESTS_URI = os.environ.get("MBT_MANIFESTS_URI", "s3://mbt-pipeline-artifacts/manifests/")

TRAINING_YAML = f"""base_pipeline: _base_churn
project: {{name: {TRAIN}, tags: [bench]}}
deployment: {{mode: batch, cadence: monthly}}
training:
  model_training:
    framework: sklearn
    config: {{model: RandomForestClassifier, n_estimators: 20, max_depth: 6}}
  evaluation:
    primary_metric: roc_auc
    generate_plots: false
"""

SERVING_YAML = """base_pipeline: _base_churn
project: {{name: {name}, tags: [bench]}}
deployment: {{mode: batch, cadence: daily}}
serving:
  model_source: {{registry: mlflow, run_id: "{run_id}"}}
  data_source: {{scoring_table: {source}}}
{partitions}  output: {{destination: database, table: {output}}}
"""


def _fill(rows: int) -> None:
    """The scoring table, typed like the scaffold's customers_to_score.csv."""
    psql("-c", f"DROP TABLE IF EXISTS {SOURCE}; CREATE TABLE {SOURCE} (customer_id text, tenure bigint, "
               f"monthly_charges double precision, total_charges double precision, contract_type text); "
               f"INSERT INTO {SOURCE} SELECT 'CUST_' || i, 1 + i % 72, 18 + (i::bigint * 7919 % 10200) / 100.0, "
               f"CASE WHEN i % 50 = 0 THEN NULL ELSE (i % 5000) * 1.5 END, "
               f"(ARRAY['month-to-month', 'one_year', 'two_year'])[1 + i % 3] FROM generate_series(0, {rows - 1}) i; "
               f"ANALYZE {SOURCE};")


def _drop_outputs() -> None:
    psql("-c", "; ".join(f"DROP TABLE IF EXISTS {t}" for t in OUTPUT.values()))


def _project(root: Path, env: dict) -> tuple[Path, str]:
    """A scaffolded project on the local stack, its tasks in the bench pool; the trained run id."""
    sh("mbt init bench-project", root, env)
    project = root / "bench-project"
    edit_profile_for_local_stack(project)
    for name in ("training_churn_model_v1", "serving_churn_model_v1"):
        (project / "pipelines" / f"{name}.yaml").unlink()
    profiles = project / "profiles.yaml"
    doc = yaml.safe_load(profiles.read_text())
    default_args = next(iter(doc.values()))["orchestrator"]["config"]["default_args"]
    default_args.update(pool=POOL, retries=0)
    profiles.write_text(yaml.safe_dump(doc, sort_keys=False))
    (project / "pipelines" / f"{TRAIN}.yaml").write_text(TRAINING_YAML)
    sh(f"mbt run --select {TRAIN} --target dev", project, env)
    run_id = json.loads((project / "target" / TRAIN / "run_results.json").read_text())["mlflow_run_id"]
    for case, name in SERVE.items():
        partitions = "  partitions: {count: 4, by: customer_id}\n" if case == "parts" else ""
        (project / "pipelines" / f"{name}.yaml").write_text(SERVING_YAML.format(
            name=name, run_id=run_id, source=SOURCE, partitions=partitions, output=OUTPUT[case]))
    return project, run_id


def _pool(api: AirflowAPI) -> None:
    try:
        api._raw("DELETE", f"/api/v2/pools/{POOL}")
    except Exception:  # noqa: BLE001 - absent
        pass
    api._raw("POST", "/api/v2/pools", {"name": POOL, "slots": SLOTS, "include_deferred": False})


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def _xcom(api: AirflowAPI, dag: str, run: str, task: str, map_index: int) -> dict:
    path = (f"/api/v2/dags/{dag}/dagRuns/{urllib.parse.quote(run, safe='')}/taskInstances/"
            f"{urllib.parse.quote(task, safe='')}/xcomEntries/return_value")
    value = api.get(path, map_index=map_index).get("value")
    return json.loads(value) if isinstance(value, str) else (value or {})


def _run(api: AirflowAPI, dag: str, timeout: float) -> dict:
    """Trigger one run of ``dag``, wait for it; its wall time, tasks and busy cores."""
    api.wait_for_dag(dag, timeout=180)
    api.unpause(dag)
    time.sleep(5)  # unpausing may create the latest interval's run itself
    runs = api.dag_runs(dag)
    run_id = str(runs[0]["dag_run_id"]) if runs else str(api.trigger(dag)["dag_run_id"])
    busy0, all0 = busy_jiffies()
    load = os.getloadavg()[0]
    run = api.wait_for_run(dag, run_id, timeout=timeout)
    busy1, all1 = busy_jiffies()
    tasks = []
    for ti in api.task_instances(dag, run_id):
        xcom = _xcom(api, dag, run_id, ti["task_id"], ti["map_index"])
        tasks.append({"task": ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""),
                      "seconds": _seconds(ti["start_date"], ti["end_date"]),
                      "step_seconds": xcom.get("seconds"), "peak_rss_mib": xcom.get("peak_rss_mib")})
    return {"run_id": run_id, "logical_date": run.get("logical_date") or run.get("run_after"),
            "seconds": _seconds(run["start_date"], run["end_date"]), "load": load,
            "busy_cores": (busy1 - busy0) / max(all1 - all0, 1) * (os.cpu_count() or 1), "tasks": tasks}


def _published(case: str) -> tuple[int, int]:
    import psycopg

    c = connector_config()
    with psycopg.connect(host=c["host"], port=c["port"], dbname=c["database"], user=c["user"],
                         password=c["password"]) as conn:
        row = conn.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {OUTPUT[case]}").fetchone()
    return int(row[0]), int(row[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each DAG run")
    args = ap.parse_args()
    load_stack_env()
    env = cli_env({k: v for k, v in os.environ.items() if k.startswith(("MBT_", "AIRFLOW_CONN_", "S3_", "PG_"))})
    api = AirflowAPI()
    api.health()
    root = Path(tempfile.mkdtemp(prefix="bench-airflow-parts-"))
    project, _ = _project(root, env)
    print(f"filling {args.rows:,} scoring rows ...", flush=True)
    _fill(args.rows)
    _drop_outputs()
    _pool(api)
    bucket, _, prefix = MANIFESTS_URI.removeprefix("s3://").partition("/")
    s3 = s3_client(os.environ)
    results = {}
    try:
        for case, dag in SERVE.items():
            s3_delete_prefix(s3, bucket, f"{prefix}{dag}/")
            sh(f"mbt compile {dag} --target prod && mbt deploy --target prod --select {dag} --to {MANIFESTS_URI}",
               project, env)
            print(f"running {dag} ...", flush=True)
            results[case] = r = _run(api, dag, args.timeout)
            rows, distinct = _published(case)
            assert rows == distinct == args.rows, f"{dag} published {rows} rows ({distinct} ids), not {args.rows}"
            label = {"plain": "1 partition", "parts": f"4 partitions, {SLOTS} slots"}[case]
            print(f"{label}: {r['seconds']:7.1f} s  {args.rows / r['seconds']:>10,.0f} rows/s  "
                  f"load average {r['load']:.1f}  cores busy {r['busy_cores']:.2f} of {os.cpu_count()}  "
                  f"published {rows:,} rows once each")
            for t in sorted(r["tasks"], key=lambda t: t["task"]):
                rss = f"{t['peak_rss_mib']:,.0f} MiB" if t["peak_rss_mib"] is not None else "-"
                print(f"    {t['task']:<34} task {t['seconds']:6.1f} s  step {t['step_seconds'] or 0:6.1f} s  "
                      f"peak RSS {rss}")
            print(f"    largest task peak RSS: {max((t['peak_rss_mib'] or 0) for t in r['tasks']):,.0f} MiB "
                  f"(limit 1,536 MiB)", flush=True)
    finally:
        for dag in SERVE.values():
            s3_delete_prefix(s3, bucket, f"{prefix}{dag}/")
    ratio = results["plain"]["seconds"] / results["parts"]["seconds"]
    ceiling = (os.cpu_count() or 1) / max(results["plain"]["busy_cores"], 1e-9)
    print(f"wall-time ratio 1 partition / 4 partitions: {ratio:.2f}x (target >= 1.5x); ceiling of any split "
          f"here: {os.cpu_count()} cores / {results['plain']['busy_cores']:.2f} busy = {ceiling:.2f}x")
    for dag in SERVE.values():
        api.retire_dag(dag)
    psql("-c", f"DROP TABLE IF EXISTS {SOURCE}")
    _drop_outputs()


if __name__ == "__main__":
    main()
