"""Test helper (engineer D's tests): hand-built manifests shaped like ``mbt compile`` output."""

from __future__ import annotations

from pathlib import Path

from airflow_mbt.manifest import Manifest
from airflow_mbt.step_specs import STEPS_BY_KIND, dependencies

SCHEDULES = {"training": "@monthly", "serving": "@daily"}

SOURCE_YAML = """schema_version: 1
project:
  name: {name}
  owner: ds-team
# a secret stays a reference in the source text: {{ secret('PG_PASSWORD') }}
"""


def executor_section(kind: str = "local") -> dict:
    if kind == "kubernetes":
        return {"type": "kubernetes",
                "config": {"namespace": "mbt-pipelines", "service_account": "mbt-runner",
                           "image": "zot-registry:5050/mbt-runner:latest",
                           "connection_secrets": {"mbt_warehouse": "mbt-secrets", "mbt_s3": "mbt-s3-secret"}}}
    return {"type": "local"}


def build_manifest(name: str, kind: str = "training", *, executor: str = "local", schedule: str | None = None,
                   resources: dict | None = None, default_args: dict | None = None) -> Manifest:
    specs = STEPS_BY_KIND[kind]
    deps = dependencies(specs)
    steps = [{"name": s.name, "inputs": list(s.inputs),
              "outputs": [{"name": n, "kind": k} for n, k in s.outputs],
              "depends_on": deps[s.name],
              "resources": dict((resources or {}).get(s.name, {}))} for s in specs]
    config = {"schema_version": 1,
              "project": {"name": name, "owner": "ds-team", "problem_type": "binary_classification",
                          "experiment_name": "churn_prediction", "tags": ["churn"]},
              "training": {"model_training": {"framework": "sklearn", "config": {}}}}
    if kind == "serving":
        config["serving"] = {"model_source": {"registry": "mlflow", "run_id": "abc"}}
    return Manifest.build({
        "mbt_version": "0.1.0",
        "pipeline": {"name": name, "kind": kind, "problem_type": "binary_classification", "owner": "ds-team",
                     "experiment_name": "churn_prediction", "tags": ["churn"], "framework": "sklearn",
                     "source_file": f"pipelines/{name}.yaml", "source_yaml": SOURCE_YAML.replace("{name}", name)},
        "schedule": schedule or SCHEDULES[kind],
        "target": {"name": "prod" if executor == "kubernetes" else "dev", "profile": "demo-project",
                   "executor": executor_section(executor),
                   "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
                   "data_connector": {"type": "postgres",
                                      "config": {"conn_id": "mbt_warehouse", "password": {"$secret": "PG_PASSWORD"}}},
                   "mlflow": {"conn_id": "mbt_mlflow"}, "h2o": {"conn_id": "mbt_h2o"},
                   "secrets": {"provider": "env"},
                   "orchestrator": {"type": "airflow", "config": {"default_args": default_args or {
                       "owner": "de-team", "retries": 2, "retry_delay_minutes": 5}}}},
        "config": config,
        "steps": steps,
    })


def write_tree(root: Path, manifests) -> Path:
    """``root/<name>/manifest.json`` for each manifest (the layout of ``target/`` and of a deploy)."""
    for m in manifests:
        m.write(root / m.name / "manifest.json")
    return root
