"""The model facts a serving pipeline may restate, and their comparison with the model.

Contract: ``DECLARED`` maps a pipeline field to its ``mbt_model.json`` key. ``conflicts(config,
meta)`` lists ``(field, declared, model's)`` for every stated value that differs from the model
(classes compare as a set of strings; ``True`` never equals ``1``). ``load_model`` turns a
conflict into an input error located at the field: the model's value is never silently used
instead of a different declared one.
"""

from __future__ import annotations

from typing import Any

DECLARED: dict[tuple[str, ...], str] = {
    ("training", "schema", "target", "label_column"): "label_column",
    ("training", "schema", "target", "classes"): "classes",
    ("training", "schema", "target", "positive_class"): "positive_class",
    ("training", "schema", "identifiers", "primary_key"): "primary_key",
    ("training", "model_training", "framework"): "framework",
    ("project", "problem_type"): "problem_type",
}


def declarations(config: dict[str, Any]) -> dict[str, Any]:
    """The model facts a compiled serving config states, by ``mbt_model.json`` key."""
    out: dict[str, Any] = {}
    for path, key in DECLARED.items():
        value: Any = config
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            out[key] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return str(a) == str(b) and isinstance(a, bool) == isinstance(b, bool)


def conflicts(config: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted field, declared value, the model's value)`` for each declaration that differs."""
    fields = {key: ".".join(path) for path, key in DECLARED.items()}
    return [(fields[key], value, meta[key]) for key, value in declarations(config).items()
            if meta.get(key) is not None and not _same(value, meta[key])]
