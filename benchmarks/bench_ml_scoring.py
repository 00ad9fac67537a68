"""Serving-path costs of the ML layer on churn-shaped data: preprocessing fit and replay, the
feature-contract check, sklearn scoring, and (``--h2o``) H2O MOJO scoring without a cluster,
which starts a JVM per call.

Run: .venv/bin/python benchmarks/bench_ml_scoring.py [--rows 1000000] [--h2o]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    tenure = rng.integers(1, 73, rows)
    monthly = rng.uniform(18, 120, rows).round(2)
    contract = rng.choice(["month-to-month", "one_year", "two_year"], rows, p=[0.55, 0.25, 0.2])
    logit = -2 + (contract == "month-to-month") * 1.2 - 0.045 * (tenure - 24) + 0.03 * (monthly - 65)
    return pd.DataFrame({
        "customer_id": [f"CUST_{i:07d}" for i in range(rows)],
        "tenure": tenure,
        "monthly_charges": monthly,
        "total_charges": np.where(rng.random(rows) < 0.02, np.nan, monthly * tenure),
        "contract_type": contract,
        "churned": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int),
    })


def _timed(label: str, rows: int, fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<44} {best:8.3f} s  {rows / best:>12,.0f} rows/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--h2o", action="store_true", help="also train a small AutoML and time MOJO scoring")
    args = parser.parse_args()

    from airflow_mbt.ml import contract, preprocessing
    from airflow_mbt.plugins.frameworks.sklearn import SklearnFramework

    df = _frame(args.rows)
    features = df.drop(columns=["churned"])
    print(f"rows: {args.rows:,}")
    pre = _timed("preprocessing.fit", args.rows,
                 lambda: preprocessing.fit(df, label_column="churned", id_column="customer_id"))
    X = _timed("preprocessing.transform (replay)", args.rows, lambda: preprocessing.transform(features, pre))
    _timed("contract.check", args.rows, lambda: contract.check(features, pre))

    train_rows = min(args.rows, 50_000)
    fw = SklearnFramework(None)
    model = fw.train(X.head(train_rows), df["churned"].head(train_rows), "binary_classification",
                     {"model": "RandomForestClassifier", "n_estimators": 50, "max_depth": 8, "n_jobs": -1}, None)
    _timed("sklearn RandomForest(50 trees) predict", args.rows,
           lambda: fw.predict(model, X, "binary_classification"), repeat=1)

    if args.h2o:
        from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework
        from airflow_mbt.runtime.context import TargetRuntime

        tmp = Path(tempfile.mkdtemp(prefix="mbt-bench-"))
        runtime = TargetRuntime(target={"name": "bench", "h2o": {"mode": "local", "port": 54381, "max_mem_size": "1g"}},
                                project_dir=tmp)
        h2o_fw = H2OAutoMLFramework(runtime)

        class Ctx:
            run_id = "run_20260101_000000_beef"

        try:
            started = time.perf_counter()
            trained = h2o_fw.train(X.head(5000), df["churned"].head(5000), "binary_classification",
                                   {"max_runtime_secs": 15, "max_models": 3, "seed": 1, "nfolds": 3}, Ctx())
            print(f"{'H2O AutoML (JVM start + 15 s budget, 5k rows)':<44} {time.perf_counter() - started:8.3f} s")
            h2o_fw.save(trained, tmp / "model")
        finally:
            h2o_fw.cleanup()
        mojo = h2o_fw.load(tmp / "model")
        n = min(args.rows, 100_000)
        _timed(f"H2O MOJO predict ({trained.leader.algo}, {n:,} rows)", n,
               lambda: h2o_fw.predict(mojo, X.head(n), "binary_classification"), repeat=1)


if __name__ == "__main__":
    main()
