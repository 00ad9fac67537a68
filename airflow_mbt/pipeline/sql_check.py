"""``mbt validate`` / ``mbt compile`` checks of ``data_source.query`` and ``data_source.where``.

The SQL is parsed with sqlglot in the dialect of the target's connector (``postgres`` for the
postgres connector, ``duckdb`` for local_file). ``query`` must be ONE query statement (SELECT,
WITH ... SELECT, UNION ...); ``where`` ONE boolean expression, not a statement. Every
``{{ name }}`` must be a run parameter (``airflow_mbt.sources.RUN_PARAMETERS``). A parameter is
replaced for parsing by a string literal of the same length, so sqlglot's line/column point into
the YAML value; errors are located at ``file:line:col`` of the offending character when the value
is a one-line scalar, else at the value's start.
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.yaml_loader import Located
from airflow_mbt.sources import PARAM_TEMPLATE, RUN_PARAMETERS, TABLE_KEYS

DIALECTS = {"postgres": "postgres", "local_file": "duckdb"}
DEFAULT_DIALECT = "postgres"


def dialect_of(target_section: dict[str, Any] | None) -> str:
    """The sqlglot dialect for a manifest ``target`` section (its data connector's type)."""
    kind = ((target_section or {}).get("data_connector") or {}).get("type")
    return DIALECTS.get(str(kind), DEFAULT_DIALECT)


def _placeholders(text: str) -> str:
    def same_length(m) -> str:
        return "'" + "x" * (len(m.group(0)) - 2) + "'"

    return PARAM_TEMPLATE.sub(same_length, text)


def _error(doc: Located, path: tuple, text: str, message: str, hint: str | None,
           line: int | None = None, col: int | None = None) -> MBTInputError:
    err = doc.error(path, message, hint=hint)
    if line and col and err.line and err.col and "\n" not in text.strip():
        raw = doc.text.splitlines()[err.line - 1] if doc.text and err.line <= len(doc.text.splitlines()) else ""
        quote = 1 if raw[err.col - 1:err.col] in ("'", '"') else 0
        err.relocate(file=err.file, line=err.line, col=err.col + quote + col - 1)
    return err


def _parse(doc: Located, path: tuple, text: str, dialect: str):
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        return [e for e in sqlglot.parse(_placeholders(text), read=dialect) if e is not None]
    except ParseError as exc:
        first = (exc.errors or [{}])[0]
        desc = str(first.get("description") or exc).splitlines()[0]
        raise _error(doc, path, text, f"invalid {dialect} SQL: {desc}",
                     "check the SQL syntax (it is parsed as the target's connector runs it)",
                     first.get("line"), first.get("col")) from None
    except TokenError as exc:
        raise _error(doc, path, text, f"invalid {dialect} SQL: {str(exc).splitlines()[0]}",
                     "check quotes and brackets") from None


def check_sql(doc: Located, section: str, dialect: str) -> None:
    source = ((doc.value or {}).get(section) or {}).get("data_source")
    if not isinstance(source, dict):
        return
    base = (section, "data_source")
    key = TABLE_KEYS[section]
    if source.get(key) and source.get("query"):
        raise doc.error(base + ("query",), f"{key} and query are alternatives",
                        hint=f"keep {key}: <table> or query: SELECT ..., not both")
    if not source.get(key) and not source.get("query"):
        raise doc.error(base, f"data_source needs {key} or query",
                        hint=f"e.g. {key}: customers, or query: SELECT ... FROM ...")
    for field in ("query", "where"):
        text = source.get(field)
        if isinstance(text, str):
            check_text(doc, base + (field,), text, dialect, query=field == "query")


def check_filters(doc: Located, section: str) -> None:
    """``<section>.filters``: each one boolean expression. They run in DuckDB over the loaded
    rows (``ml/row_filters``), so they are parsed as DuckDB SQL whatever the target."""
    for i, text in enumerate(((doc.value or {}).get(section) or {}).get("filters") or []):
        if isinstance(text, str):
            check_text(doc, (section, "filters", i), text, "duckdb", query=False,
                       example='e.g. "label IS NOT NULL" or "amount < 10000"')


def check_text(doc: Located, path: tuple, text: str, dialect: str, *, query: bool,
               example: str = 'e.g. where: "snapshot_date = {{ ds }}"') -> None:
    """One SELECT (``query``) or one boolean expression, run parameters only as ``{{ name }}``."""
    from sqlglot import exp

    for m in PARAM_TEMPLATE.finditer(text):
        if m.group(1) not in RUN_PARAMETERS:
            raise _error(doc, path, text, f"unknown parameter {{{{ {m.group(1)} }}}}",
                         f"run parameters: {', '.join(RUN_PARAMETERS)}", 1, m.start() + 1)
    stripped = PARAM_TEMPLATE.sub("", text)
    if "{{" in stripped or "}}" in stripped:
        raise doc.error(path, "malformed {{ ... }} in SQL", hint="write parameters as {{ ds }}")
    statements = _parse(doc, path, text, dialect)
    if len(statements) != 1:
        raise doc.error(path, f"expected one {'SELECT' if query else 'expression'}, "
                              f"got {len(statements)} statements", hint="remove the ';' and the other statements")
    [tree] = statements
    if query:
        if not isinstance(tree, exp.Query):
            raise doc.error(path, f"query must be a SELECT, not {tree.key.upper()}",
                            hint="write SELECT ... FROM ... (joins, WITH and UNION are fine)")
    elif (isinstance(tree, (exp.Query, exp.Command, exp.DDL, exp.DML, exp.Alias))
          or not isinstance(tree, exp.Condition)):
        raise doc.error(path, f"{path[-1] if isinstance(path[-1], str) else 'a filter'} must be a boolean "
                              "expression, not a statement", hint=example)
    bad = next((n for n in tree.walk() if isinstance(n, (exp.DDL, exp.DML, exp.Command, exp.Into))), None)
    if bad is not None:
        raise doc.error(path, f"{bad.key.upper()} is not allowed in a data source", hint="only read: SELECT")


def check_data_sources(doc: Located, dialect: str = DEFAULT_DIALECT) -> None:
    """Check ``training.data_source`` and ``serving.data_source`` of a rendered pipeline, and
    their ``filters``."""
    for section in ("training", "serving"):
        check_sql(doc, section, dialect)
        check_filters(doc, section)
