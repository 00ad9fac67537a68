"""Validate-time checks of an sklearn ``model_training.config`` that need no data.

``check_sklearn_config(doc, problem_type)`` imports scikit-learn (lazily: only pipelines with
``framework: sklearn`` get here) and raises at the offending key when

- ``model`` is not a scikit-learn estimator of the problem's family (did-you-mean);
- a key is not a parameter of the estimator's constructor (``inspect.signature`` of the class;
  ``model`` and ``seed`` are the framework's own keys), with a did-you-mean (``max_iters``);
- a value breaks the estimator's declared constraints (sklearn's ``_parameter_constraints``,
  e.g. ``C: "strong"``), or, for an estimator without them, has a type that contradicts the
  default's type (text for a number or a flag);
- a nested estimator (a parameter given as ``{model: Name, ...}``, e.g. ``estimator`` of
  ``CalibratedClassifierCV``) breaks any of these rules, at its own keys;
- ``search`` is not ``{param_grid: {param: [values...]}, cv: int >= 2}``, or a grid key is not a
  parameter of the estimator (``estimator__C`` names ``C`` of the nested ``estimator``), or a grid
  value breaks that parameter's constraints.
"""

from __future__ import annotations

import inspect
from typing import Any

from airflow_mbt.plugins.frameworks.sklearn import DEFAULT_MODEL, FRAMEWORK_KEYS, estimator_class, estimators, family
from airflow_mbt.project.schema_check import suggest
from airflow_mbt.project.yaml_loader import Located

BASE = ("training", "model_training", "config")
SEARCH_KEYS = ("param_grid", "cv")


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n: p for n, p in inspect.signature(cls).parameters.items() if p.kind in kinds}


def value_problem(cls: type, key: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot be ``cls(key=value)``, or None."""
    constraints = getattr(cls, "_parameter_constraints", None)
    if isinstance(constraints, dict) and key in constraints:
        try:
            from sklearn.utils._param_validation import (
                InvalidParameterError,
                validate_parameter_constraints,
            )
        except ImportError:  # pragma: no cover - older or newer sklearn: the heuristic below
            pass
        else:
            try:
                validate_parameter_constraints({key: constraints[key]}, {key: value}, caller_name=cls.__name__)
            except InvalidParameterError as exc:
                return str(exc)
            except Exception:  # noqa: BLE001 - a constraint that cannot judge YAML values: no verdict
                return None
            return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(default, (int, float)) and isinstance(value, str):
        return f"expected a number, got the text {value!r}"
    return None


def check_sklearn_config(doc: Located, problem_type: str, config: dict, base: tuple = BASE) -> None:
    name = config.get("model") or DEFAULT_MODEL.get(problem_type, "RandomForestClassifier")
    cls = estimator_class(str(name), problem_type)
    if cls is None:
        raise doc.error(base + ("model",), f"{name!r} is not a scikit-learn {family(problem_type)}",
                        hint=suggest(name, list(estimators(problem_type)))
                        or f"e.g. model: {DEFAULT_MODEL.get(problem_type, 'RandomForestClassifier')}")
    params = _parameters(cls)
    for key, value in config.items():
        if key in FRAMEWORK_KEYS:
            continue
        if key not in params:
            choices = sorted(params) + list(FRAMEWORK_KEYS)
            raise doc.error(base + (key,), f"{cls.__name__} has no parameter {key!r}",
                            hint=suggest(key, choices) or f"parameters: {', '.join(choices)}")
        if isinstance(value, dict) and "model" in value:
            check_sklearn_config(doc, problem_type, value, base + (key,))
            continue
        problem = value_problem(cls, key, value, params[key].default)
        if problem:
            raise doc.error(base + (key,), problem, hint=f"see the parameters of sklearn's {cls.__name__}")
    if "search" in config and base == BASE:
        _check_search(doc, problem_type, config, cls)


def _nested_class(problem_type: str, config: dict, parts: list[str]) -> tuple[type | None, str]:
    """The class that owns grid key ``a__b__c`` and the parameter name (``c``)."""
    node: Any = config
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if not (isinstance(node, dict) and "model" in node):
            return None, parts[-1]
    name = node.get("model") or DEFAULT_MODEL.get(problem_type, "RandomForestClassifier")
    return estimator_class(str(name), problem_type), parts[-1]


def _check_search(doc: Located, problem_type: str, config: dict, cls: type) -> None:
    where = BASE + ("search",)
    search = config["search"]
    if not isinstance(search, dict) or not isinstance(search.get("param_grid"), dict) or not search["param_grid"]:
        raise doc.error(where, "search needs param_grid: a mapping of parameter -> list of values",
                        hint="e.g. search: {param_grid: {max_depth: [3, 6]}, cv: 3}")
    for key in search:
        if key not in SEARCH_KEYS:
            raise doc.error(where + (key,), f"unknown search option {key!r}",
                            hint=suggest(key, SEARCH_KEYS) or f"options: {', '.join(SEARCH_KEYS)}")
    cv = search.get("cv", 3)
    if not isinstance(cv, int) or isinstance(cv, bool) or cv < 2:
        raise doc.error(where + ("cv",), f"cv must be a whole number of folds >= 2, got {cv!r}", hint="e.g. cv: 3")
    for key, values in search["param_grid"].items():
        path = where + ("param_grid", key)
        owner, param = _nested_class(problem_type, config, str(key).split("__"))
        params = _parameters(owner) if owner is not None else {}
        if param not in params:
            choices = sorted(_parameters(cls))
            raise doc.error(path, f"{key!r} is not a parameter of the estimator",
                            hint=suggest(str(key), choices) or "nested parameters are written estimator__<name>")
        if not isinstance(values, list) or not values:
            raise doc.error(path, "expected a non-empty list of values to try", hint=f"e.g. {key}: [0.1, 1.0]")
        for i, value in enumerate(values):
            problem = value_problem(owner, param, value, params[param].default) if owner is not None else None
            if problem:
                raise doc.error(path + (i,), problem, hint=f"see the parameters of sklearn's {owner.__name__}")
