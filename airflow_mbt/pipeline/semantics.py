"""Checks beyond the JSON Schema: names, metrics, criteria, classes, cadence, frameworks.

Every check raises ``MBTInputError`` located at the offending field.

sklearn models: ``model`` (optional; the framework has a default) must be an identifier; a name
that is not in ``SKLEARN_MODELS`` but close to one is reported as a typo (did-you-mean) without
importing sklearn; then ``sklearn_check`` (sklearn imported lazily, for sklearn pipelines only)
checks the estimator exists and its parameters against its signature and constraints.
"""

from __future__ import annotations

import re

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.cadence import NAMED, cron_problem
from airflow_mbt.pipeline.metrics import METRICS, OPERATORS, parse_criterion
from airflow_mbt.project.schema_check import suggest
from airflow_mbt.project.yaml_loader import Located
from airflow_mbt.step_specs import OPTIONAL_STEPS, steps_of

TRANSFORM = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
RUN_ID_PLACEHOLDER = re.compile(r"^<.*>$|run_id_from_mlflow|^(todo|tbd|changeme|xxx+)$", re.I)

SKLEARN_MODELS = {
    "classification": (
        "RandomForestClassifier", "ExtraTreesClassifier", "GradientBoostingClassifier",
        "HistGradientBoostingClassifier", "AdaBoostClassifier", "LogisticRegression", "SGDClassifier",
        "RidgeClassifier", "DecisionTreeClassifier", "KNeighborsClassifier", "SVC", "LinearSVC",
        "GaussianNB", "MLPClassifier", "BaggingClassifier", "CalibratedClassifierCV", "OneVsRestClassifier",
        "OneVsOneClassifier"),
    "regression": (
        "RandomForestRegressor", "ExtraTreesRegressor", "GradientBoostingRegressor",
        "HistGradientBoostingRegressor", "AdaBoostRegressor", "LinearRegression", "Ridge", "Lasso",
        "ElasticNet", "SGDRegressor", "DecisionTreeRegressor", "KNeighborsRegressor", "SVR", "LinearSVR",
        "MLPRegressor", "BaggingRegressor"),
}
# H2OAutoML.__init__ parameters of h2o 3.46 (kept static: validate must not import h2o)
H2O_AUTOML_KEYS = (
    "nfolds", "balance_classes", "class_sampling_factors", "max_after_balance_size", "max_runtime_secs",
    "max_runtime_secs_per_model", "max_models", "distribution", "stopping_metric", "stopping_tolerance",
    "stopping_rounds", "seed", "project_name", "exclude_algos", "include_algos", "exploitation_ratio",
    "modeling_plan", "preprocessing", "monotone_constraints", "keep_cross_validation_predictions",
    "keep_cross_validation_models", "keep_cross_validation_fold_assignment", "sort_metric",
    "custom_metric_func", "export_checkpoints_dir", "verbosity")


def _get(value, *path):
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


class RunIdPlaceholderError(MBTInputError):
    """A serving pipeline still holds the example run id: not ready yet (skipped by bulk commands)."""


def _typed(value):
    """Comparable without YAML surprises (``yes`` is True, and True == 1 in Python)."""
    return (type(value).__name__ if isinstance(value, bool) else "value", value)


def kind_of(config: dict) -> str:
    return "serving" if "serving" in config else "training"


def check_project(doc: Located, stem: str) -> None:
    name = _get(doc.value, "project", "name")
    if name != stem:
        raise doc.error(("project", "name"), f"{name!r} does not match the file name {stem!r}",
                        hint=f"set `name: {stem}` or rename the file to {name}.yaml")


def check_cadence(doc: Located) -> None:
    cadence = _get(doc.value, "deployment", "cadence")
    if cadence in NAMED:
        return
    problem = cron_problem(cadence)
    if problem:
        close = suggest(cadence, NAMED)
        raise doc.error(("deployment", "cadence"), f"invalid cadence {cadence!r}: {problem}",
                        hint=close or "use hourly, daily, weekly, monthly or a cron like \"0 3 * * *\"")


def check_interval(doc: Located) -> None:
    """``deployment.interval`` is a cadence OR a duration, never both (neither silently wins)."""
    spec = _get(doc.value, "deployment", "interval")
    if not isinstance(spec, dict):
        return
    extra = [k for k in ("days", "hours", "minutes") if k in spec]
    if "cadence" in spec and extra:
        raise doc.error(("deployment", "interval", extra[0]),
                        f"interval sets both cadence and {', '.join(extra)}: it is one or the other",
                        hint=f"keep `cadence: {spec['cadence']}` or the duration "
                             f"({', '.join(extra)}), not both")
    if extra and not any(spec.get(k) for k in extra):
        raise doc.error(("deployment", "interval", extra[0]), "the interval must be longer than zero",
                        hint="e.g. interval: {days: 1} or interval: {cadence: daily}")


def check_metrics(doc: Located, problem_type: str) -> None:
    allowed = METRICS[problem_type]
    where = ("training", "evaluation")

    def bad(path, metric):
        return doc.error(path, f"metric {metric!r} is not available for {problem_type}",
                         hint=suggest(metric, allowed) or f"choose from {', '.join(allowed)}")

    primary = _get(doc.value, *where, "primary_metric")
    if primary is not None and primary not in allowed:
        raise bad(where + ("primary_metric",), primary)
    for i, metric in enumerate(_get(doc.value, *where, "additional_metrics") or []):
        if metric not in allowed:
            raise bad(where + ("additional_metrics", i), metric)
    for i, text in enumerate(_get(doc.value, *where, "validation_criteria") or []):
        path = where + ("validation_criteria", i)
        parsed = parse_criterion(text)
        if parsed is None:
            raise doc.error(path, f"cannot parse validation criterion {text!r}",
                            hint=f"write \"<metric> <op> <number>\", e.g. \"{allowed[0]} >= 0.7\"; "
                                 f"op is one of {', '.join(OPERATORS)}")
        if parsed[0] not in allowed:
            raise bad(path, parsed[0])


def check_target(doc: Located, problem_type: str) -> None:
    target = _get(doc.value, "training", "schema", "target") or {}
    base = ("training", "schema", "target")
    classes, positive = target.get("classes"), target.get("positive_class")
    if problem_type == "regression":
        for key in ("classes", "positive_class"):
            if key in target:
                raise doc.error(base + (key,), f"{key} makes no sense for a regression problem",
                                hint="remove it, or set project.problem_type to a classification type")
        return
    if classes is not None:
        if len(set(map(str, classes))) != len(classes):
            raise doc.error(base + ("classes",), "classes must be distinct", hint="list each label value once")
        if problem_type == "binary_classification" and len(classes) != 2:
            raise doc.error(base + ("classes",), f"binary_classification needs exactly 2 classes, got {len(classes)}",
                            hint="use multiclass_classification for more than two classes")
        if problem_type == "multiclass_classification" and len(classes) < 3:
            raise doc.error(base + ("classes",),
                            f"multiclass_classification needs 3 or more classes, got {len(classes)}",
                            hint="use binary_classification for two classes")
    if positive is not None:
        if problem_type != "binary_classification":
            raise doc.error(base + ("positive_class",), "positive_class is only used by binary_classification",
                            hint="remove it")
        if classes is not None and _typed(positive) not in [_typed(c) for c in classes]:
            raise doc.error(base + ("positive_class",), f"positive_class {positive!r} is not one of classes {classes}",
                            hint="YAML reads yes/no/on/off as true/false: quote such values"
                            if isinstance(positive, bool) else None)


def check_framework(doc: Located, problem_type: str) -> None:
    from airflow_mbt.plugins import registry

    base = ("training", "model_training")
    framework = _get(doc.value, *base, "framework")
    known = registry.names("frameworks")
    if framework not in known:
        raise doc.error(base + ("framework",), f"unknown framework {framework!r}",
                        hint=suggest(framework, known) or f"installed frameworks: {', '.join(known)}")
    config = _get(doc.value, *base, "config") or {}
    if framework == "h2o_automl":
        for key in config:
            if key not in H2O_AUTOML_KEYS:
                raise doc.error(base + ("config", key), f"unknown h2o_automl option {key!r}",
                                hint=suggest(key, H2O_AUTOML_KEYS) or f"options: {', '.join(H2O_AUTOML_KEYS)}")
        for key in ("max_runtime_secs", "max_models", "nfolds", "seed"):
            if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool)):
                raise doc.error(base + ("config", key), f"expected an integer, got {config[key]!r}",
                                hint="write a whole number without quotes")
    if framework == "sklearn":
        if "model" in config:
            _check_sklearn_model(doc, problem_type, config["model"])
        from airflow_mbt.pipeline.sklearn_check import check_sklearn_config

        check_sklearn_config(doc, problem_type, config)


def _check_sklearn_model(doc: Located, problem_type: str, model) -> None:
    """The cheap checks of ``model`` (no sklearn import): an identifier of the right family."""
    family = "regression" if problem_type == "regression" else "classification"
    path = ("training", "model_training", "config", "model")
    if not isinstance(model, str) or not IDENTIFIER.match(model):
        raise doc.error(path, f"`model` must be an estimator class name, got {str(model)[:60]!r}",
                        hint=f"e.g. model: {SKLEARN_MODELS[family][0]}")
    if model in SKLEARN_MODELS[family]:
        return
    other = "classification" if family == "regression" else "regression"
    if model in SKLEARN_MODELS[other]:
        raise doc.error(path, f"{model} is a {other} estimator but problem_type is {problem_type}",
                        hint=f"e.g. model: {SKLEARN_MODELS[family][0]}")
    close = suggest(model, SKLEARN_MODELS[family])
    if close:
        raise doc.error(path, f"unknown sklearn estimator {model!r}", hint=close)


def check_columns(doc: Located) -> None:
    schema = _get(doc.value, "training", "schema") or {}
    label = _get(schema, "target", "label_column")
    key = _get(schema, "identifiers", "primary_key")
    if label is not None and label == key:
        raise doc.error(("training", "schema", "identifiers", "primary_key"),
                        "primary_key and label_column must be different columns",
                        hint="the primary key identifies a row; the label is what the model predicts")
    for i, column in enumerate(schema.get("ignored_columns") or []):
        if column in (label, key):
            raise doc.error(("training", "schema", "ignored_columns", i),
                            f"{column!r} cannot be ignored: it is the {'label' if column == label else 'primary key'}",
                            hint="remove it from ignored_columns")
    for key, i, ref in [(k, i, r) for k in ("row_filters", "custom_transforms")
                        for i, r in enumerate(_get(doc.value, "training", "preprocessing", k) or [])]:
        if not isinstance(ref, str) or not TRANSFORM.match(ref):
            raise doc.error(("training", "preprocessing", key, i),
                            f"invalid custom transform {ref!r}",
                            hint="write module:function, e.g. lib.features:add_ratio (lib/ is on sys.path)")


def check_kind(doc: Located, kind: str) -> None:
    if kind == "training":
        if _get(doc.value, "training", "data_source") is None:
            raise doc.error(("training",), "a training pipeline needs training.data_source.label_table",
                            hint="add `data_source: {label_table: <table>}` under training:")
    else:
        base = ("serving", "model_source", "run_id")
        run_id = _get(doc.value, *base)
        if run_id is not None and RUN_ID_PLACEHOLDER.search(str(run_id).strip()):
            err = doc.error(base, f"still the placeholder {run_id!r}",
                            hint="paste the run id of the trained model from the MLflow UI "
                                 "(or write \"{{ var('model_run_id') }}\" and pass --vars model_run_id=...)")
            raise RunIdPlaceholderError(err.message, file=err.file, line=err.line, col=err.col, field=err.field,
                                        hint=err.hint)
        check_model_source(doc)
        output = _get(doc.value, "serving", "output") or {}
        if output.get("destination") == "database" and not output.get("table"):
            raise doc.error(("serving", "output"), "destination database needs `table:`",
                            hint="e.g. table: churn_predictions (may be schema.table)")
        if output.get("destination") == "local_file" and "table" in output:
            raise doc.error(("serving", "output", "table"), "`table` is only used with destination: database",
                            hint="use path: predictions.csv for local_file")
    names = [s.name for s in steps_of(kind, True, True) + OPTIONAL_STEPS.get(kind, ())]
    for step in _get(doc.value, "steps") or {}:
        if step not in names:
            raise doc.error(("steps", step), f"a {kind} pipeline has no step {step!r}",
                            hint=suggest(step, names) or f"steps: {', '.join(names)}")


def check_model_source(doc: Located) -> None:
    """Serving reads one MLflow run (``run_id``) or a registered model's alias (``model_name``)."""
    base = ("serving", "model_source")
    source = _get(doc.value, *base) or {}
    if ("run_id" in source) == ("model_name" in source):
        raise doc.error(base, "model_source needs exactly one of run_id or model_name",
                        hint="serve the registry's champion with `model_name: churn_model` (alias: champion), "
                             "or pin one MLflow run with `run_id: <id>`")
    if "alias" in source and "run_id" in source:
        raise doc.error(base + ("alias",), "alias is read with model_name, not with run_id",
                        hint="remove alias, or replace run_id by model_name")
    if _get(doc.value, "deployment", "on_model_change") and "model_name" not in source:
        raise doc.error(("deployment", "on_model_change"), "on_model_change needs serving.model_source.model_name",
                        hint="a pinned run_id never changes; serve `model_name` + `alias` to follow the champion")


def check_registration(doc: Located, problem_type: str) -> None:
    """``training.registration.compare_on`` is a metric of the problem type."""
    where = ("training", "registration", "compare_on")
    metric = _get(doc.value, *where)
    allowed = METRICS[problem_type]
    if metric is not None and metric not in allowed:
        raise doc.error(where, f"metric {metric!r} is not available for {problem_type}",
                        hint=suggest(metric, allowed) or f"choose from {', '.join(allowed)}")


def check(doc: Located, stem: str) -> list[str]:
    """All semantic checks, in source order of the sections they look at; returns warnings.

    A serving pipeline needs no ``training:`` block nor ``problem_type`` (``serving_check``): the
    checks of what it does restate run only on what is there."""
    from airflow_mbt.pipeline import serving_check

    problem_type = _get(doc.value, "project", "problem_type")
    kind = kind_of(doc.value)
    check_project(doc, stem)
    check_cadence(doc)
    check_interval(doc)
    warnings = serving_check.check(doc) if kind == "serving" else []
    if problem_type is not None:
        check_target(doc, problem_type)
    check_columns(doc)
    if kind == "training" or _get(doc.value, "training", "model_training", "framework") is not None:
        check_framework(doc, problem_type)
    if problem_type is not None:
        check_metrics(doc, problem_type)
        check_registration(doc, problem_type)
    check_kind(doc, kind)
    return warnings
