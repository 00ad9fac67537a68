"""The model directory (``mbt_model.json`` + framework files) and scoring with it.

Shared by ``evaluate``, ``predict`` and the MLflow pyfunc wrapper so the three score identically:
framework predictions are mapped back onto the classes declared in the YAML, and the
predictions table of CONTRACTS §3 is built here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.ml.metrics import proba_column
from airflow_mbt.ml.schema import map_classes, match_class, take_classes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

META_FILE = "mbt_model.json"
META_KEYS = ("framework", "problem_type", "classes", "positive_class", "feature_columns", "label_column",
             "primary_key")


def write_meta(directory: Path, meta: dict) -> None:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"mbt_model.json needs {missing}")
    (Path(directory) / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str),
                                             encoding="utf-8")


def read_meta(directory: Path) -> dict:
    path = Path(directory) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MBTInputError(f"{path} not found",
                            hint="the model directory was not produced by mbt train_model") from None


def load(directory: Path, runtime=None) -> tuple[Any, Any, dict]:
    """``(framework, model, meta)`` for a model directory; the framework comes from the registry."""
    from airflow_mbt.plugins import registry

    meta = read_meta(directory)
    framework = runtime.framework(meta["framework"]) if runtime is not None else \
        registry.get("frameworks", meta["framework"])(None)
    return framework, framework.load(Path(directory)), meta


def score(framework, model, meta: dict, features: "pd.DataFrame") -> "pd.DataFrame":
    """Framework predictions on ``features[meta.feature_columns]`` with ``prediction`` values and
    ``proba_<class>`` column names mapped onto the declared classes."""
    import numpy as np
    import pandas as pd

    missing = [c for c in meta["feature_columns"] if c not in features.columns]
    if missing:
        raise MBTInputError(f"features lack model columns {missing[:10]}",
                            hint="the preprocessor and the model come from different runs")
    raw = framework.predict(model, features[meta["feature_columns"]], meta["problem_type"])
    if meta["problem_type"] == "regression":
        return pd.DataFrame({"prediction": raw["prediction"].astype("float64").to_numpy()}, index=features.index)
    classes = meta["classes"]
    out = pd.DataFrame(index=features.index)
    out["prediction"] = map_classes(pd.Series(raw["prediction"]).set_axis(features.index), classes)
    for col in raw.columns:
        if col.startswith("proba_"):
            out[proba_column(match_class(col[len("proba_"):], classes))] = raw[col].astype("float64").to_numpy()
    threshold = meta.get("threshold")
    positive = proba_column(meta.get("positive_class"))
    if threshold is not None and meta["problem_type"] == "binary_classification" and positive in out.columns:
        negative = next(c for c in classes if c != meta["positive_class"])
        hit = out[positive].to_numpy() >= float(threshold)
        out["prediction"] = take_classes([negative, meta["positive_class"]], hit.astype(np.intp), out.index)
    return out


def probability_column(cls: Any) -> str:
    """The predictions-table column of one class's probability (``include_probabilities: all``)."""
    return f"prediction_probability_{cls}"


def predictions_table(ids: "pd.Series | None", scored: "pd.DataFrame", meta: dict,
                      include_probabilities: bool | str = True) -> "pd.DataFrame":
    """``<primary_key>, prediction, prediction_probability`` (probability of the positive class for
    binary, the winning class for multiclass, absent for regression); with
    ``include_probabilities="all"`` also ``prediction_probability_<class>`` for every class (they
    sum to 1)."""
    import pandas as pd

    table = pd.DataFrame(index=scored.index)
    if ids is not None:
        table[ids.name] = ids.to_numpy()
    table["prediction"] = scored["prediction"].to_numpy()
    problem = meta["problem_type"]
    cols = [proba_column(c) for c in meta["classes"] or []]
    if problem == "binary_classification" and proba_column(meta["positive_class"]) in scored.columns:
        table["prediction_probability"] = scored[proba_column(meta["positive_class"])].to_numpy()
    elif problem == "multiclass_classification" and cols and all(c in scored.columns for c in cols):
        table["prediction_probability"] = scored[cols].max(axis=1).to_numpy()
    if include_probabilities == "all" and problem != "regression" and cols and all(c in scored.columns for c in cols):
        proba = scored[cols].to_numpy(dtype="float64")
        total = proba.sum(axis=1, keepdims=True)
        proba = proba / (total + (total == 0))
        for cls, column in zip(meta["classes"], proba.T):
            table[probability_column(cls)] = column
    return table.reset_index(drop=True)
