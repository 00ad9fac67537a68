"""YAML loading that remembers where every value came from.

``load_yaml(path)`` returns a ``Located`` document: plain Python values plus a map from each
value's path (a tuple of keys and list indexes) to its ``Loc`` (file, line, column; 1-based).
Mapping entries are located at their key, list items at the item. ``!include other.yaml``
splices in a fragment (relative to the including file); include cycles are reported with the
whole chain. Duplicate keys are errors.

Hostile input is refused with a located ``MBTInputError``: ``!include`` reads only regular files
inside the project (``root``: the project dir, else the top file's folder; no absolute paths, no
``..`` or symlink escape), and the limits of ``limits.py`` (file size, total size, depth, alias
expansion, integer digits, non-finite numbers) hold; see ``yaml_guard.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project import limits, yaml_guard

INCLUDE_TAG = "!include"
_Y = "tag:yaml.org,2002:"
_MERGE_TAG, _TIMESTAMP_TAG, _INT_TAG = _Y + "merge", _Y + "timestamp", _Y + "int"
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
        for mine, theirs in ((Path(os.path.abspath(path)), Path(os.path.abspath(base))),
                             (Path(path).resolve(), Path(base).resolve())):  # lexical first: a symlink keeps its name
            try:
                return str(mine.relative_to(theirs))
            except ValueError:
                pass
    return str(path)


def _mark_loc(mark, file: str) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, base: Path | None, root: Path):
        self.base = base
        self.root = root  # nothing outside it is read
        self._constructor = yaml.SafeLoader("")
        self.bytes_read = 0
        self.values = 0

    def _budget(self, size: int) -> bool:
        self.bytes_read += size
        return self.bytes_read <= limits.MAX_TOTAL_BYTES

    def load(self, path: Path, chain: tuple[Path, ...] = (), at: tuple = (),
             locs: dict | None = None, include_loc: Loc | None = None) -> tuple[Any, str]:
        path = Path(path)
        shown = display_path(path, self.base)
        where = (include_loc.file, include_loc.line, include_loc.col) if include_loc else None
        text = yaml_guard.read_confined(path, self.root, shown, where, self._budget)
        yaml_guard.prescan(text, shown)
        try:
            node = yaml.compose(text, Loader=yaml_guard.LOADER)
        except yaml.YAMLError as exc:
            raise yaml_guard.syntax_error(exc, shown) from None
        locs = {} if locs is None else locs
        if node is None:
            locs.setdefault(at, Loc(shown, 1, 1))
            return None, text
        chain = chain + (path.resolve(),)
        try:
            return self._walk(node, at, locs, shown, path, chain), text
        except RecursionError:  # the limits above make this unreachable; never a traceback
            raise MBTInputError("the document is nested too deeply", file=shown, line=1, col=1,
                                hint=f"at most {limits.MAX_DEPTH} levels of mappings and lists") from None

    def _fail(self, node, shown: str, at: tuple, message: str, hint: str) -> MBTInputError:
        return MBTInputError(message, file=shown, line=node.start_mark.line + 1, col=node.start_mark.column + 1,
                             field=dotted(at) or None, hint=hint)

    def _walk(self, node, at: tuple, locs: dict, shown: str, path: Path, chain: tuple) -> Any:
        locs.setdefault(at, _mark_loc(node.start_mark, shown))
        self.values += 1
        if self.values > limits.MAX_VALUES:
            raise self._fail(node, shown, at, f"the document (with its includes and aliases) has more than "
                             f"{limits.MAX_VALUES} values (the limit)", "write fewer values; aliases copy their anchor")
        if len(at) > limits.MAX_DEPTH:
            raise self._fail(node, shown, at, f"nested deeper than {limits.MAX_DEPTH} levels (the limit)",
                             "flatten the structure (includes add to the depth of the including value)")
        if node.tag == INCLUDE_TAG:
            return self._include(node, at, locs, shown, path, chain)
        if node.tag not in _PLAIN_TAGS:
            raise self._fail(node, shown, at, f"unsupported YAML tag {node.tag!r}",
                             "only plain mappings, lists, scalars and !include are allowed")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, at, locs, shown, path, chain)
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, at + (i,), locs, shown, path, chain) for i, item in enumerate(node.value)]
        return self._scalar(node, shown, at)

    def _mapping(self, node, at: tuple, locs: dict, shown: str, path: Path, chain: tuple) -> dict:
        merged = getattr(node, "_mbt_merged", None)  # an aliased node is walked again, flattened
        if merged is None:
            own = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
            try:
                self._constructor.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or node.start_mark
                raise MBTInputError(f"invalid merge key (<<): {exc.problem}", file=shown, line=mark.line + 1,
                                    col=mark.column + 1, field=dotted(at) or None,
                                    hint="write `<<: *anchor` with an anchor on a mapping") from None
            merged = node._mbt_merged = len(node.value) - own  # from `<<: *anchor`; own keys override
        out: dict = {}
        own_keys: set = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                raise self._fail(key_node, shown, at, "mapping keys must be plain scalars",
                                 "write `name: value` with a plain word as the key")
            key = self._scalar(key_node, shown, at)
            key = key if isinstance(key, str) else str(key_node.value)
            if key in own_keys:
                first = locs.get(at + (key,))
                raise self._fail(key_node, shown, at + (key,), f"duplicate key {key!r}",
                                 f"first defined at line {first.line}; keep one" if first else "keep one of them")
            if index >= merged:
                own_keys.add(key)
            locs[at + (key,)] = _mark_loc(key_node.start_mark, shown)
            out[key] = self._walk(value_node, at + (key,), locs, shown, path, chain)
        return out

    def _scalar(self, node, shown: str, at: tuple):
        if node.tag == _TIMESTAMP_TAG:  # dates stay text: the manifest is JSON
            return str(node.value)
        if node.tag == _INT_TAG and len(str(node.value)) > limits.MAX_INT_DIGITS + 8:
            raise self._fail(node, shown, at, f"integer with more than {limits.MAX_INT_DIGITS} digits (the limit)",
                             "quote it to make it text, or write a smaller number")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError) as exc:
            raise self._fail(node, shown, at, f"unsupported YAML value ({getattr(exc, 'problem', None) or exc})",
                             "only plain mappings, lists, scalars and !include are allowed") from None
        problem = limits.number_problem(value)
        if problem:
            raise self._fail(node, shown, at, problem, limits.NUMBER_HINT if "finite" in problem
                             else "quote it to make it text, or write a smaller number")
        return value

    def _include(self, node, at, locs, shown, path, chain):
        loc = _mark_loc(node.start_mark, shown)
        where = dotted(at) or None
        raw = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
        if not raw:
            raise MBTInputError("!include needs a file path, e.g. `!include fragments/split.yaml`",
                                file=shown, line=loc.line, col=loc.col, field=where,
                                hint="write the path of a YAML file relative to this file")
        if raw.startswith(("/", "~", "\\")) or Path(raw).is_absolute() or "\x00" in raw:
            raise MBTInputError(f"!include of {raw[:80]!r}: only relative paths inside the project",
                                file=shown, line=loc.line, col=loc.col, field=where,
                                hint="write a path relative to this file, e.g. !include ../fragments/split.yaml")
        if len(chain) > limits.MAX_INCLUDE_DEPTH:
            raise MBTInputError(f"!include nested deeper than {limits.MAX_INCLUDE_DEPTH} files (the limit)",
                                file=shown, line=loc.line, col=loc.col, field=where, hint="include fewer levels")
        target = path.parent / raw
        if not yaml_guard.is_inside(target, self.root):
            raise MBTInputError(f"!include of {raw[:80]!r} points outside the project", file=shown, line=loc.line,
                                col=loc.col, field=where,
                                hint="include only files inside the project folder (check '..' and symlinks)")
        if target.resolve() in chain:
            names = [display_path(p, self.base) for p in chain] + [display_path(target, self.base)]
            raise MBTInputError("include cycle: " + " -> ".join(names), file=shown, line=loc.line,
                                col=loc.col, field=where, hint="remove one of these !include tags")
        value, _ = self.load(target, chain, at, locs, include_loc=loc)
        return value


def load_yaml(path: Path, base: Path | None = None) -> Located:
    """Load one YAML file (resolving ``!include``); messages show paths relative to ``base``."""
    locs: dict = {}
    builder = _Builder(base, Path(base) if base is not None else Path(path).parent)
    value, text = builder.load(Path(path), locs=locs)
    return Located(value=value, locs=locs, file=display_path(Path(path), base), text=text)
