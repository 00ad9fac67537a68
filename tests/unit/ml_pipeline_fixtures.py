"""Shared helpers for the step/tracking tests: a churn project on disk (sample CSVs), manifests for
training and serving, and running real steps through ``execute_step`` over LocalStorage."""

from __future__ import annotations

import copy
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.runtime.executor import execute_step
from airflow_mbt.runtime.artifact_registry import ArtifactRegistry
from airflow_mbt.runtime.run_id import new_run_id
from airflow_mbt.scaffold.sample_data import write_csvs

TRAINING = {
    "schema_version": 1,
    "project": {"name": "training_churn", "experiment_name": "churn_prediction",
                "problem_type": "binary_classification", "owner": "ds-team", "tags": ["churn"]},
    "deployment": {"mode": "batch", "cadence": "monthly"},
    "training": {
        "data_source": {"label_table": "customers"},
        "schema": {"target": {"label_column": "churned", "classes": [0, 1], "positive_class": 1},
                   "identifiers": {"primary_key": "customer_id"}, "ignored_columns": []},
        "preprocessing": {"impute": {"numeric": "median", "categorical": "most_frequent"},
                          "scale": "standard", "encode": "onehot", "custom_transforms": []},
        "split": {"test_size": 0.25, "seed": 42, "stratify": True},
        "model_training": {"framework": "sklearn",
                           "config": {"model": "RandomForestClassifier", "n_estimators": 40, "max_depth": 6}},
        "evaluation": {"primary_metric": "roc_auc", "additional_metrics": ["accuracy", "f1"],
                       "generate_plots": True, "validation_criteria": ["roc_auc >= 0.6"]},
    },
}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def training_config(**sections) -> dict:
    """The churn training document with sections deep-merged over it."""
    return deep_merge(TRAINING, sections)


def serving_config(run_id: str, **sections) -> dict:
    cfg = deep_merge(TRAINING, {"project": {"name": "serving_churn"}})
    cfg["serving"] = {"model_source": {"registry": "mlflow", "run_id": run_id, "artifact_snapshot": False},
                      "data_source": {"scoring_table": "customers_to_score"},
                      "output": {"destination": "local_file", "path": "predictions.csv",
                                 "include_probabilities": True}}
    return deep_merge(cfg, sections)


def dev_target(**sections) -> dict:
    target = {"name": "dev", "profile": "demo",
              "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
              "data_connector": {"type": "local_file", "config": {"data_path": "./sample_data"}},
              "mlflow": {"tracking_uri": "sqlite:///mlruns/mlflow.db", "artifact_location": "./mlruns/artifacts"},
              "h2o": {"mode": "local", "port": 54331, "max_mem_size": "1g"},
              "secrets": {"provider": "env"}}
    target.update(sections)
    return target


def make_manifest(config: dict, target: dict | None = None, positions: dict | None = None) -> Manifest:
    from airflow_mbt.pipeline.compiler import manifest_steps

    kind = "serving" if "serving" in config else "training"
    steps = manifest_steps(kind, {}, partitioned=bool((config.get("serving") or {}).get("partitions")))
    project = config["project"]
    return Manifest.build({
        "mbt_version": "0.1.0",
        "pipeline": {"name": project["name"], "kind": kind, "problem_type": project["problem_type"],
                     "owner": project.get("owner"), "experiment_name": project.get("experiment_name"),
                     "tags": project.get("tags", []), "framework": config["training"]["model_training"]["framework"],
                     "source_file": f"pipelines/{project['name']}.yaml", "source_yaml": ""},
        "schedule": "@monthly",
        "target": target or dev_target(),
        "config": config,
        "positions": positions or {},
        "steps": steps,
    })


def make_project(root: Path, n_customers: int = 800, n_score: int = 200) -> Path:
    write_csvs(root / "sample_data", n_customers=n_customers, n_score=n_score, seed=7)
    return root


def run_steps(manifest: Manifest, project: Path, names: list[str] | None = None, run_id: str | None = None,
              runtime: TargetRuntime | None = None) -> str:
    """Execute the named steps (default: all, in order) of one run; returns the run id."""
    run_id = run_id or new_run_id()
    own = runtime is None
    runtime = runtime or TargetRuntime(target=manifest.target, project_dir=project)
    try:
        for step in names or [s.name for s in manifest.steps]:
            execute_step(manifest, step, run_id, runtime)
    finally:
        if own:
            runtime.close()
    return run_id


def fetch(project: Path, manifest: Manifest, run_id: str, name: str, into: Path | None = None):
    """Deserialize one stored artifact of a run (dir artifacts are extracted under ``into``)."""
    runtime = TargetRuntime(target=manifest.target, project_dir=project)
    storage = runtime.storage()
    entry = ArtifactRegistry(storage, run_id, pipeline=manifest.name).lookup(name)
    return artifacts.fetch(storage, name, entry, Path(into or tempfile.mkdtemp(prefix="mbt-test-")))


def train_once(root: Path, config: dict | None = None) -> tuple[Manifest, str, dict]:
    """Train the churn model through every training step; returns (manifest, mbt run id, mlflow_run)."""
    manifest = make_manifest(config or training_config())
    run_id = run_steps(manifest, root)
    return manifest, run_id, fetch(root, manifest, run_id, "mlflow_run")


# H2O AutoML settings for tests: bounded by model count, not by the clock (on a busy 2-core
# machine a 10 s budget can end before the first model; the time limit is only a safety net)
AUTOML_TEST = {"max_runtime_secs": 180, "max_models": 2, "seed": 42, "nfolds": 2, "sort_metric": "AUC",
               "exclude_algos": ["DeepLearning"]}


@contextmanager
def scratch_experiment(tracking_uri: str, prefix: str = "mbt_b2_test"):
    """A unique MLflow experiment name; the experiment is deleted afterwards if it was created."""
    import mlflow

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    yield name
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        client.delete_experiment(exp.experiment_id)
