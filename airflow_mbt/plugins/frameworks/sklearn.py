"""The ``sklearn`` framework: any scikit-learn estimator named in
``training.model_training.config.model`` (resolved through ``sklearn.utils.all_estimators``), the
other config keys being its constructor parameters (``seed`` sets ``random_state``).

Saved with joblib as ``model.joblib`` plus ``sklearn_model.json`` (class, version, parameters).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.plugins.base import Framework

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.model_training.config"
MODEL_FILE = "model.joblib"
INFO_FILE = "sklearn_model.json"
DEFAULT_MODEL = {"regression": "RandomForestRegressor"}


def _estimators(problem_type: str) -> dict[str, type]:
    from sklearn.utils import all_estimators

    kind = "regressor" if problem_type == "regression" else "classifier"
    return dict(all_estimators(type_filter=kind))


def build_estimator(problem_type: str, config: dict):
    """Instantiate the configured estimator; configuration mistakes raise ``MBTInputError``."""
    params = dict(config or {})
    name = params.pop("model", None) or DEFAULT_MODEL.get(problem_type, "RandomForestClassifier")
    seed = params.pop("seed", None)
    choices = _estimators(problem_type)
    if name not in choices:
        kind = "regressor" if problem_type == "regression" else "classifier"
        close = difflib.get_close_matches(str(name), list(choices), n=3)
        raise MBTInputError(f"{name!r} is not a scikit-learn {kind}", field=f"{FIELD}.model",
                            hint=("did you mean " + " or ".join(close) + "?") if close
                            else "use an estimator class name such as RandomForestClassifier")
    cls = choices[name]
    try:
        valid = set(cls().get_params())
    except TypeError as exc:
        raise MBTInputError(f"{name} cannot be built from a config ({exc})", field=f"{FIELD}.model",
                            hint="choose an estimator without required constructor arguments") from None
    unknown = sorted(set(params) - valid)
    if unknown:
        raise MBTInputError(f"{name} has no parameter {', '.join(map(repr, unknown))}",
                            field=f"{FIELD}.{unknown[0]}", hint=f"valid parameters: {', '.join(sorted(valid))}")
    if "random_state" in valid and "random_state" not in params:
        params["random_state"] = 42 if seed is None else seed
    return cls(**params)


class SklearnFramework(Framework):
    name = "sklearn"

    def train(self, X: "pd.DataFrame", y: "pd.Series", problem_type: str, config: dict, ctx) -> Any:
        from sklearn.base import is_classifier

        estimator = build_estimator(problem_type, config)
        if is_classifier(estimator) != (problem_type != "regression"):
            raise MBTInputError(f"{type(estimator).__name__} does not fit problem_type {problem_type}",
                                field=f"{FIELD}.model")
        try:
            estimator.fit(X, y)
        except ValueError as exc:  # includes InvalidParameterError
            hint = None
            text = str(exc)
            if "could not convert string" in text:
                hint = "scikit-learn needs numbers: use training.preprocessing.encode: onehot"
            elif "NaN" in text:
                hint = "impute missing values (training.preprocessing.impute.numeric: median)"
            raise MBTInputError(f"{type(estimator).__name__} rejected the configuration or data: "
                                f"{text.splitlines()[0]}", field=FIELD, hint=hint) from None
        return estimator

    def save(self, model: Any, directory: Path) -> None:
        import joblib
        import sklearn

        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, directory / MODEL_FILE)
        info = {"file": MODEL_FILE, "estimator": type(model).__name__, "sklearn_version": sklearn.__version__,
                "params": {k: v for k, v in model.get_params().items()
                           if isinstance(v, (str, int, float, bool, type(None)))}}
        (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")

    def load(self, directory: Path) -> Any:
        import joblib

        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise MBTInputError(f"{path} not found",
                                hint="the model directory was not written by the sklearn framework")
        return joblib.load(path)

    def predict(self, model: Any, X: "pd.DataFrame", problem_type: str) -> "pd.DataFrame":
        import pandas as pd

        from airflow_mbt.constants import proba_column

        out = pd.DataFrame({"prediction": model.predict(X)}, index=X.index)
        if problem_type != "regression" and hasattr(model, "predict_proba"):
            proba = model.predict_proba(X)
            for i, cls in enumerate(model.classes_):
                out[proba_column(cls.item() if hasattr(cls, "item") else cls)] = proba[:, i]
        return out

    def feature_importance(self, model: Any) -> dict[str, float]:
        import numpy as np

        names = list(getattr(model, "feature_names_in_", []))
        if hasattr(model, "feature_importances_"):
            values = np.asarray(model.feature_importances_, dtype=float)
        elif hasattr(model, "coef_"):
            coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))
            values = np.abs(coef).mean(axis=0)
        else:
            return {}
        if len(names) != len(values):
            names = [f"x{i}" for i in range(len(values))]
        return {n: float(v) for n, v in zip(names, values)}
