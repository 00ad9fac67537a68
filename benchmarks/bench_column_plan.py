"""Cost of the column plan and its encoders (issue 14) on preprocessing fit and replay.

Baseline: ``airflow_mbt/ml/preprocessing.py`` as of commit ``BASELINE`` (before the column plan),
loaded from git and run alongside the current module on the same 1M churn-shaped rows with the
same settings. Prints best-of-N seconds and the ratio current / baseline; the target is a ratio
of at most 1.10 for both fit and replay. A second table shows the new treatments (a CSV datetime
column as parts, a missing indicator, frequency encoding of a high-cardinality column), which the
baseline cannot do, against the current plain fit.

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_column_plan.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "55758cb"


def load_baseline():
    source = subprocess.run(["git", "show", f"{BASELINE}:airflow_mbt/ml/preprocessing.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="mbt-bench-")) / "preprocessing_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("preprocessing_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from bench_ml_scoring import _frame

    from airflow_mbt.ml import preprocessing as current

    baseline = load_baseline()
    df = _frame(args.rows)
    kw = {"label_column": "churned", "id_column": "customer_id"}
    pre_old, pre_new = baseline.fit(df, **kw), current.fit(df, **kw)
    assert pre_old["output_columns"] == pre_new["output_columns"], "the plan must not change the churn features"
    rows = []
    # interleave baseline and current so machine load hits both alike
    fit_old = fit_new = rep_old = rep_new = float("inf")
    for _ in range(args.repeat):
        fit_old = min(fit_old, best(lambda: baseline.fit(df, **kw), 1))
        fit_new = min(fit_new, best(lambda: current.fit(df, **kw), 1))
        rep_old = min(rep_old, best(lambda: baseline.transform(df, pre_old), 1))
        rep_new = min(rep_new, best(lambda: current.transform(df, pre_new), 1))
    assert np.allclose(baseline.transform(df, pre_old).to_numpy(), current.transform(df, pre_new).to_numpy())
    rows += [("fit", fit_old, fit_new), ("replay", rep_old, rep_new)]
    print(f"{args.rows:,} rows, best of {args.repeat}; baseline = preprocessing.py at {BASELINE}")
    print(f"{'':<8} {'baseline s':>11} {'current s':>10} {'ratio':>7}  target <= 1.10")
    for name, old, new in rows:
        print(f"{name:<8} {old:>11.3f} {new:>10.3f} {new / old:>7.3f}  {'ok' if new / old <= 1.10 else 'OVER'}")

    rich = df.assign(signup=np.datetime_as_string(np.datetime64("2020-01-01") + (np.arange(len(df)) % 1500), "D"),
                     city=[f"city_{i % 400}" for i in range(len(df))])
    rich.loc[rich.index % 9 == 0, "monthly_charges"] = np.nan
    rkw = {**kw, "high_cardinality": "frequency", "missing_indicator_threshold": 0.05}
    pre_rich = current.fit(rich, **rkw)
    fit_rich = best(lambda: current.fit(rich, **rkw), args.repeat)
    rep_rich = best(lambda: current.transform(rich, pre_rich), args.repeat)
    print(f"\nnew treatments (CSV datetime -> parts, missing indicator, frequency encoding of 400 levels): "
          f"{len(pre_rich['output_columns'])} features")
    print(f"fit      {fit_rich:>8.3f} s  ({fit_rich / fit_new:.2f} x the plain current fit)")
    print(f"replay   {rep_rich:>8.3f} s  ({rep_rich / rep_new:.2f} x the plain current replay)")


if __name__ == "__main__":
    main()
