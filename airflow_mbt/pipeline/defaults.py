"""Defaults filled into a validated pipeline (the ``config`` section of the manifest)."""

from __future__ import annotations

import copy

from airflow_mbt.pipeline.loading import deep_merge
from airflow_mbt.pipeline.metrics import DEFAULT_PRIMARY

DEFAULTS = {
    "schema_version": 1,
    "project": {"tags": []},
    "deployment": {"mode": "batch"},
    "training": {
        "schema": {"ignored_columns": []},
        "preprocessing": {
            "impute": {"numeric": "median", "categorical": "most_frequent"},
            "scale": "standard",
            "encode": "onehot",
            "custom_transforms": [],
        },
        "split": {"test_size": 0.2, "seed": 42},
        "model_training": {"config": {}},
        "evaluation": {"additional_metrics": [], "generate_plots": True, "validation_criteria": []},
    },
    "steps": {},
}
SERVING_DEFAULTS = {
    "model_source": {"registry": "mlflow", "artifact_snapshot": False},
    "output": {"include_probabilities": True},
}

MONITORING_DEFAULTS = {"max_psi": 0.25, "on_breach": "warn", "table": "model_monitoring"}
CHAMPION = "champion"
REGISTRATION_DEFAULTS = {"alias": CHAMPION, "promote": "if_better", "approval": "none"}


def with_defaults(config: dict) -> dict:
    """A copy of ``config`` with every optional field present."""
    out = deep_merge(copy.deepcopy(DEFAULTS), copy.deepcopy(config))
    project = out["project"]
    project.setdefault("experiment_name", project["name"])
    evaluation = out["training"]["evaluation"]
    problem_type = project.get("problem_type")  # a serving pipeline may leave it to the model
    if problem_type is not None:
        evaluation.setdefault("primary_metric", DEFAULT_PRIMARY[problem_type])
        out["training"]["split"].setdefault("stratify", problem_type != "regression")
    registration = out["training"].get("registration")
    if registration is not None:
        for key, value in REGISTRATION_DEFAULTS.items():
            registration.setdefault(key, value)
        registration.setdefault("compare_on", evaluation.get("primary_metric"))
    if "serving" in out:
        out["serving"] = deep_merge(copy.deepcopy(SERVING_DEFAULTS), out["serving"])
        if "model_name" in out["serving"]["model_source"]:
            out["serving"]["model_source"].setdefault("alias", CHAMPION)
        output = out["serving"]["output"]
        if output["destination"] == "local_file":
            output.setdefault("path", "predictions.csv")
        if isinstance(out["serving"].get("monitoring"), dict):  # only when configured (docs/monitoring.md)
            out["serving"]["monitoring"] = {**MONITORING_DEFAULTS, **out["serving"]["monitoring"]}
    return out
