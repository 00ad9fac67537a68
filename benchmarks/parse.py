"""DAG parse cost of ``dags/mbt_loader.py`` with many manifests.

* 200 manifests (alternating training/serving, cloned from real ``mbt compile`` output of the
  ``mbt init`` demo project) in a local folder;
* parse time of the loader vs a hand-written static DAG file with the same 200 DAGs and tasks
  (plain ``airflow.sdk.DAG`` + ``MBTStepOperator``), each parse in a fresh process, median of N;
  ``airflow.sdk`` is imported and ``gc.freeze()`` called before the clock starts, as in Airflow's
  DAG processor (``DagFileProcessorManager.before_run`` freezes the heap before forking parsers,
  so a collection during a parse scans only what that parse allocated);
* task-time parse (``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` set, which ``get_parsing_context`` reads)
  as a share of a full parse;
* dag-factory 1.1.0 building the same DAGs (same operator, arguments and dependencies) from one
  YAML file per DAG, in its own venv (``_bench_venv``: created once under ``.stack/bench-venvs/``
  with our apache-airflow version, reused afterwards; ``--no-dag-factory`` skips it);
* with ``--s3``: the same manifests published to a fresh prefix of the stack's S3; S3 requests
  of a first parse, of a parse after the TTL with nothing changed, and within the TTL (counted
  by wrapping botocore's ``BaseClient._make_api_call``, so clients of any session count).

Targets: loader/static <= 1.3x, dag-factory/loader >= 3x, task-time build <= 5% of a full one.

Run: .venv/bin/python benchmarks/parse.py [--count 200] [--repeat 5] [--s3] [--no-dag-factory]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOADER = REPO / "dags" / "mbt_loader.py"
BIN = Path(sys.executable).parent

PROBE = r"""
import json, os, sys, time
import gc
import airflow.sdk  # already loaded in Airflow's DAG processor
gc.freeze()  # as the DAG processor does before it forks a parser (dag_processing/manager.py)
counts = {}
if os.environ.get("BENCH_COUNT_S3"):
    from botocore.client import BaseClient
    _real = BaseClient._make_api_call
    def _count(self, operation_name, api_params):
        counts[operation_name] = counts.get(operation_name, 0) + 1
        return _real(self, operation_name, api_params)
    BaseClient._make_api_call = _count
from airflow.dag_processing.dagbag import DagBag
started, cpu_started = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
mbt = {}
if "airflow_mbt.dag_factory" in sys.modules:
    from airflow_mbt import dag_factory
    mbt = {k: v for k, v in dag_factory.LAST_PARSE.items() if k in ("seconds", "from_cache", "fetched", "errors")}
print("RESULT " + json.dumps({"seconds": seconds, "cpu": cpu, "dags": len(bag.dags), "errors": len(bag.import_errors),
                              "tasks": sum(len(d.tasks) for d in bag.dags.values()), "s3": counts, "mbt": mbt}))
"""


def _mbt(cwd: Path, *args: str) -> None:
    subprocess.run([str(BIN / "mbt"), *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=600)


def compiled_templates(work: Path):
    """Real compiled manifests of the demo project (dev target): training and serving."""
    from airflow_mbt.manifest import Manifest

    _mbt(work, "init", "demo")
    project = work / "demo"
    serving = project / "pipelines" / "serving_churn_model_v1.yaml"
    serving.write_text(serving.read_text().replace("<run_id_from_mlflow>", "0123456789abcdef0123456789abcdef"))
    _mbt(project, "compile", "training_churn_model_v1", "serving_churn_model_v1", "--target", "dev")
    return [Manifest.read(project / "target" / n / "manifest.json")
            for n in ("training_churn_model_v1", "serving_churn_model_v1")]


def clone(template, name: str):
    from airflow_mbt.manifest import Manifest

    body = json.loads(template.to_json())
    body.pop("content_hash")
    body["pipeline"]["name"] = name
    body["config"]["project"]["name"] = name
    return Manifest.build(body)


def write_manifests(root: Path, templates, count: int) -> list:
    manifests = [clone(templates[i % 2], f"{templates[i % 2].kind}_pipeline_{i:04d}") for i in range(count)]
    for m in manifests:
        m.write(root / m.name / "manifest.json")
    return manifests


def write_static_dag_file(path: Path, manifests, root: Path) -> None:
    """What a person would write by hand for the same DAGs (no manifest reading at all)."""
    lines = ['"""Hand-written equivalent of the loader output (benchmark baseline)."""',
             "from datetime import datetime, timedelta, timezone", "",
             "from airflow.sdk import DAG", "", "from airflow_mbt.operators.step import MBTStepOperator", "",
             "START = datetime(2024, 1, 1, tzinfo=timezone.utc)", ""]
    for m in manifests:
        var = m.name
        lines.append(f"with DAG(dag_id={m.name!r}, schedule={m.schedule!r}, start_date=START, catchup=False, "
                     f"max_active_runs=1, tags={sorted({*m.pipeline.tags, str(m.kind), 'mbt'})!r}, "
                     f"default_args={{'owner': 'de-team', 'retries': 2, 'retry_delay': timedelta(minutes=5)}}) "
                     f"as {var}:")
        for s in m.steps:
            lines.append(f"    {s.name} = MBTStepOperator(task_id={s.name!r}, pipeline={m.name!r}, step={s.name!r}, "
                         f"manifest_uri={str(root / m.name / 'manifest.json')!r}, "
                         f"manifest_hash={m.content_hash!r}, target={m.target_name!r})")
        for s in m.steps:
            for up in s.depends_on:
                lines.append(f"    {up} >> {s.name}")
        lines.append("")
    path.write_text("\n".join(lines))


DAG_FACTORY = "dag-factory==1.1.0"


def write_dag_factory_files(folder: Path, manifests, root: Path) -> Path:
    """The same DAGs for dag-factory: one YAML file per DAG (operator, arguments, dependencies
    and DAG settings as in the static file), and the DAG file that loads the folder."""
    import yaml

    folder.mkdir(parents=True)
    for m in manifests:
        tasks = [{"task_id": s.name, "operator": "airflow_mbt.operators.step.MBTStepOperator",
                  "pipeline": m.name, "step": s.name, "manifest_uri": str(root / m.name / "manifest.json"),
                  "manifest_hash": m.content_hash, "target": m.target_name,
                  **({"dependencies": list(s.depends_on)} if s.depends_on else {})} for s in m.steps]
        doc = {m.name: {"default_args": {"owner": "de-team", "retries": 2, "retry_delay_sec": 300,
                                         "start_date": "2024-01-01"},
                        "schedule": m.schedule, "catchup": False, "max_active_runs": 1,
                        "tags": sorted({*m.pipeline.tags, str(m.kind), "mbt"}), "tasks": tasks}}
        (folder / f"{m.name}.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    dag_file = folder.parent / "dag_factory_dags.py"
    dag_file.write_text('"""airflow DAGs built by dag-factory from YAML (benchmark comparison)."""\n'
                        "from dagfactory import load_yaml_dags\n\n"
                        f"load_yaml_dags(globals_dict=globals(), dags_folder={str(folder)!r}, "
                        f"defaults_config_path={str(folder)!r})\n")
    return dag_file


def dag_factory_python() -> Path:
    """Python of the cached dag-factory venv (installed on first use, with our airflow version)."""
    import airflow

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bench_venv import bench_venv

    return bench_venv(f"{DAG_FACTORY.replace('==', '-')}-airflow-{airflow.__version__}",
                      [DAG_FACTORY, f"apache-airflow=={airflow.__version__}"])


def parse(dag_file: Path, env: dict, repeat: int, python: Path | None = None) -> list[dict]:
    results = []
    for _ in range(repeat):
        proc = subprocess.run([str(python or sys.executable), "-c", PROBE, str(dag_file)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise SystemExit(f"parse of {dag_file} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    return results


def median(results: list[dict], key=lambda r: r["seconds"]) -> float:
    return statistics.median(key(r) for r in results)


def s3_requests(manifests, env: dict) -> None:
    import uuid

    from airflow_mbt.manifests import publish_manifests

    import logging

    logging.getLogger("airflow_mbt").setLevel(logging.WARNING)  # one INFO line per published manifest
    prefix = f"s3://mbt-pipeline-artifacts/bench-parse/{uuid.uuid4().hex[:10]}/"
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")})
    publish_manifests(manifests, prefix, conn_id="mbt_s3")
    s3_env = {**env, "MBT_MANIFESTS_URI": prefix, "MBT_MANIFESTS_CONN_ID": "mbt_s3", "BENCH_COUNT_S3": "1"}
    first = parse(LOADER, {**s3_env, "MBT_CACHE_TTL_SECONDS": "0"}, 1)[0]
    after_ttl = parse(LOADER, {**s3_env, "MBT_CACHE_TTL_SECONDS": "0"}, 1)[0]
    within = parse(LOADER, {**s3_env, "MBT_CACHE_TTL_SECONDS": "3600"}, 1)[0]
    from airflow_mbt.manifests.backends import s3_location

    s3_location(prefix, "mbt_s3").storage.delete_prefix("")
    print(f"S3 ({prefix}, removed afterwards):")
    for label, r in (("first parse (empty cache)", first), ("parse after TTL, nothing changed", after_ttl),
                     ("parse within TTL", within)):
        print(f"  {label:34s} {r['dags']} DAGs in {r['seconds']:.2f}s, requests {r['s3'] or {}}, "
              f"GetObject={r['s3'].get('GetObject', 0)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--s3", action="store_true", help="also count S3 requests (needs scripts/stack.sh up)")
    ap.add_argument("--no-dag-factory", action="store_true", help="skip the dag-factory comparison")
    args = ap.parse_args()
    df_python = None if args.no_dag_factory else dag_factory_python()
    # Byte-compile our package as pip does for an installed one: with PYTHONDONTWRITEBYTECODE set
    # (CI, this machine) every fresh parser process would otherwise recompile ~20 of our modules.
    import compileall

    compileall.compile_dir(str(REPO / "airflow_mbt"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="mbt-bench-parse-") as tmp:
        work = Path(tmp)
        manifests = write_manifests(work / "manifests", compiled_templates(work), args.count)
        static = work / "static_dags.py"
        write_static_dag_file(static, manifests, work / "manifests")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MBT_", "_AIRFLOW"))}
        env.update({"AIRFLOW_HOME": str(work / "airflow_home"), "MBT_MANIFESTS_URI": str(work / "manifests"),
                    "MBT_CACHE_DIR": str(work / "cache"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        loader, baseline = [], []
        for _ in range(args.repeat):  # interleaved, so a change in machine load hits both alike
            loader += parse(LOADER, env, 1)
            baseline += parse(static, env, 1)
        one = manifests[len(manifests) // 2].name
        task_time = parse(LOADER, {**env, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": one}, args.repeat)
        assert loader[0]["dags"] == baseline[0]["dags"] == args.count and loader[0]["errors"] == 0
        assert loader[0]["tasks"] == baseline[0]["tasks"] and task_time[0]["dags"] == 1
        yaml_dags = None
        if df_python is not None:
            df_file = write_dag_factory_files(work / "dag_factory_yaml", manifests, work / "manifests")
            # PYTHONPATH: the YAML names our operator; no telemetry from a benchmark
            df_env = {**env, "PYTHONPATH": str(REPO), "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
                      "DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "true"}
            yaml_dags = parse(df_file, df_env, args.repeat, df_python)
            assert yaml_dags[0]["dags"] == args.count and yaml_dags[0]["errors"] == 0, yaml_dags[0]
            assert yaml_dags[0]["tasks"] == loader[0]["tasks"]
        full, static_s, single = median(loader), median(baseline), median(task_time)
        full_mbt = median(loader, lambda r: r["mbt"]["seconds"])
        single_mbt = median(task_time, lambda r: r["mbt"]["seconds"])
        cpu_full, cpu_static = median(loader, lambda r: r["cpu"]), median(baseline, lambda r: r["cpu"])
        print(f"{args.count} manifests, {loader[0]['tasks']} tasks, median of {args.repeat} fresh processes "
              f"(airflow.sdk pre-imported, heap frozen), load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")
        print(f"  loader file parse           {full:7.3f}s wall {cpu_full:7.3f}s CPU   "
              f"(build_dags itself {full_mbt:.3f}s)")
        print(f"  static DAG file parse       {static_s:7.3f}s wall {cpu_static:7.3f}s CPU")
        print(f"  ratio loader/static         {full / static_s:7.2f}x wall {cpu_full / cpu_static:5.2f}x CPU   "
              f"(target <= 1.3x; CPU time is the figure to trust when the machine is busy)")
        if yaml_dags is not None:
            yaml_s = median(yaml_dags)
            print(f"  dag-factory YAML parse      {yaml_s:7.3f}s   ({DAG_FACTORY}, same DAGs, one YAML file each)")
            print(f"  ratio dag-factory/loader    {yaml_s / full:7.2f}x   (target >= 3x)")
        print(f"  task-time parse ({one}) {single:7.3f}s = {100 * single / full:.1f}% of a full parse; "
              f"build_dags {single_mbt:.4f}s = {100 * single_mbt / full_mbt:.1f}% of a full build_dags "
              f"(target <= 5%)")
        if args.s3:
            import boto3  # noqa: F401 - fail early without boto3

            s3_requests(manifests, {**env, **{k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")}})


if __name__ == "__main__":
    main()
