"""Resource limits of authoring input, and the checks of values that JSON cannot hold.

Every limit is a hard input error (exit 2) naming the file, line and the limit, so a hostile or
careless file can neither exhaust memory nor end in a traceback:

- ``MAX_FILE_BYTES``: one YAML file (a pipeline, a fragment, profiles.yaml).
- ``MAX_TOTAL_BYTES``: all files read for one document (the file and its ``!include`` tree).
- ``MAX_VALUES`` / ``MAX_EXPANDED_CHARS``: values and scalar characters after alias expansion
  (``*alias`` copies its anchor: a "billion laughs" file stays small on disk).
- ``MAX_DEPTH``: nesting of mappings and lists (also across ``!include``).
- ``MAX_INCLUDE_DEPTH``: ``!include`` inside ``!include``.
- ``MAX_INT_DIGITS``: digits of an integer (YAML, ``--vars``, rendered templates).
- ``MAX_MANIFEST_BYTES``: a compiled manifest.

Non-finite numbers (``.nan``, ``.inf``, ``1e999``) are rejected everywhere: the manifest is JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from airflow_mbt.errors import MBTInputError

MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
MAX_VALUES = 100_000
MAX_EXPANDED_CHARS = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_INCLUDE_DEPTH = 16
MAX_INT_DIGITS = 20
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_NAME_LENGTH = 128

NUMBER_HINT = "write a finite number such as 0.2 (.nan, .inf and overflowing values have no JSON form)"


def int_problem(value: int) -> str | None:
    """Why an integer is refused, or None (bools are fine)."""
    if isinstance(value, bool):
        return None
    if value.bit_length() > 70 or len(str(abs(value))) > MAX_INT_DIGITS:
        return f"integer with more than {MAX_INT_DIGITS} digits (the limit)"
    return None


def number_problem(value: Any) -> str | None:
    """Why a scalar number cannot go into a manifest, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"non-finite number {value!r}"
    if isinstance(value, int):
        return int_problem(value)
    return None


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, scalar) of every non-container value, in document order, without recursion."""
    stack: list[tuple[tuple, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((where + (k,), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((where + (i,), v) for i, v in reversed(list(enumerate(item))))
        else:
            yield where, item


def first_bad_number(value: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    """The path and problem of the first number in a nested value that JSON cannot hold."""
    for where, item in leaves(value, path):
        problem = number_problem(item)
        if problem:
            return where, problem
    return None


def check_numbers(value: Any, error_at: Callable[[tuple, str, str | None], MBTInputError]) -> None:
    """Raise ``error_at(path, message, hint)`` at the first non-finite or oversized number."""
    bad = first_bad_number(value)
    if bad:
        path, problem = bad
        raise error_at(path, problem, NUMBER_HINT if "finite" in problem
                       else f"write a number of at most {MAX_INT_DIGITS} digits, or quote it to make it text")
