"""Data sources of a pipeline (``training.data_source`` / ``serving.data_source``) as connector input.

A data source names a table (``label_table`` / ``scoring_table``) or holds a ``query`` (one
SELECT), optionally filtered by ``where`` (a SQL boolean expression). ``query`` and ``where`` may
use the run parameters ``{{ ds }}``, ``{{ logical_date }}``, ``{{ interval_start }}`` and
``{{ interval_end }}``; the manifest keeps these templates verbatim (its hash does not change
from run to run) and ``bind`` turns them, at RUN time, into a ``SourceQuery``: SQL text segments
interleaved with ``Param`` values taken from the ``RunContext``. A connector composes the SQL
with its own placeholders/literals; a parameter value never becomes part of the SQL text that
came from YAML, and YAML text never becomes a value.

Parameter types: ``ds`` is a ``datetime.date``; the other three are UTC-aware datetimes
(``timestamptz`` in PostgreSQL, ``TIMESTAMP WITH TIME ZONE`` in DuckDB).

Stdlib only (imported by ``pipeline/`` for validation and by steps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from airflow_mbt.errors import MBTInputError
from airflow_mbt.partitions import PartitionFilter

RUN_PARAMETERS = ("ds", "logical_date", "interval_start", "interval_end")
PARAM_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
TABLE_KEYS = {"training": "label_table", "serving": "scoring_table"}
DERIVED_TABLE = "mbt_source"  # alias of a ``query`` wrapped by a ``where``


@dataclass(frozen=True)
class Param:
    """A run parameter at one place of the SQL: its name and the value bound for this run."""

    name: str
    value: Any


Segment = str | Param


@dataclass(frozen=True)
class SourceQuery:
    """A data source bound to one run: a table or a query (segments), and an optional filter.
    A connector reads ``SELECT * FROM <table or (query) AS mbt_source> [WHERE (<where>)]``."""

    table: str | None
    query: tuple[Segment, ...] | None
    where: tuple[Segment, ...] | None
    field: str
    partition: PartitionFilter | None = None  # one partition of serving.partitions (partitions.py)

    @property
    def is_plain_table(self) -> bool:
        return self.query is None and self.where is None and self.partition is None

    @property
    def label(self) -> str:
        """For log lines and messages: the table or ``query``."""
        base = self.table if self.query is None else "query"
        label = f"{base} where ..." if self.where is not None else str(base)
        if self.partition is not None:
            label += f" partition {self.partition.index + 1}/{self.partition.count}"
        return label


def split_template(text: str) -> list[str | tuple[str]]:
    """``"a = {{ ds }}"`` -> ``["a = ", ("ds",)]``: text pieces and 1-tuples naming parameters."""
    out: list[str | tuple[str]] = []
    pos = 0
    for m in PARAM_TEMPLATE.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append((m.group(1),))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def template_params(text: str) -> list[tuple[str, int]]:
    """(name, offset) of every ``{{ name }}`` in ``text``."""
    return [(m.group(1), m.start()) for m in PARAM_TEMPLATE.finditer(text)]


def _run_values(run: Any) -> dict[str, Any]:
    if run is None:
        return dict.fromkeys(RUN_PARAMETERS)
    values = dict(run.template_values())
    logical = values.get("logical_date")
    if isinstance(logical, datetime):
        values["ds"] = logical.date()
    elif isinstance(values.get("ds"), str):
        values["ds"] = date.fromisoformat(values["ds"])
    return values


def _bind(text: str, values: Mapping[str, Any], field: str) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for piece in split_template(text):
        if isinstance(piece, str):
            out.append(piece)
            continue
        name = piece[0]
        if name not in RUN_PARAMETERS:
            raise MBTInputError(f"unknown parameter {{{{ {name} }}}}", field=field,
                                hint=f"run parameters: {', '.join(RUN_PARAMETERS)}")
        value = values.get(name)
        if value is None:
            raise MBTInputError(f"{{{{ {name} }}}} has no value: this run has no logical date / data interval",
                                field=field, hint="run it from Airflow, or pass --logical-date YYYY-MM-DD to mbt run")
        out.append(Param(name, value))
    return tuple(out)


def bind(config: Mapping[str, Any], section: str, run: Any = None,
         partition: PartitionFilter | None = None) -> SourceQuery:
    """The ``<section>.data_source`` of a compiled pipeline config bound to ``run`` (a
    ``RunContext`` or None), restricted to ``partition`` when given. An input error when it names
    neither a table nor a query."""
    source = (config.get(section) or {}).get("data_source") or {}
    key = TABLE_KEYS[section]
    base = f"{section}.data_source"
    table, query, where = source.get(key), source.get("query"), source.get("where")
    if not table and not query:
        raise MBTInputError("no table or query configured", field=base,
                            hint=f"set {base}.{key}: <table name> or {base}.query: SELECT ...")
    if table and query:
        raise MBTInputError(f"{key} and query are alternatives", field=f"{base}.query",
                            hint=f"keep one of {key} and query")
    values = _run_values(run)
    return SourceQuery(
        table=table or None,
        query=_bind(query, values, f"{base}.query") if query else None,
        where=_bind(where, values, f"{base}.where") if where else None,
        field=f"{base}.query" if query else f"{base}.{key}", partition=partition)


def bind_expression(text: str, run: Any, field: str) -> tuple[Segment, ...]:
    """A SQL expression of the pipeline (e.g. a row filter) with run parameters bound to ``run``."""
    return _bind(text, _run_values(run), field)


def duckdb_sql(segments: tuple[Segment, ...]) -> tuple[str, list[Any]]:
    """Segments as DuckDB SQL with ``?`` placeholders and the parameter list."""
    text, params = [], []
    for seg in segments:
        if isinstance(seg, Param):
            text.append("?")
            params.append(seg.value)
        else:
            text.append(seg)
    return "".join(text), params


# ---- partitions (serving.partitions): the filter of one partition as SQL segments ---------------
NUMERIC_TYPES = {"postgres": {"int2", "int4", "int8", "float4", "float8", "numeric", "oid"},
                 "duckdb": {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL"}}
TEMPORAL_TYPES = {"postgres": {"date", "timestamp", "timestamptz"},
                  "duckdb": {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS",
                             "TIMESTAMP_NS"}}


def quote_ident(name: str) -> str:
    """A column name as a double-quoted SQL identifier (PostgreSQL and DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


def range_value_sql(part: PartitionFilter, column_type: str, dialect: str) -> str:
    """The numeric value ``by_range`` splits on: the column as a double, a date or timestamp as
    its epoch seconds. An input error naming ``serving.partitions.by_range`` for another type."""
    base = column_type.upper().split("(")[0] if dialect == "duckdb" else column_type
    col = quote_ident(part.column)
    if base in TEMPORAL_TYPES[dialect]:
        return f"CAST(EXTRACT(EPOCH FROM {col}) AS DOUBLE PRECISION)"
    if base in NUMERIC_TYPES[dialect] or base.startswith("DECIMAL"):
        return f"CAST({col} AS DOUBLE PRECISION)"
    raise MBTInputError(f"by_range column {part.column!r} has type {column_type}, not a number, date or timestamp",
                        field="serving.partitions.by_range",
                        hint="use a numeric or time column, or by: <key column> to split on a hash")


def partition_value(part: PartitionFilter, types: Mapping[str, str], dialect: str) -> str | None:
    """Check that the partition column is a column of the source (``types``: column -> type) and
    return the ``by_range`` value SQL (``range_value_sql``), or ``None`` for a hash partition."""
    if part.column not in types:
        raise MBTInputError(f"partition column {part.column!r} is not a column of the data source",
                            field="serving.partitions", hint=f"columns: {', '.join(types)}")
    return range_value_sql(part, types[part.column], dialect) if part.method == "range" else None


def partition_predicate(part: PartitionFilter, dialect: str, value_sql: str | None = None,
                        bounds: tuple[Any, Any] | None = None) -> tuple[Segment, ...]:
    """``<partition of the row> = index`` as segments (values as ``Param``); NULL keys fall in
    partition 0. ``hash``: the engine's hash of the key as text (``hashtextextended`` in
    PostgreSQL, ``hash`` in DuckDB: stable across runs, not across engines). ``range``: equal-width
    bucket of ``value_sql`` (``range_value_sql``) over ``bounds`` = (min, max) of the source."""
    n, i = Param("partition_count", part.count), Param("partition_index", part.index)
    col = quote_ident(part.column)
    bucket: tuple[Segment, ...]
    if part.method != "range":
        if dialect == "postgres":
            bucket = ("mod(mod(hashtextextended(CAST(", col, " AS text), 0), ", n, ") + ", n, ", ", n, ")")
        else:
            bucket = ("hash(CAST(", col, " AS VARCHAR)) % CAST(", n, " AS UBIGINT)")
    else:
        lo, hi = bounds or (None, None)
        lo_p, hi_p = Param("partition_min", lo), Param("partition_max", hi)
        bucket = ("LEAST(CAST(", n, " AS INTEGER) - 1, CAST(FLOOR((", value_sql or col, " - CAST(", lo_p,
                  " AS DOUBLE PRECISION)) * ", n, " / NULLIF(CAST(", hi_p, " AS DOUBLE PRECISION) - CAST(", lo_p,
                  " AS DOUBLE PRECISION), 0)) AS INTEGER))")
    return ("(CASE WHEN ", col, " IS NULL THEN 0 ELSE COALESCE(", *bucket, ", 0) END) = ", i)
