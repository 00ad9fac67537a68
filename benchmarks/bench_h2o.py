"""H2O costs of the h2o_automl framework, each printed next to a baseline measured in the same run.

--part scoring   MOJO scoring of --rows churn rows (default 1M) with the long-lived scorer, next to
                 sklearn's RandomForest rate and the old ``h2o.mojo_predict_pandas`` path (on
                 --baseline-rows rows; it starts a JVM and round-trips CSV per call).
--part training  ``mbt run`` of the demo training pipeline (dev target, its own local JVM) on
                 --rows customers, against a hand-written h2o script doing the same work on the
                 same CSV and AutoML budget (read, stratified split, import, AutoML, test AUC,
                 MOJO download). Prints both wall times, the ratio and the step times.
--part nodes     the same AutoML budget (time-bound) on a 1-node and a 2-node cloud started by
                 ``scripts/stack.sh`` (MBT_H2O_NODES) on spare ports: models trained, best AUC.

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_h2o.py --part scoring [--rows 1000000]
Ports 54411-54424 (never the stack's 54321).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
TRAIN_BUDGET = {"max_models": 2, "nfolds": 0, "seed": 1, "include_algos": ["GLM", "GBM"], "sort_metric": "AUC"}
JVM_PORT = 54411
HEAP = "4g"


class Ctx:
    run_id = "run_20260101_000000_beef"


def _rate(label: str, rows: int, seconds: float) -> float:
    print(f"{label:<58} {seconds:8.3f} s  {rows / seconds:>12,.0f} rows/s")
    return rows / seconds


def part_scoring(rows: int, baseline_rows: int) -> None:
    import h2o

    from airflow_mbt.ml import preprocessing
    from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework, genmodel_jar
    from airflow_mbt.plugins.frameworks.sklearn import SklearnFramework
    from airflow_mbt.runtime.context import TargetRuntime
    from bench_ml_scoring import _frame

    df = _frame(rows)
    pre = preprocessing.fit(df, label_column="churned", id_column="customer_id")
    X = preprocessing.transform(df.drop(columns=["churned"]), pre)
    y = df["churned"]
    print(f"rows: {rows:,}, features: {X.shape[1]}")
    sk = SklearnFramework(None)
    sk_model = sk.train(X.head(50_000), y.head(50_000), "binary_classification",
                        {"model": "RandomForestClassifier", "n_estimators": 50, "max_depth": 8, "n_jobs": -1}, None)
    started = time.perf_counter()
    sk.predict(sk_model, X, "binary_classification")
    sk_rate = _rate("sklearn RandomForest(50 trees) predict", rows, time.perf_counter() - started)

    tmp = Path(tempfile.mkdtemp(prefix="mbt-bench-h2o-"))
    fw = H2OAutoMLFramework(TargetRuntime(target={"name": "bench", "h2o": {"mode": "local", "port": JVM_PORT,
                                                                           "max_mem_size": "1g"}}, project_dir=tmp))
    try:
        trained = fw.train(X.head(20_000), y.head(20_000), "binary_classification",
                           TRAIN_BUDGET, Ctx())
        fw.save(trained, tmp / "model")
    finally:
        fw.cleanup()
    mojo = fw.load(tmp / "model")
    print(f"churn model: {mojo.info['leader']} ({mojo.info['algo']})")
    started = time.perf_counter()
    fw.predict(mojo, X.head(1000), "binary_classification")
    print(f"{'scorer JVM start + MOJO load + 1,000 rows':<58} {time.perf_counter() - started:8.3f} s")
    started = time.perf_counter()
    fw.predict(mojo, X, "binary_classification")
    rate = _rate("H2O MOJO predict, long-lived scorer", rows, time.perf_counter() - started)
    fw.cleanup()
    n = min(rows, baseline_rows)
    started = time.perf_counter()
    h2o.mojo_predict_pandas(X.head(n), mojo_zip_path=str(mojo.path), genmodel_jar_path=str(genmodel_jar()),
                            verbose=False)
    old = _rate(f"h2o.mojo_predict_pandas (before; {n:,} rows)", n, time.perf_counter() - started)
    print(f"scorer / sklearn = {rate / sk_rate:.2f}; scorer / mojo_predict_pandas = {rate / old:.1f}x")


def _demo_project(parent: Path, rows: int) -> Path:
    import yaml

    from airflow_mbt.scaffold.sample_data import write_csvs

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([str(Path(sys.executable).parent / "mbt"), "init", "demo"], cwd=parent, check=True, env=env,
                   capture_output=True)
    project = parent / "demo"
    write_csvs(project / "sample_data", n_customers=rows, n_score=1000, seed=7)
    profiles = yaml.safe_load((project / "profiles.yaml").read_text())
    profiles["demo"]["outputs"]["dev"]["h2o"] = {"mode": "local", "port": JVM_PORT, "max_mem_size": HEAP}
    (project / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    pipeline = project / "pipelines" / "training_churn_model_v1.yaml"
    doc = yaml.safe_load(pipeline.read_text())
    doc["training"]["model_training"]["config"] = TRAIN_BUDGET
    doc["training"]["evaluation"]["generate_plots"] = False
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


HAND_WRITTEN = r'''
import sys, time, h2o, pandas as pd
from h2o.automl import H2OAutoML
from sklearn.model_selection import train_test_split
csv, port, heap, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
budget = __BUDGET__
df = pd.read_csv(csv)
train, test = train_test_split(df, test_size=0.2, random_state=42, stratify=df["churned"])
train.to_csv(out + "/train.csv", index=False); test.to_csv(out + "/test.csv", index=False)
h2o.init(ip="127.0.0.1", port=port, max_mem_size=heap, verbose=False); h2o.no_progress()
types = {"churned": "enum"}
tr = h2o.import_file(out + "/train.csv", col_types=types); te = h2o.import_file(out + "/test.csv", col_types=types)
x = [c for c in tr.columns if c not in ("customer_id", "churned")]
aml = H2OAutoML(**budget); aml.train(x=x, y="churned", training_frame=tr)
print("AUC", aml.leader.model_performance(te).auc())
aml.leader.download_mojo(path=out)
h2o.cluster().shutdown()
'''


def part_training(rows: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mbt-bench-h2o-train-"))
    project = _demo_project(tmp, rows)
    print(f"rows: {rows:,} customers; AutoML budget {TRAIN_BUDGET}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = tmp / "hand_written.py"
    script.write_text(HAND_WRITTEN.replace("__BUDGET__", repr(TRAIN_BUDGET)))
    out = tmp / "script_out"
    out.mkdir()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), str(project / "sample_data" / "customers.csv"),
                           str(JVM_PORT), HEAP, str(out)], env=env, capture_output=True, text=True)
    script_s = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    print(f"{'hand-written h2o script':<40} {script_s:8.1f} s   {proc.stdout.strip().splitlines()[-1]}")
    started = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "mbt"), "run", "--select", "training_churn_model_v1",
                           "--target", "dev"], cwd=project, env=env, capture_output=True, text=True)
    mbt_s = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-3000:])
    results = json.loads((project / "target" / "training_churn_model_v1" / "run_results.json").read_text())
    metrics = next(Path(s["outputs"]["metrics"]) for s in results["steps"] if s["name"] == "evaluate")
    auc = json.loads(metrics.read_text())["metrics"]["roc_auc"]
    print(f"{'mbt run (dev target)':<40} {mbt_s:8.1f} s   AUC {auc:.4f}")
    print("  steps: " + ", ".join(f"{s['name']} {s['seconds']:.1f}s" for s in results["steps"]))
    print(f"mbt run / hand-written = {mbt_s / script_s:.2f}x")


def _stack(tmp: Path, nodes: int, port: int, *args: str) -> None:
    env = {**os.environ, "MBT_STACK_DIR": str(tmp), "MBT_H2O_PORT": str(port), "MBT_H2O_NODES": str(nodes),
           "MBT_H2O_XMX": "2g"}
    subprocess.run(["bash", str(ROOT / "scripts" / "stack.sh"), *args, "h2o"], env=env, check=True)


def part_nodes(rows: int, seconds: int) -> None:
    from airflow_mbt.ml import preprocessing
    from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework, to_pandas
    from airflow_mbt.runtime.context import TargetRuntime
    from bench_ml_scoring import _frame

    df = _frame(rows)
    pre = preprocessing.fit(df, label_column="churned", id_column="customer_id")
    X = preprocessing.transform(df.drop(columns=["churned"]), pre)
    budget = {"max_runtime_secs": seconds, "seed": 1, "nfolds": 3, "sort_metric": "AUC",
              "exclude_algos": ["DeepLearning"]}
    print(f"rows: {rows:,}; AutoML budget {budget}")
    for nodes, port in ((1, 54415), (2, 54419)):
        tmp = Path(tempfile.mkdtemp(prefix=f"mbt-bench-h2o-{nodes}n-"))
        _stack(tmp, nodes, port, "up")
        try:
            fw = H2OAutoMLFramework(TargetRuntime(target={"name": "bench", "h2o": {"url": f"http://127.0.0.1:{port}"}},
                                                  project_dir=tmp))
            try:
                started = time.perf_counter()
                trained = fw.train(X, df["churned"], "binary_classification", budget, Ctx())
                wall = time.perf_counter() - started
                board = to_pandas(trained.automl.leaderboard)
                print(f"{nodes} node(s): {len(board)} models in {wall:.0f} s, best CV AUC {board['auc'].max():.4f} "
                      f"({trained.leader.model_id})")
            finally:
                fw.cleanup()
        finally:
            _stack(tmp, nodes, port, "down")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["scoring", "training", "nodes"], required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=120, help="AutoML max_runtime_secs for --part nodes")
    args = parser.parse_args()
    if args.part == "scoring":
        part_scoring(args.rows, args.baseline_rows)
    elif args.part == "training":
        part_training(args.rows)
    else:
        part_nodes(args.rows, args.seconds)


if __name__ == "__main__":
    main()
