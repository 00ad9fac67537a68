"""YAML loading that remembers where every value came from.

``load_yaml(path)`` returns a ``Located`` document: plain Python values plus a map from each
value's path (a tuple of keys and list indexes) to its ``Loc`` (file, line, column; 1-based).
Mapping entries are located at their key, list items at the item. ``!include other.yaml``
splices in a fragment (relative to the including file); include cycles are reported with the
whole chain. Duplicate keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_mbt.errors import MBTInputError

INCLUDE_TAG = "!include"
_Y = "tag:yaml.org,2002:"
_MERGE_TAG, _TIMESTAMP_TAG = _Y + "merge", _Y + "timestamp"
_PLAIN_TAGS = {_Y + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp")}
_PLAIN_TAGS.add(INCLUDE_TAG)


@dataclass(frozen=True)
class Loc:
    file: str
    line: int
    col: int


@dataclass
class Located:
    """A loaded document and the source position of each of its values."""

    value: Any
    locs: dict[tuple, Loc] = field(default_factory=dict)
    file: str = ""
    text: str = ""

    def loc(self, path: tuple) -> Loc:
        """The position of ``path``, or of its nearest located ancestor."""
        path = tuple(path)
        while path:
            if path in self.locs:
                return self.locs[path]
            path = path[:-1]
        return self.locs.get((), Loc(self.file, 1, 1))

    def error(self, path: tuple, message: str, hint: str | None = None) -> MBTInputError:
        loc = self.loc(path)
        return MBTInputError(message, file=loc.file, line=loc.line, col=loc.col,
                             field=dotted(path) or None, hint=hint)


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def display_path(path: Path, base: Path | None = None) -> str:
    """A short path for messages: relative to ``base`` (the project dir) when possible."""
    if base is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(base).resolve()))
        except ValueError:
            pass
    return str(path)


def _mark_loc(mark, file: str) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, base: Path | None):
        self.base = base
        self._constructor = yaml.SafeLoader("")

    def load(self, path: Path, chain: tuple[Path, ...] = (), at: tuple = (),
             locs: dict | None = None, include_loc: Loc | None = None) -> tuple[Any, str]:
        path = Path(path)
        shown = display_path(path, self.base)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if include_loc:
                raise MBTInputError(f"included file {shown!r} does not exist", file=include_loc.file,
                                    line=include_loc.line, col=include_loc.col, field="!include",
                                    hint="include paths are relative to the including file") from None
            raise MBTInputError("file not found", file=shown) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MBTInputError(f"cannot read file ({type(exc).__name__})", file=shown) from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            raise MBTInputError(f"YAML syntax error: {problem}", file=shown,
                                line=mark.line + 1 if mark else None, col=mark.column + 1 if mark else None,
                                hint="check indentation, colons and quotes around this position") from None
        except yaml.YAMLError as exc:
            raise MBTInputError(f"YAML syntax error: {exc}", file=shown) from None
        locs = {} if locs is None else locs
        if node is None:
            locs.setdefault(at, Loc(shown, 1, 1))
            return None, text
        chain = chain + (path.resolve(),)
        try:
            return self._walk(node, at, locs, shown, path, chain), text
        except RecursionError:
            raise MBTInputError("the document refers to itself (recursive YAML alias) or is nested too deeply",
                                file=shown) from None

    def _walk(self, node, at: tuple, locs: dict, shown: str, path: Path, chain: tuple) -> Any:
        locs.setdefault(at, _mark_loc(node.start_mark, shown))
        if node.tag == INCLUDE_TAG:
            return self._include(node, at, locs, shown, path, chain)
        if node.tag not in _PLAIN_TAGS:
            raise MBTInputError(f"unsupported YAML tag {node.tag!r}", file=shown, line=node.start_mark.line + 1,
                                col=node.start_mark.column + 1, field=dotted(at) or None,
                                hint="only plain mappings, lists, scalars and !include are allowed")
        if isinstance(node, yaml.MappingNode):
            merged = getattr(node, "_mbt_merged", None)  # an aliased node is walked again, flattened
            if merged is None:
                own = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
                self._constructor.flatten_mapping(node)
                merged = node._mbt_merged = len(node.value) - own  # from `<<: *anchor`; own keys override
            out: dict = {}
            own_keys: set = set()
            for index, (key_node, value_node) in enumerate(node.value):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise MBTInputError("mapping keys must be plain scalars", file=shown,
                                        line=key_node.start_mark.line + 1, col=key_node.start_mark.column + 1)
                key = self._scalar(key_node)
                key = key if isinstance(key, str) else str(key_node.value)
                if key in own_keys:
                    first = locs.get(at + (key,))
                    raise MBTInputError(f"duplicate key {key!r}", file=shown, line=key_node.start_mark.line + 1,
                                        col=key_node.start_mark.column + 1, field=dotted(at + (key,)),
                                        hint=f"first defined at line {first.line}" if first else None)
                if index >= merged:
                    own_keys.add(key)
                locs[at + (key,)] = _mark_loc(key_node.start_mark, shown)
                out[key] = self._walk(value_node, at + (key,), locs, shown, path, chain)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, at + (i,), locs, shown, path, chain) for i, item in enumerate(node.value)]
        try:
            return self._scalar(node)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or node.start_mark
            raise MBTInputError(f"unsupported YAML value ({exc.problem})", file=shown, line=mark.line + 1,
                                col=mark.column + 1, field=dotted(at) or None,
                                hint="only plain mappings, lists, scalars and !include are allowed") from None

    def _scalar(self, node):
        if node.tag == _TIMESTAMP_TAG:  # dates stay text: the manifest is JSON
            return str(node.value)
        return self._constructor.construct_object(node, deep=True)

    def _include(self, node, at, locs, shown, path, chain):
        loc = _mark_loc(node.start_mark, shown)
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise MBTInputError("!include needs a file path, e.g. `!include fragments/split.yaml`",
                                file=shown, line=loc.line, col=loc.col, field=dotted(at) or None)
        target = (path.parent / str(node.value).strip())
        if target.resolve() in chain:
            names = [display_path(p, self.base) for p in chain] + [display_path(target, self.base)]
            raise MBTInputError("include cycle: " + " -> ".join(names), file=shown, line=loc.line,
                                col=loc.col, field=dotted(at) or None, hint="remove one of these !include tags")
        value, _ = self.load(target, chain, at, locs, include_loc=loc)
        return value


def load_yaml(path: Path, base: Path | None = None) -> Located:
    """Load one YAML file (resolving ``!include``); messages show paths relative to ``base``."""
    locs: dict = {}
    builder = _Builder(base)
    value, text = builder.load(Path(path), locs=locs)
    return Located(value=value, locs=locs, file=display_path(Path(path), base), text=text)
