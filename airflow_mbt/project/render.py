"""Rendering of ``{{ var(...) }}``, ``{{ env_var(...) }}`` and ``{{ secret(...) }}`` templates.

A small hand-written parser (no jinja2): each ``{{ ... }}`` holds one call with literal
arguments (quoted strings, numbers, true/false/null). ``var`` reads ``--vars``, ``env_var`` the
environment at compile time; ``secret('X')`` is kept as the reference ``{"$secret": "X"}`` and
resolved at run time. A value that is exactly one template keeps the rendered type when it
parses as a YAML scalar (``"{{ var('secs', 300) }}"`` -> ``300``).

The run parameters ``{{ ds }}``, ``{{ logical_date }}``, ``{{ interval_start }}`` and
``{{ interval_end }}`` (``airflow_mbt.sources``) are left verbatim under a ``data_source`` section
and in ``training.filters`` / ``serving.filters``:
they are bound at RUN time, so the manifest (and its hash) is the same for every run. Elsewhere,
and for any other bare name, they are an error naming the allowed places.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any, Callable, Mapping

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import SECRET_KEY
from airflow_mbt.project import limits
from airflow_mbt.project.limits import number_problem

FUNCTIONS = ("var", "env_var", "secret")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"""
                    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[(),]))""")
_MISSING = object()
_BARE_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
RUN_PARAMETERS = ("ds", "logical_date", "interval_start", "interval_end")  # = airflow_mbt.sources
_CONSTANTS = {"true": True, "false": False, "True": True, "False": False, "none": None, "None": None,
              "null": None}

# An error factory: (message, hint) -> MBTInputError located at the value being rendered.
ErrorAt = Callable[[str, "str | None"], MBTInputError]


class TemplateError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_call(expr: str) -> tuple[str, list]:
    """Parse ``name(arg, ...)`` with literal args; raise ``TemplateError`` when malformed."""
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse template {{{{ {expr} }}}} near {expr[pos:pos + 10]!r}",
                                hint="write e.g. {{ var('name', 'default') }} with quoted strings")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    if len(tokens) < 3 or tokens[0][0] != "name" or tokens[1] != ("punct", "(") or tokens[-1] != ("punct", ")"):
        raise TemplateError(f"template {{{{ {expr} }}}} is not a function call",
                            hint="use var('x', default), env_var('X', default) or secret('X')")
    name, args, expect_value = tokens[0][1], [], True
    for kind, tok in tokens[2:-1]:
        if expect_value:
            if kind == "str":
                args.append(_unquote(tok))
            elif kind == "num":
                args.append(float(tok) if any(c in tok for c in ".eE") else int(tok))
            elif kind == "name" and tok in _CONSTANTS:
                args.append(_CONSTANTS[tok])
            else:
                raise TemplateError(f"argument {tok!r} in {{{{ {expr} }}}} must be a literal",
                                    hint="quote strings: var('name') not var(name)")
            expect_value = False
        elif (kind, tok) == ("punct", ","):
            expect_value = True
        else:
            raise TemplateError(f"expected ',' or ')' in {{{{ {expr} }}}}")
    if expect_value and args:
        raise TemplateError(f"trailing ',' in {{{{ {expr} }}}}")
    return name, args


def _scalar(text: str, strict: bool = False) -> Any:
    """A rendered string as a YAML scalar (int, float, bool, null) when it parses as one.

    Text that would be a non-finite or oversized number stays text (the schema then says what
    the field expects): the manifest is JSON and Python refuses ints of over 4300 digits.
    ``strict`` returns such numbers instead, for the caller to refuse (``--vars``)."""
    import yaml

    if len(text) > 256 or "\n" in text:
        return text  # no scalar of interest is this long; never hand long text to the parser
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return text
    if number_problem(value) and not strict:
        return text
    if isinstance(value, int) and not isinstance(value, bool) and re.match(r"^[-+]?0[0-9a-zA-Z_]", text.strip()):
        return text  # "0123" or "0x1f" stay text (ids, not YAML 1.1 octal/hex numbers)
    return value if isinstance(value, (int, float, bool)) or value is None else text


class Renderer:
    """Renders templates with ``vars`` and ``env``; ``allow_secrets`` is False in pipelines."""

    def __init__(self, vars: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 allow_secrets: bool = True):
        self.vars = dict(vars or {})
        self.env = os.environ if env is None else env
        self.allow_secrets = allow_secrets
        self.used_vars: set[str] = set()

    def _call(self, name: str, args: list, whole: bool) -> Any:
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=1)
            raise TemplateError(f"unknown template function {name!r}",
                                hint=f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(FUNCTIONS)}")
        limit = 1 if name == "secret" else 2
        if not 1 <= len(args) <= limit or not isinstance(args[0], str) or not args[0]:
            usage = "secret('NAME')" if name == "secret" else f"{name}('name', default)"
            raise TemplateError(f"{name}() takes a quoted name{'' if limit == 1 else ' and an optional default'}",
                                hint=f"write {{{{ {usage} }}}}")
        key, default = args[0], (args[1] if len(args) > 1 else _MISSING)
        if name == "secret":
            if not self.allow_secrets:
                raise TemplateError("secret() is only allowed in profiles.yaml",
                                    hint="pipelines must not hold credentials; put them in the profile's target")
            if not whole:
                raise TemplateError("secret() must be the whole value, not part of a string",
                                    hint=f"write the field as \"{{{{ secret('{key}') }}}}\"")
            return {SECRET_KEY: key}
        if name == "var":
            self.used_vars.add(key)
            source, what, fix = self.vars, "var", f"pass --vars {key}=VALUE or write var('{key}', default)"
        else:
            source, what, fix = self.env, "environment variable", f"export {key}=... or write env_var('{key}', default)"
        if key in source:
            return source[key]
        if default is _MISSING:
            raise TemplateError(f"{what} {key!r} is not set and has no default", hint=fix)
        return default

    @staticmethod
    def _run_parameter(expr: str, allowed: bool) -> bool:
        """True for ``{{ ds }}``-style run parameters that stay verbatim; an error for other
        bare names, and for run parameters where they are not bound."""
        m = _BARE_NAME.match(expr)
        if not m:
            return False
        name = m.group(1)
        if name in RUN_PARAMETERS:
            if allowed:
                return True
            raise TemplateError(f"{{{{ {name} }}}} is a run parameter, only bound in data_source query/where "
                                "and in filters",
                                hint="use it in training.data_source or serving.data_source (query: / where:) "
                                     "or in training.filters / serving.filters")
        close = difflib.get_close_matches(name, RUN_PARAMETERS, n=1)
        raise TemplateError(f"unknown template parameter {{{{ {name} }}}}",
                            hint=f"did you mean {{{{ {close[0]} }}}}?" if close else
                            f"run parameters (data_source only): {', '.join(RUN_PARAMETERS)}; or var('x')")

    def render_string(self, text: str, run_params: bool = False) -> Any:
        matches = [m for m in _TEMPLATE.finditer(text) if not self._run_parameter(m.group(1), run_params)]
        if not matches:
            if "{{" in _TEMPLATE.sub("", text):
                raise TemplateError("unclosed '{{' in value", hint="templates look like {{ var('x') }}")
            return text
        whole = len(matches) == 1 and matches[0].span() == (0, len(text.rstrip())) and not text[:1].isspace()
        if whole:
            value = self._call(*parse_call(matches[0].group(1)), whole=True)
            return _scalar(value) if isinstance(value, str) else value
        out, pos = [], 0
        for m in matches:
            out.append(text[pos:m.start()])
            value = self._call(*parse_call(m.group(1)), whole=False)
            out.append("" if value is None else str(value))
            pos = m.end()
        out.append(text[pos:])
        gaps = [text[:matches[0].start()]] + [text[a.end():b.start()] for a, b in zip(matches, matches[1:])]
        if any("{{" in _TEMPLATE.sub("", gap) for gap in gaps + [text[matches[-1].end():]]):
            raise TemplateError("unclosed '{{' in value", hint="templates look like {{ var('x') }}")
        return "".join(out)

    def render(self, value: Any, error_at: Callable[[tuple, str, str | None], MBTInputError],
               path: tuple = ()) -> Any:
        """Render every string in a nested structure; ``error_at(path, msg, hint)`` locates errors."""
        if isinstance(value, dict):
            return {k: self.render(v, error_at, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, error_at, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "{{" in value:
            try:
                # run parameters stay verbatim where they are bound: data sources and row filters
                return self.render_string(value, run_params="data_source" in path or path[1:2] == ("filters",))
            except TemplateError as exc:
                raise error_at(path, exc.message, exc.hint) from None
        return value


MAX_VARS_CHARS = 64 * 1024
VARS_HINT = "use --vars key=value (repeat --vars for more) or --vars '{key: value}'"


def _vars_error(message: str, hint: str = VARS_HINT) -> MBTInputError:
    return MBTInputError(message, field="--vars", hint=hint)


def _vars_mapping(item: str, text: str) -> dict:
    import yaml

    from airflow_mbt.project import yaml_guard

    try:
        yaml_guard.prescan(text, "--vars")  # depth and alias-expansion limits
    except MBTInputError as err:
        what = f"cannot parse {item[:80]!r} as a YAML mapping: " if err.message.startswith("YAML") else ""
        raise _vars_error(f"{what}{err.message} (column {err.col})", err.hint or VARS_HINT) from None
    try:
        data = yaml.safe_load(text)
    except ValueError:  # Python refuses ints of over 4300 digits
        raise _vars_error(f"an integer in {item[:40]!r}... has more than {limits.MAX_INT_DIGITS} digits (the limit)",
                          "write a smaller number, or quote it to make it text") from None
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise _vars_error(f"cannot parse {item[:80]!r} as a YAML mapping",
                          "use --vars key=value or --vars '{key: value}'")
    return {str(k): v for k, v in data.items()}


def parse_vars(items: list[str] | None) -> dict[str, Any]:
    """``--vars`` values: ``k=v`` pairs (v parsed as a YAML scalar) or a YAML mapping ``'{k: v}'``.

    Each item is at most ``MAX_VARS_CHARS``; numbers must be finite with at most
    ``limits.MAX_INT_DIGITS`` digits (exit 2 naming --vars and the key)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if len(item) > MAX_VARS_CHARS:
            raise _vars_error(f"a --vars value of {len(item)} characters, over the limit of {MAX_VARS_CHARS}",
                              "pass large inputs as files or tables, not as template variables")
        text = item.strip()
        if text.startswith("{"):
            parsed = _vars_mapping(item, text)
        else:
            key, sep, raw = text.partition("=")
            key = key.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
                raise _vars_error(f"cannot parse {item[:80]!r}")
            digits = raw.strip().lstrip("+-").replace("_", "")
            if digits.isdigit() and len(digits) > limits.MAX_INT_DIGITS:
                raise _vars_error(f"{key}: integer with more than {limits.MAX_INT_DIGITS} digits (the limit)",
                                  f"write a smaller number, or pass text in a mapping: --vars '{{{key}: \"...\"}}'")
            parsed = {key: _scalar(raw, strict=True) if raw.strip() else raw}
        bad = limits.first_bad_number(parsed)
        if bad:
            raise _vars_error(f"{'.'.join(map(str, bad[0]))}: {bad[1]}",
                              limits.NUMBER_HINT if "finite" in bad[1] else "write a smaller number or quote it")
        out.update(parsed)
    return out
