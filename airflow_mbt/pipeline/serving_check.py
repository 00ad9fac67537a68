"""What a serving pipeline may say about its model (validate time, no data, no network).

Contract: a serving pipeline needs only ``project.name``, ``deployment`` and ``serving``
(``model_source``, ``data_source``, ``output``); the problem type, label, classes, primary key,
framework and column plan come from the model (``mbt_model.json`` and ``preprocessor.json`` of
the MLflow run). ``check(doc)`` returns warnings (``file:line:col: ...``). A field the serving file itself
writes is:

- ``training.schema.target.{label_column, classes, positive_class}``,
  ``training.schema.identifiers.primary_key``, ``training.model_training.framework`` and
  ``project.problem_type`` are *declarations*: kept for older serving files, warned about once,
  and compared with the model when ``load_model`` runs (``conflicts``): a different value is an
  input error, never silently overridden (``ml/model_facts.py``);
- every other ``training.*`` field (preprocessing, split, evaluation, data_source, estimator
  config, ignored_columns, ...) is warned about as ignored: serving replays the model's
  preprocessing and never trains. (Not rejected: older serving files, the bad-input corpus and
  the spec demo carry whole training blocks.)

``serving.model_source.artifact_snapshot: true`` is warned about too (it has no effect).

Fields inherited from a base pipeline (``pipelines/_<name>.yaml``, shared with the training
pipeline) are accepted silently: they describe the training the model came from.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from airflow_mbt.ml.model_facts import DECLARED
from airflow_mbt.project.yaml_loader import Located, dotted

HINT = ("remove them: a serving pipeline needs only serving.model_source, data_source and output; "
        "the schema, classes and column plan come from the model")


def _leaves(value: Any, path: tuple) -> list[tuple]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))]
    return [path]


def _inherited(doc: Located, path: tuple) -> bool:
    """Written in a base pipeline (pipelines/_<name>.yaml), not in the serving file."""
    return PurePosixPath(doc.loc(path).file).name.startswith("_")


def _covered(path: tuple, allowed) -> tuple | None:
    return next((a for a in allowed if path[:len(a)] == a), None)


def check(doc: Located) -> list[str]:
    """Warnings for the declarations of a serving file; raises for a field serving would ignore."""
    warnings: list[str] = []
    training = doc.value.get("training")
    written = [p for p in _leaves(training, ("training",)) if not _inherited(doc, p)] \
        if isinstance(training, dict) else []
    declared = sorted({dotted(a) for p in written for a in [_covered(p, DECLARED)] if a})
    if declared:
        loc = doc.loc(("training",))
        verb, pronoun = ("restates", "it") if len(declared) == 1 else ("restate", "them")
        differ = "it differs" if len(declared) == 1 else "they differ"
        warnings.append(f"{loc.file}:{loc.line}:{loc.col}: {', '.join(declared)} in a serving pipeline "
                        f"only {verb} the model: mbt reads {pronoun} from the model and stops if {differ}; "
                        "you can remove the training: block")
    ignored = [p for p in written if not _covered(p, DECLARED)]
    if ignored:
        loc = doc.loc(ignored[0])
        names = sorted({dotted(p[:3]) for p in ignored})
        warnings.append(f"{loc.file}:{loc.line}:{loc.col}: {', '.join(names)} {'has' if len(names) == 1 else 'have'} "
                        "no effect in a serving pipeline: serving replays the model's column plan and "
                        f"preprocessing ({HINT}; extra scoring columns are dropped with serving.data_source.query)")
    snapshot = ("serving", "model_source", "artifact_snapshot")
    if (doc.value.get("serving") or {}).get("model_source", {}).get("artifact_snapshot") is True:
        loc = doc.loc(snapshot)
        warnings.append(f"{loc.file}:{loc.line}:{loc.col}: serving.model_source.artifact_snapshot has no effect: "
                        "the model is always downloaded from its MLflow run")
    return warnings
