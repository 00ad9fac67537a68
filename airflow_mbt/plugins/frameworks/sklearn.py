"""The ``sklearn`` framework: any scikit-learn estimator named in
``training.model_training.config.model`` (``estimator_class``: the common ones from their module,
the others through ``sklearn.utils.all_estimators``), the
other config keys being its constructor parameters (``seed`` sets ``random_state``).

Meta-estimators: a parameter whose value is a mapping with a ``model`` key is built the same way,
recursively (``model: CalibratedClassifierCV, estimator: {model: LinearSVC, C: 0.5}``).

``search: {param_grid: {C: [0.1, 1.0], estimator__C: [...]}, cv: 3}`` runs ``GridSearchCV`` over
the grid (nested parameters in sklearn's ``<param>__<nested>`` form), scored by the pipeline's
primary metric (``SEARCH_SCORING``), and keeps the best estimator refitted on the whole training
split; the best parameters and score are logged and saved in ``sklearn_model.json``.

Saved with joblib as ``model.joblib`` plus ``sklearn_model.json`` (class, version, parameters).
"""

from __future__ import annotations

import difflib
import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mbt.constants import DEFAULT_PRIMARY
from airflow_mbt.errors import MBTInputError
from airflow_mbt.plugins.base import Framework

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FIELD = "training.model_training.config"
MODEL_FILE = "model.joblib"
INFO_FILE = "sklearn_model.json"
DEFAULT_MODEL = {"regression": "RandomForestRegressor"}


_MODULES = {
    "sklearn.ensemble": ("RandomForestClassifier", "ExtraTreesClassifier", "GradientBoostingClassifier",
                         "HistGradientBoostingClassifier", "AdaBoostClassifier", "BaggingClassifier",
                         "RandomForestRegressor", "ExtraTreesRegressor", "GradientBoostingRegressor",
                         "HistGradientBoostingRegressor", "AdaBoostRegressor", "BaggingRegressor"),
    "sklearn.linear_model": ("LogisticRegression", "SGDClassifier", "RidgeClassifier", "LinearRegression", "Ridge",
                             "Lasso", "ElasticNet", "SGDRegressor"),
    "sklearn.tree": ("DecisionTreeClassifier", "DecisionTreeRegressor"),
    "sklearn.neighbors": ("KNeighborsClassifier", "KNeighborsRegressor"),
    "sklearn.svm": ("SVC", "LinearSVC", "SVR", "LinearSVR"),
    "sklearn.naive_bayes": ("GaussianNB",),
    "sklearn.neural_network": ("MLPClassifier", "MLPRegressor"),
    "sklearn.calibration": ("CalibratedClassifierCV",),
    "sklearn.multiclass": ("OneVsRestClassifier", "OneVsOneClassifier"),
}
MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


def family(problem_type: str) -> str:
    """``regressor`` or ``classifier``: the estimators a problem type takes."""
    return "regressor" if problem_type == "regression" else "classifier"


def estimators(problem_type: str) -> dict[str, type]:
    """Every scikit-learn estimator of the problem's family, by name (for did-you-mean)."""
    from sklearn.utils import all_estimators  # slow (imports every sklearn module): not on the common path

    return dict(all_estimators(type_filter=family(problem_type)))


def estimator_class(name: str, problem_type: str) -> type | None:
    """The estimator class named ``name`` of the problem's family (classifier or regressor), or None.

    The common estimators are imported from their module (``MODULE_OF``) instead of through
    ``sklearn.utils.all_estimators``, which imports all of scikit-learn (about 1.5 s)."""
    module = MODULE_OF.get(name)
    if module is None:
        return estimators(problem_type).get(name)
    from sklearn.base import ClassifierMixin, RegressorMixin

    cls = getattr(importlib.import_module(module), name, None)
    mixin = RegressorMixin if problem_type == "regression" else ClassifierMixin
    return cls if isinstance(cls, type) and issubclass(cls, mixin) else None


# primary metric -> sklearn scoring name (greater is better); binary f1/precision/recall use the
# positive class (see ``search_scoring``)
SEARCH_SCORING = {"roc_auc": "roc_auc", "accuracy": "accuracy", "log_loss": "neg_log_loss",
                  "pr_auc": "average_precision",
                  "f1_macro": "f1_macro", "f1_weighted": "f1_weighted", "precision_macro": "precision_macro",
                  "recall_macro": "recall_macro", "roc_auc_ovr": "roc_auc_ovr", "rmse": "neg_root_mean_squared_error",
                  "mae": "neg_mean_absolute_error", "r2": "r2", "mape": "neg_mean_absolute_percentage_error"}
FRAMEWORK_KEYS = ("model", "seed", "search")

# scikit-learn classifiers whose own predict() is ``classes_.take(argmax(predict_proba(X)))`` (read
# in their sources): their prediction is taken from the probabilities, not computed a second time.
# Matched on the exact class, so a subclass with its own predict() keeps it.
ARGMAX_PREDICT = {("sklearn.ensemble._forest", "RandomForestClassifier"),
                  ("sklearn.ensemble._forest", "ExtraTreesClassifier"),
                  ("sklearn.tree._classes", "DecisionTreeClassifier"),
                  ("sklearn.tree._classes", "ExtraTreeClassifier"),
                  ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting", "HistGradientBoostingClassifier"),
                  ("sklearn.calibration", "CalibratedClassifierCV")}


def argmax_predict(model: Any) -> bool:
    """True when ``model.predict`` is the argmax of ``model.predict_proba`` (single output)."""
    kind = type(model)
    return (kind.__module__, kind.__name__) in ARGMAX_PREDICT and getattr(model, "n_outputs_", 1) == 1


def is_nested(value: Any) -> bool:
    """A parameter value that describes an estimator (``{model: Name, ...params}``)."""
    return isinstance(value, dict) and "model" in value


def build_estimator(problem_type: str, config: dict, field: str = FIELD):
    """Instantiate the configured estimator (nested estimators too); configuration mistakes raise
    ``MBTInputError``. ``search`` is not part of the estimator (see ``SklearnFramework.train``)."""
    params = dict(config or {})
    params.pop("search", None)
    name = params.pop("model", None) or DEFAULT_MODEL.get(problem_type, "RandomForestClassifier")
    seed = params.pop("seed", None)
    params = {k: build_estimator(problem_type, v, f"{field}.{k}") if is_nested(v) else v for k, v in params.items()}
    cls = estimator_class(str(name), problem_type)
    if cls is None:
        close = difflib.get_close_matches(str(name), list(estimators(problem_type)), n=3)
        raise MBTInputError(f"{name!r} is not a scikit-learn {family(problem_type)}", field=f"{field}.model",
                            hint=("did you mean " + " or ".join(close) + "?") if close
                            else "use an estimator class name such as RandomForestClassifier")
    try:
        valid = set(cls().get_params())
    except TypeError as exc:
        raise MBTInputError(f"{name} cannot be built from a config ({exc})", field=f"{field}.model",
                            hint="choose an estimator without required constructor arguments") from None
    unknown = sorted(set(params) - valid)
    if unknown:
        raise MBTInputError(f"{name} has no parameter {', '.join(map(repr, unknown))}",
                            field=f"{field}.{unknown[0]}", hint=f"valid parameters: {', '.join(sorted(valid))}")
    if "random_state" in valid and "random_state" not in params:
        params["random_state"] = 42 if seed is None else seed
    return cls(**params)


def search_scoring(metric: str, problem_type: str, positive: Any = None) -> Any:
    """The sklearn scoring for GridSearchCV of the primary ``metric``."""
    if problem_type == "binary_classification" and metric in ("f1", "precision", "recall"):
        from sklearn import metrics

        fn = {"f1": metrics.f1_score, "precision": metrics.precision_score, "recall": metrics.recall_score}[metric]
        return metrics.make_scorer(fn, pos_label=positive, zero_division=0)
    return SEARCH_SCORING[metric]


def _grid_search(estimator: Any, search: dict, ctx: Any, problem_type: str, y: "pd.Series") -> Any:
    from sklearn.model_selection import GridSearchCV

    training = (getattr(ctx, "config", None) or {}).get("training") or {}
    metric = (training.get("evaluation") or {}).get("primary_metric") or DEFAULT_PRIMARY[problem_type]
    positive = ((training.get("schema") or {}).get("target") or {}).get("positive_class")
    if problem_type == "binary_classification" and positive not in set(y):
        positive = sorted(set(y), key=str)[-1]
    return GridSearchCV(estimator, param_grid={k: list(v) for k, v in search["param_grid"].items()},
                        scoring=search_scoring(metric, problem_type, positive), cv=int(search.get("cv", 3)),
                        refit=True, error_score="raise"), metric


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class SklearnFramework(Framework):
    name = "sklearn"

    def train(self, X: "pd.DataFrame", y: "pd.Series", problem_type: str, config: dict, ctx) -> Any:
        from sklearn.base import is_classifier

        estimator = build_estimator(problem_type, config)
        if is_classifier(estimator) != (problem_type != "regression"):
            raise MBTInputError(f"{type(estimator).__name__} does not fit problem_type {problem_type}",
                                field=f"{FIELD}.model")
        search = (config or {}).get("search")
        fitted = estimator
        if search:
            fitted, metric = _grid_search(estimator, search, ctx, problem_type, y)
        try:
            fitted.fit(X, y)
        except ValueError as exc:  # includes InvalidParameterError
            hint = None
            text = str(exc)
            if "could not convert string" in text:
                hint = "scikit-learn needs numbers: use training.preprocessing.encode: onehot"
            elif "NaN" in text:
                hint = "impute missing values (training.preprocessing.impute.numeric: median)"
            raise MBTInputError(f"{type(estimator).__name__} rejected the configuration or data: "
                                f"{text.splitlines()[0]}", field=FIELD, hint=hint) from None
        if search:
            best = fitted.best_estimator_
            best.mbt_search_ = {"metric": metric,
                                "best_params": {k: _plain(v) for k, v in fitted.best_params_.items()},
                                "best_score": float(fitted.best_score_),
                                "candidates": len(fitted.cv_results_["params"])}
            log = getattr(ctx, "log", None)
            if log is not None:
                log.info("search over %d candidates (%s, cv=%s): best %s = %.4f with %s",
                         best.mbt_search_["candidates"], metric, search.get("cv", 3),
                         metric, best.mbt_search_["best_score"], best.mbt_search_["best_params"])
            return best
        return estimator

    def save(self, model: Any, directory: Path) -> None:
        import joblib
        import sklearn

        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, directory / MODEL_FILE)
        info = {"file": MODEL_FILE, "estimator": type(model).__name__, "sklearn_version": sklearn.__version__,
                "params": {k: v for k, v in model.get_params().items()
                           if isinstance(v, (str, int, float, bool, type(None)))}}
        if getattr(model, "mbt_search_", None):
            info["search"] = model.mbt_search_
        (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")

    def load(self, directory: Path) -> Any:
        import joblib

        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise MBTInputError(f"{path} not found",
                                hint="the model directory was not written by the sklearn framework")
        return joblib.load(path)

    def predict(self, model: Any, X: "pd.DataFrame", problem_type: str) -> "pd.DataFrame":
        """``prediction`` and, for a classifier with ``predict_proba``, ``proba_<class>`` columns."""
        import pandas as pd

        from airflow_mbt.constants import proba_column

        if problem_type == "regression" or not hasattr(model, "predict_proba"):
            return pd.DataFrame({"prediction": model.predict(X)}, index=X.index)
        proba = model.predict_proba(X)
        predicted = model.classes_.take(proba.argmax(axis=1)) if argmax_predict(model) else model.predict(X)
        out = pd.DataFrame({"prediction": predicted}, index=X.index)
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
