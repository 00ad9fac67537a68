"""Alias resolution cost: MLflow registry calls made by one serving run that follows
``model_name@champion``, counted on ``MlflowClient`` itself (every registry method wrapped), for
a scoring table streamed in many chunks; against the same run pinned by ``run_id`` (the baseline:
zero registry calls). Also counts every MLflow client call of both runs.

Runs on the dev tracking store (sqlite in a temp project), no services needed:
    .venv/bin/python benchmarks/bench_alias_resolution.py [--score-rows 20000] [--chunk-rows 1000]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit"))
REGISTRY_METHODS = ("get_model_version_by_alias", "get_registered_model", "get_model_version",
                    "search_model_versions", "get_latest_versions")


def count_calls(counter: collections.Counter) -> None:
    """Wrap every public ``MlflowClient`` method so each call is counted by name."""
    from mlflow import MlflowClient

    for name in dir(MlflowClient):
        attr = getattr(MlflowClient, name)
        if name.startswith("_") or not callable(attr) or isinstance(attr, type):
            continue

        def wrap(fn, name=name):
            @functools.wraps(fn)
            def inner(*args, **kwargs):
                counter[name] += 1
                return fn(*args, **kwargs)
            return inner
        setattr(MlflowClient, name, wrap(attr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-rows", type=int, default=20000)
    parser.add_argument("--chunk-rows", type=int, default=1000)
    args = parser.parse_args()
    os.environ["MBT_CHUNK_ROWS"] = str(args.chunk_rows)
    from ml_pipeline_fixtures import fetch, make_manifest, make_project, run_steps, serving_config, training_config

    from airflow_mbt.manifest import Manifest
    from airflow_mbt.pipeline.compiler import manifest_steps

    with tempfile.TemporaryDirectory(prefix="mbt-bench-alias-") as tmp:
        root = make_project(Path(tmp), n_customers=600, n_score=args.score_rows)
        registration = {"model_name": "bench_churn", "alias": "champion", "promote": "always",
                        "compare_on": "roc_auc", "approval": "none"}
        base = make_manifest(training_config(training={"registration": registration,
                                                       "evaluation": {"generate_plots": False}}))
        training = Manifest.build({**dict(base.data), "steps": manifest_steps("training", {}, registration)})
        train_id = run_steps(training, root)
        mlflow_run = fetch(root, training, train_id, "mlflow_run")

        counts: dict[str, collections.Counter] = {}
        counter: collections.Counter = collections.Counter()
        count_calls(counter)
        for label, source in (("run_id (baseline)", {"registry": "mlflow", "run_id": mlflow_run["run_id"]}),
                              ("model_name@champion", {"registry": "mlflow", "model_name": "bench_churn",
                                                       "alias": "champion"})):
            cfg = serving_config("unused")
            cfg["serving"]["model_source"] = source
            counter.clear()
            run_steps(make_manifest(cfg), root)
            counts[label] = collections.Counter(counter)

    chunks = -(-args.score_rows // args.chunk_rows)
    print(f"serving run: {args.score_rows} scoring rows in {chunks} chunks of {args.chunk_rows}, 5 steps")
    print(f"{'model source':<22} {'registry calls':>15} {'alias lookups':>14} {'all MLflow calls':>17}")
    for label, c in counts.items():
        registry = sum(c[m] for m in REGISTRY_METHODS)
        print(f"{label:<22} {registry:>15} {c['get_model_version_by_alias']:>14} {sum(c.values()):>17}")
    extra = sum(counts["model_name@champion"].values()) - sum(counts["run_id (baseline)"].values())
    print(f"alias flow adds {extra} MLflow call(s) per run (target: 1, independent of chunks and steps)")


if __name__ == "__main__":
    main()
