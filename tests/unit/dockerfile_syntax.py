"""A small Dockerfile reader for tests: instructions with line numbers, ARG substitution, stages,
COPY sources, exec-form arguments, and `.dockerignore` matching.

Docker builds cannot run on the test machines, so the deployment tests read the Dockerfiles
with this instead. It covers the syntax the project's Dockerfiles use (line continuations,
comments, parser directives, ``ARG`` before ``FROM``, ``${VAR}``/``$VAR``/``${VAR:-x}``, JSON and
shell forms); anything it does not understand raises ``ValueError`` instead of being skipped.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
_VAR = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


@dataclass
class Instruction:
    keyword: str      # upper case, e.g. "COPY"
    value: str        # everything after the keyword, continuations joined by a space
    line: int         # 1-based line of the keyword
    stage: int        # index of the build stage (-1 before the first FROM)
    args: dict = field(default_factory=dict)   # ARG values visible at this point

    def expand(self, text: str | None = None) -> str:
        """``text`` (default: the value) with ``$VAR``/``${VAR}``/``${VAR:-d}`` from visible ARGs."""
        return substitute(self.value if text is None else text, self.args)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        text = self.value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {self.line}: bad JSON array: {exc}") from None
            if not all(isinstance(x, str) for x in parsed):
                raise ValueError(f"line {self.line}: exec form must be an array of strings")
            return parsed
        return None


@dataclass
class Copy:
    sources: list[str]
    dest: str
    flags: dict[str, str]
    line: int


def substitute(text: str, args: dict[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}`` from ``args``."""

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        value = args.get(name) or ""
        if m.group(2) == "-":
            return value or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value

    return _VAR.sub(repl, text)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, drop comments and blank lines; keep each start line."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments (and parser directives) may sit inside a continued instruction
        if not buf:
            if not stripped:
                continue
            start = no
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(p for p in buf if p)))
        buf = []
    if buf:
        raise ValueError(f"line {start}: the file ends inside a continued instruction")
    return out


class Dockerfile:
    """A parsed Dockerfile: ``instructions``, ``stages`` (FROM image refs, expanded)."""

    def __init__(self, text: str, path: str = "Dockerfile"):
        self.path = path
        self.instructions: list[Instruction] = []
        self.stages: list[dict] = []
        global_args: dict[str, str] = {}
        stage_args: dict[str, str] = {}
        stage = -1
        for line, body in logical_lines(text):
            keyword, _, value = body.partition(" ")
            keyword = keyword.upper()
            if keyword not in KNOWN:
                raise ValueError(f"{path}:{line}: unknown instruction {keyword!r}")
            value = value.strip()
            if keyword == "FROM":
                stage += 1
                stage_args = {}
                parts = value.split()
                name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
                if len(parts) not in (1, 3) or (len(parts) == 3 and name is None):
                    raise ValueError(f"{path}:{line}: cannot read FROM {value!r}")
                self.stages.append({"image": substitute(parts[0], global_args), "name": name,
                                    "line": line})
            elif keyword == "ARG":
                for decl in shlex.split(value):
                    key, eq, default = decl.partition("=")
                    scope = global_args if stage < 0 else stage_args
                    if eq:
                        scope[key] = substitute(default, {**global_args, **stage_args})
                    elif stage >= 0 and key in global_args:
                        scope[key] = global_args[key]  # re-declared global ARG keeps its default
                    else:
                        scope[key] = ""
            visible = dict(global_args) if stage < 0 else dict(stage_args)
            self.instructions.append(Instruction(keyword, value, line, stage, visible))
        if not self.stages:
            raise ValueError(f"{path}: no FROM instruction")

    @classmethod
    def read(cls, path: Path) -> "Dockerfile":
        return cls(Path(path).read_text(encoding="utf-8"), str(path))

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    def final_stage(self) -> int:
        return len(self.stages) - 1

    def arg_defaults(self) -> dict[str, str]:
        """Every ARG with a default, global or in a stage (later declarations win)."""
        out: dict[str, str] = {}
        for ins in self.all("ARG"):
            for decl in shlex.split(ins.value):
                key, eq, default = decl.partition("=")
                if eq:
                    out[key] = default
        return out

    def env(self, stage: int | None = None) -> dict[str, str]:
        """ENV of a stage (default: the final one), ARGs expanded."""
        stage = self.final_stage() if stage is None else stage
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            if ins.stage != stage:
                continue
            tokens = shlex.split(ins.value)
            if tokens and "=" not in tokens[0]:
                out[tokens[0]] = ins.expand(" ".join(tokens[1:]))   # legacy "ENV KEY value"
                continue
            for tok in tokens:
                key, eq, val = tok.partition("=")
                if not eq:
                    raise ValueError(f"{self.path}:{ins.line}: cannot read ENV {ins.value!r}")
                out[key] = ins.expand(val)
        return out

    def copies(self) -> list[Copy]:
        out = []
        for ins in self.all("COPY") + self.all("ADD"):
            form = ins.exec_form()
            tokens = form if form is not None else shlex.split(ins.value)
            flags = {}
            while tokens and tokens[0].startswith("--"):
                key, _, val = tokens.pop(0)[2:].partition("=")
                flags[key] = val
            if len(tokens) < 2:
                raise ValueError(f"{self.path}:{ins.line}: {ins.keyword} needs a source and a destination")
            out.append(Copy([ins.expand(s) for s in tokens[:-1]], ins.expand(tokens[-1]), flags, ins.line))
        return out

    def user(self, stage: int | None = None) -> str | None:
        stage = self.final_stage() if stage is None else stage
        users = [i for i in self.all("USER") if i.stage == stage]
        return users[-1].expand().strip() if users else None


def dockerignore_allows(patterns_text: str, rel_path: str) -> bool:
    """Whether ``rel_path`` (relative to the build context) survives a .dockerignore file.

    The last matching pattern wins; ``!`` re-includes; a pattern that matches a parent folder
    matches everything inside it.
    """
    rel_path = rel_path.strip("/")
    parts = rel_path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    allowed = True
    for raw in patterns_text.splitlines():
        pat = raw.strip()
        if not pat or pat.startswith("#"):
            continue
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip().strip("/")
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            allowed = negate
    return allowed
