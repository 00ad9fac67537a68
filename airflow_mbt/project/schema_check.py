"""JSON Schema validation whose errors point at file:line:col with a useful hint.

Unknown keys and enum values get a did-you-mean (difflib); wrong types say what was expected.
The first error in source order is raised; the hint says how many more there are.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow_mbt.project.yaml_loader import Located

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


@lru_cache(maxsize=None)
def load_schema(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


_TYPE_HINTS = {
    "object": "indent the keys of this mapping under it (key: value)",
    "array": "write a list: [a, b] or one '- item' per line",
    "integer": "write a whole number without quotes",
    "number": "write a number without quotes",
    "boolean": "write true or false",
    "string": "quote the value to make it text",
}
_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list"),
          (dict, "a mapping"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for cls, name in _KINDS if isinstance(value, cls)), type(value).__name__)


def suggest(word: str, choices) -> str | None:
    """``did you mean 'x'?`` for a close spelling or a unique containing choice; else None."""
    word, choices = str(word), [str(c) for c in choices]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [c for c in choices if word.lower() in c.lower() or c.lower() in word.lower()]
        close = close if len(close) == 1 else []
    return f"did you mean {close[0]!r}?" if close else None


def _choices_hint(word, choices) -> str:
    choices = sorted(str(c) for c in choices)
    return suggest(word, choices) or f"allowed: {', '.join(choices)}"


def _describe(error, doc: Located) -> tuple[tuple, str, str | None]:
    """(path, message, hint) for one jsonschema error."""
    path = tuple(error.absolute_path)
    v, schema, inst = error.validator, error.schema, error.instance
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed)
        key = extra[0] if extra else "?"
        hint = _choices_hint(key, allowed) if allowed else "this mapping takes no keys"
        return path + (key,), f"unknown key {key!r}", hint
    if "propertyNames" in error.schema_path and v == "enum":  # a mapping key outside its enum
        return path + (inst,), f"unknown name {inst!r}", _choices_hint(inst, error.validator_value)
    if v == "required":
        missing = [k for k in error.validator_value if k not in inst]
        key = missing[0] if missing else "?"
        for unknown in (k for k in inst if k not in schema.get("properties", {})):
            if suggest(unknown, [key]):  # a misspelt required key: report the typo instead
                return path + (unknown,), f"unknown key {unknown!r}", f"did you mean {key!r}?"
        where = path if path else ()
        return where, f"missing required field {'.'.join(map(str, path + (key,)))!r}", \
            f"add `{key}:` under {'.'.join(map(str, path)) or 'the top level'}"
    if v == "enum":
        choices = error.validator_value
        if len(choices) == 1:
            return path, f"must be {choices[0]!r}, got {inst!r}", f"write {choices[0]!r} (the only value allowed here)"
        return path, f"invalid value {inst!r}", _choices_hint(inst, choices)
    if v == "type":
        want = error.validator_value
        want = [want] if isinstance(want, str) else want
        return path, f"expected {' or '.join(_TYPE_NAMES.get(t, t) for t in want)}, got {_kind(inst)} {inst!r}", \
            schema.get("description") or _TYPE_HINTS.get(want[0])
    if v == "pattern":
        return path, f"invalid value {inst!r}", schema.get("description") or f"must match {error.validator_value}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return path, f"value {inst!r} must be {op} {error.validator_value}", schema.get("description")
    if v in ("minLength", "minItems", "minProperties"):
        return path, "must not be empty", "write a value, or remove the key where a default exists"
    if v == "not" and "x-message" in schema:  # a rule with its own words (e.g. two keys for one setting)
        return path, schema["x-message"], schema.get("x-hint")
    if v in ("anyOf", "oneOf"):
        return path, f"invalid value {inst!r}", schema.get("description")
    return path, error.message, "see docs/configuration.md and CONTRACTS.md for the expected form"


def validate(doc: Located, schema_path: Path, what: str = "document") -> None:
    """Raise ``MBTInputError`` for the first schema violation of ``doc.value`` (source order)."""
    import jsonschema  # lazy: not needed for --help

    schema = load_schema(str(schema_path))
    validator = jsonschema.Draft202012Validator(schema)
    if not isinstance(doc.value, dict):
        raise doc.error((), f"the {what} must be a mapping, got {_kind(doc.value)}")
    errors = list(validator.iter_errors(doc.value))
    if not errors:
        return
    described = list(dict.fromkeys(_describe(e, doc) for e in errors))

    def order(item):
        loc = doc.loc(item[0])
        return (loc.file != doc.file, loc.file, loc.line, loc.col, -len(item[0]))

    described.sort(key=order)
    path, message, hint = described[0]
    if len(described) > 1:
        more = f"({len(described) - 1} more problem{'s' if len(described) > 2 else ''} after fixing this one)"
        hint = f"{hint} {more}" if hint else more
    raise doc.error(path, message, hint)
