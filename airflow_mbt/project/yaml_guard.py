"""Guards in front of the YAML parser: confined, bounded reading and a streaming pre-scan.

``read_confined(path, root, shown, at)`` returns the text of a regular file inside ``root``
(symlinks are resolved first, so a link cannot escape), at most ``MAX_FILE_BYTES``, decoded as
UTF-8, without control characters; anything else is an ``MBTInputError`` at ``at`` (the
``!include`` that asked for the file) or at the byte that is wrong.

``prescan(text, shown)`` walks the parser events (no recursion, no values built) and enforces
``MAX_DEPTH``, ``MAX_VALUES`` and ``MAX_EXPANDED_CHARS`` counting every alias as a copy of its
anchor, and rejects recursive and undefined aliases, each at the line and column of the event.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import yaml

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project import limits

SYNTAX_HINT = "check indentation, colons and quotes around this position"
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
# libyaml when present (10x faster; the same events, nodes and marks), else the pure-Python parser
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _err(message: str, shown: str, at: tuple | None, hint: str, field: str | None = None) -> MBTInputError:
    if at is not None:
        return MBTInputError(message, file=at[0], line=at[1], col=at[2], field=field or "!include", hint=hint)
    return MBTInputError(message, file=shown, line=1, col=1, field=field, hint=hint)


def _position(data: bytes | str, offset: int) -> tuple[int, int]:
    newline = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    return line, offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]


def is_inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


def read_confined(path: Path, root: Path, shown: str, at: tuple | None, budget: Callable[[int], bool]) -> str:
    """The text of ``path``; ``budget(n)`` is False when the total of bytes read is exhausted."""
    what = f"included file {shown!r}" if at is not None else "the file"
    if not is_inside(path, root):
        raise _err(f"{what} resolves to a path outside the project", shown, at,
                   "files are read only inside the project folder (check symlinks and '..')")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if at is not None:
            raise _err(f"{what} does not exist", shown, at, "include paths are relative to the including file") \
                from None
        raise MBTInputError("file not found", file=shown, hint="check the file name") from None
    except (OSError, ValueError) as exc:
        raise _err(f"cannot read {what} ({type(exc).__name__})", shown, at, "check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise _err(f"{what} is a directory, not a YAML file", shown, at, "name a .yaml file, not a folder")
    if not stat.S_ISREG(info.st_mode):
        raise _err(f"{what} is not a regular file (a device, pipe or socket)", shown, at,
                   "only plain YAML files can be read")
    if info.st_size > limits.MAX_FILE_BYTES:
        raise _err(f"{what} is {info.st_size} bytes, over the limit of {limits.MAX_FILE_BYTES} bytes", shown, at,
                   "split it with !include or remove generated data; YAML files describe, data lives in tables")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _err(f"cannot read {what} ({type(exc).__name__})", shown, at, "check the file's permissions") from None
    if len(data) > limits.MAX_FILE_BYTES:
        raise _err(f"{what} is over the limit of {limits.MAX_FILE_BYTES} bytes", shown, at,
                   "split it with !include")
    if not budget(len(data)):
        raise _err(f"the files of this document exceed {limits.MAX_TOTAL_BYTES} bytes in all (the limit)", shown,
                   at, "include fewer or smaller files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise MBTInputError(f"not UTF-8 text: byte 0x{data[exc.start]:02x}", file=shown, line=line, col=col,
                            hint="save the file as UTF-8 (is it Latin-1, or not a text file at all?)") from None
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line, col = _position(text, bad.start())
        raise MBTInputError(f"control character U+{ord(bad.group()[0]):04X} is not allowed in YAML", file=shown,
                            line=line, col=col, hint="remove it (a NUL byte or binary data in a text file?)")
    return text


def syntax_error(exc: yaml.YAMLError, shown: str) -> MBTInputError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit, met while it reads ahead
            return MBTInputError(f"nested deeper than {limits.MAX_DEPTH} levels (the limit)", file=shown,
                                 line=mark.line + 1 if mark else 1, col=mark.column + 1 if mark else 1,
                                 hint="flatten the structure; configuration needs only a few levels")
        return MBTInputError(f"YAML syntax error: {problem}", file=shown, line=mark.line + 1 if mark else 1,
                             col=mark.column + 1 if mark else 1, hint=SYNTAX_HINT)
    return MBTInputError("YAML syntax error", file=shown, line=1, col=1, hint=SYNTAX_HINT)


def prescan(text: str, shown: str) -> None:
    """Enforce depth and alias-expansion limits on the event stream of ``text``."""
    depth = values = chars = 0
    done: dict[str, tuple[int, int]] = {}          # anchor -> (values, chars) it expands to
    open_: dict[str, tuple[int, int]] = {}         # anchors of collections not yet closed
    stack: list[str | None] = []

    def fail(event, message: str, hint: str) -> MBTInputError:
        mark = event.start_mark
        return MBTInputError(message, file=shown, line=mark.line + 1, col=mark.column + 1, hint=hint)

    try:
        for event in yaml.parse(text, Loader=LOADER):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                values += 1
                if depth > limits.MAX_DEPTH:
                    raise fail(event, f"nested deeper than {limits.MAX_DEPTH} levels (the limit)",
                               "flatten the structure; configuration needs only a few levels")
                stack.append(event.anchor)
                if event.anchor:
                    open_[event.anchor] = (values - 1, chars)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
                anchor = stack.pop()
                if anchor and anchor in open_:
                    start = open_.pop(anchor)
                    done[anchor] = (values - start[0], chars - start[1])
            elif isinstance(event, yaml.ScalarEvent):
                values += 1
                chars += len(event.value)
                if event.anchor:
                    done[event.anchor] = (1, len(event.value))
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor in open_:
                    raise fail(event, f"recursive alias *{event.anchor}: it refers to itself "
                                      "(the value that contains it)",
                               f"an alias can only repeat a finished value; remove *{event.anchor} here")
                if event.anchor not in done:
                    raise fail(event, f"undefined alias *{event.anchor}",
                               f"define &{event.anchor} on a value before using *{event.anchor}")
                more_values, more_chars = done[event.anchor]
                values += more_values
                chars += more_chars
            else:
                continue
            if values > limits.MAX_VALUES or chars > limits.MAX_EXPANDED_CHARS:
                raise fail(event, f"the document expands to more than {limits.MAX_VALUES} values or "
                                  f"{limits.MAX_EXPANDED_CHARS} characters (the alias-expansion limit)",
                           "aliases (*name) copy their anchor: nested aliases multiply; write the values out")
    except yaml.YAMLError as exc:
        raise syntax_error(exc, shown) from None
