"""sklearn training parity (issue 14): ``mbt run`` of a sklearn training pipeline against a
hand-written script doing the same work on the same CSV.

Both run on the dev target's kind of resources: the CSV in a local folder and a local sqlite MLflow
store (``sqlite:///.../mlflow.db`` with artifacts in a local folder; no server, no S3), so the
figures are mbt's own overhead, not the stack's network. The work, for both:

  read the CSV (--rows generated churn-like rows, default 1,000,000) -> stratified random split
  (test 0.2, seed 42) -> impute median + standard scale the numbers, impute most frequent +
  one-hot the contract type (the customer id is not a feature) -> fit the same estimator with
  the same parameters (--model, --params; random_state 42) -> score the test set and compute
  roc_auc, accuracy, f1, precision, recall, log_loss, pr_auc -> log params, metrics and the model
  to MLflow (a sklearn model with explicit pip requirements, as mbt logs its pyfunc model) -> save
  the model file.

``mbt run`` also does what the hand-written script does not (stored Parquet artifacts with sha256,
the column plan, reference statistics for monitoring, the MLflow input dataset): that is part of
what is measured. Plots and registration are off in the pipeline (the script does neither).

Each run is a fresh process; the two alternate (hand-written first in odd rounds, mbt first in
even ones); the MLflow stores are created before the clock starts. Prints, per run and as the
median of --repeat: wall seconds and the peak RSS of the child (``os.wait4`` rusage, ``ru_maxrss``),
then the ratios mbt / hand-written and the load average. Asserts nothing about time.

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_sklearn_training.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MBT = Path(sys.executable).parent / "mbt"
PIPELINE = "training_bench"
DEFAULT_PARAMS = {"n_estimators": 20, "max_depth": 8, "n_jobs": -1}

PROFILES = """bench:
  target: dev
  outputs:
    dev:
      executor: {type: local}
      storage: {type: local, config: {base_path: ./local_artifacts}}
      data_connector: {type: local_file, config: {data_path: ./sample_data}}
      mlflow: {tracking_uri: "sqlite:///mlruns/mlflow.db", artifact_location: ./mlruns/artifacts}
      secrets: {provider: env}
"""

HAND_WRITTEN = r'''
"""What a data scientist writes by hand for the same training run."""
import json, sys, time
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
import sklearn.utils

csv, out, model_name, params = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
infer = sys.argv[5] == "infer"
started = time.perf_counter()
df = pd.read_csv(csv)
read_s = time.perf_counter() - started
y = df.pop("churned")
X = df.drop(columns=["customer_id"])
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
numeric = ["tenure", "monthly_charges", "total_charges"]
pre = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
     ["contract_type"])])
estimator = dict(sklearn.utils.all_estimators(type_filter="classifier"))[model_name](**params)
if "random_state" in estimator.get_params():
    estimator.set_params(random_state=42)  # what mbt's seed (default 42) sets
model = Pipeline([("pre", pre), ("model", estimator)])
fit_started = time.perf_counter()
model.fit(X_train, y_train)
fit_s = time.perf_counter() - fit_started
proba = model.predict_proba(X_test)[:, 1]
pred = (proba >= 0.5).astype(int)
values = {"roc_auc": metrics.roc_auc_score(y_test, proba), "accuracy": metrics.accuracy_score(y_test, pred),
          "f1": metrics.f1_score(y_test, pred), "precision": metrics.precision_score(y_test, pred),
          "recall": metrics.recall_score(y_test, pred), "log_loss": metrics.log_loss(y_test, proba),
          "pr_auc": metrics.average_precision_score(y_test, proba)}
log_started = time.perf_counter()
mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
if mlflow.get_experiment_by_name("bench_hand_written") is None:
    mlflow.create_experiment("bench_hand_written", artifact_location=str(out / "artifacts"))
mlflow.set_experiment("bench_hand_written")
with mlflow.start_run():
    mlflow.log_params({"model": model_name, **params, "rows.train": len(X_train), "rows.test": len(X_test)})
    mlflow.log_metrics(values)
    # cloudpickle: MLflow 3's default skops format refuses sklearn's tree types unless trusted one
    # by one (mbt's model is a joblib file inside a pyfunc model). Explicit requirements as mbt
    # gives them: without, MLflow infers them by loading the model in a subprocess (--infer-requirements)
    requirements = None if infer else [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"]
    mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle", pip_requirements=requirements)
joblib.dump(model, out / "model.joblib")
print("RESULT " + json.dumps({"roc_auc": values["roc_auc"], "read_s": read_s, "fit_s": fit_s,
                              "log_s": time.perf_counter() - log_started, "seconds": time.perf_counter() - started}))
'''


def churn_csv(path: Path, rows: int) -> None:
    """Churn-like rows (the frame of bench_ml_scoring.py: 2% missing total_charges)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_ml_scoring import _frame

    _frame(rows).to_csv(path, index=False)


def project(parent: Path, csv: Path, model: str, params: dict) -> Path:
    import yaml

    root = parent / "bench_project"
    (root / "pipelines").mkdir(parents=True)
    (root / "sample_data").mkdir()
    os.link(csv, root / "sample_data" / "customers.csv")  # the same file the script reads
    (root / "profiles.yaml").write_text(PROFILES)
    doc = {"schema_version": 1,
           "project": {"name": PIPELINE, "experiment_name": "bench_mbt", "problem_type": "binary_classification"},
           "deployment": {"cadence": "monthly"},
           "training": {
               "data_source": {"label_table": "customers"},
               "schema": {"target": {"label_column": "churned", "classes": [0, 1], "positive_class": 1},
                          "identifiers": {"primary_key": "customer_id"}},
               "preprocessing": {"impute": {"numeric": "median", "categorical": "most_frequent"},
                                 "scale": "standard", "encode": "onehot"},
               "split": {"test_size": 0.2, "seed": 42, "stratify": True},
               "model_training": {"framework": "sklearn", "config": {"model": model, "seed": 42, **params}},
               "evaluation": {"primary_metric": "roc_auc",
                              "additional_metrics": ["accuracy", "f1", "precision", "recall"],
                              "generate_plots": False}}}
    (root / "pipelines" / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def child(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, str, str]:
    """Run one fresh process; (wall seconds, peak RSS MiB of that child, stdout, stderr)."""
    out, err = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, argv))} exited {proc.returncode}\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout, stderr  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="RandomForestClassifier")
    parser.add_argument("--params", type=json.loads, default=DEFAULT_PARAMS, help="estimator parameters (JSON)")
    parser.add_argument("--infer-requirements", action="store_true",
                        help="the script lets MLflow infer the model's requirements (its default; mbt never does)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mbt-bench-sklearn-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        csv = tmp / "customers.csv"
        started = time.perf_counter()
        churn_csv(csv, args.rows)
        print(f"rows: {args.rows:,} ({csv.stat().st_size / 2**20:.0f} MiB CSV, written in "
              f"{time.perf_counter() - started:.1f} s); {args.model} {json.dumps(args.params)}; "
              f"{os.cpu_count()} cores; dev target: local CSV, sqlite MLflow store")
        root = project(tmp, csv, args.model, args.params)
        script = tmp / "hand_written.py"
        script.write_text(HAND_WRITTEN)
        hand_out = tmp / "hand_written_out"
        hand_out.mkdir()
        for uri in (f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", f"sqlite:///{hand_out / 'mlflow.db'}"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(exist_ok=True)
            subprocess.run([sys.executable, "-c", "import mlflow, sys; mlflow.MlflowClient(sys.argv[1])"
                            ".search_experiments()", uri], check=True, env=env, capture_output=True)
        argv = {"hand-written": [sys.executable, str(script), str(csv), str(hand_out), args.model,
                                 json.dumps(args.params), "infer" if args.infer_requirements else "explicit"],
                "mbt run": [str(MBT), "run", "--select", PIPELINE, "--target", "dev"]}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in argv}
        for i in range(args.repeat):
            order = list(argv) if i % 2 == 0 else list(reversed(argv))
            for name in order:
                load = os.getloadavg()
                wall, rss, stdout, _ = child(argv[name], root if name == "mbt run" else tmp, env)
                runs[name].append((wall, rss))
                if name == "mbt run":
                    results = json.loads((root / "target" / PIPELINE / "run_results.json").read_text())
                    metrics = next(Path(s["outputs"]["metrics"]) for s in results["steps"] if s["name"] == "evaluate")
                    auc = json.loads(metrics.read_text())["metrics"]["roc_auc"]
                    steps = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in results["steps"])
                    detail = f"AUC {auc:.4f}; steps (s): {steps}"
                else:
                    result = json.loads(next(x for x in stdout.splitlines() if x.startswith("RESULT "))[7:])
                    detail = (f"AUC {result['roc_auc']:.4f}; read {result['read_s']:.1f} s, "
                              f"fit {result['fit_s']:.1f} s, MLflow + save {result['log_s']:.1f} s")
                print(f"round {i + 1} {name:<13} {wall:7.1f} s  {rss:7.0f} MiB  "
                      f"(load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})  {detail}", flush=True)
        median = {name: (statistics.median(w for w, _ in rs), statistics.median(r for _, r in rs))
                  for name, rs in runs.items()}
        print(f"\nmedian of {args.repeat}:")
        for name, (wall, rss) in median.items():
            print(f"  {name:<13} {wall:7.1f} s  {rss:7.0f} MiB peak RSS")
        (mbt_s, mbt_rss), (hand_s, hand_rss) = median["mbt run"], median["hand-written"]
        print(f"mbt / hand-written: time {mbt_s / hand_s:.2f}x, peak RSS {mbt_rss / hand_rss:.2f}x")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
