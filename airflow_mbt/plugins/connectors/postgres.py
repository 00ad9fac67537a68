"""``PostgresConnector``: tables in PostgreSQL through psycopg 3 ``COPY`` (the prod target).

Config: ``conn_id`` (Airflow postgres connection) and/or ``host``, ``port``, ``database``,
``user``, ``password``; ``schema`` (default ``public``) for unqualified table names.
Reads stream ``COPY (SELECT ...) TO STDOUT`` through the pyarrow CSV reader with dtypes from the
catalog; writes run ``DELETE ... WHERE`` (``replace_where``) and ``COPY ... FROM STDIN`` in one
transaction, so a publish is idempotent per run and a killed writer leaves nothing behind.
Every identifier is quoted (``psycopg.sql.Identifier``).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Iterable, Iterator

from airflow_mbt.errors import DataContractError, InfraError, MBTInputError
from airflow_mbt.plugins.base import DataConnector
from airflow_mbt.plugins.connectors._pg_connect import (connect, resolve_params, scrub,
                                                        split_table)

log = logging.getLogger("airflow_mbt")


def _abortable_writer(cursor: Any) -> Any:
    """psycopg's ``QueuedLibpqWriter`` that, when the COPY ends with an exception (a failing chunk,
    ``StepTerminated`` on SIGTERM), drops the buffers still queued instead of sending them first
    (up to 1024 x 128 KiB), so the abort and the rollback happen within a second."""
    import queue

    from psycopg.copy import QueuedLibpqWriter

    class _Writer(QueuedLibpqWriter):
        def finish(self, exc: BaseException | None = None) -> None:
            pending = getattr(self, "_queue", None)
            while exc is not None and pending is not None:
                try:
                    pending.get_nowait()
                except queue.Empty:
                    break
            super().finish(exc)

    return _Writer(cursor)

SEGMENT_BYTES = 32 * 1024 * 1024

CATALOG_SQL = """
SELECT a.attname, t.typname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
TABLES_SQL = """
SELECT c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1 LIMIT 30
"""


class PostgresConnector(DataConnector):
    type_name = "postgres"

    def __init__(self, config: dict, runtime=None):
        super().__init__(config or {}, runtime)
        self.default_schema = self.config.get("schema") or "public"
        self._params = None
        self._conn = None

    # ---- connection -----------------------------------------------------------------------
    @property
    def params(self):
        if self._params is None:
            self._params = resolve_params(self.config, self.runtime)
        return self._params

    @property
    def conn(self):
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.params)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _db_error(self, exc: Exception, doing: str) -> Exception:
        """A psycopg error during ``doing`` as an MBT error (no secret in the text)."""
        import psycopg

        text = scrub(str(exc).strip(), self.params.password)
        if isinstance(exc, psycopg.OperationalError) or isinstance(exc, psycopg.InterfaceError):
            self.close()
            return InfraError("PostgreSQL", f"{doing} at {self.params.where} failed: {text}")
        if isinstance(exc, (psycopg.errors.DataError, psycopg.errors.IntegrityError)):
            return DataContractError(f"{doing}: {text}", field="table",
                                     hint="the frame does not fit the table's column types/constraints")
        return InfraError("PostgreSQL", f"{doing} at {self.params.where} failed: {text}")

    # ---- catalog --------------------------------------------------------------------------
    def _resolve(self, table: str) -> tuple[str, str, list[tuple[str, str]]]:
        """(schema, table, [(column, typname)]) of an existing table; unquoted-style lowercase
        fallback like SQL identifier folding. Empty column list when the table does not exist."""
        schema, name = split_table(table, self.default_schema)
        candidates = [(schema, name)]
        if (schema.lower(), name.lower()) != (schema, name):
            candidates.append((schema.lower(), name.lower()))
        for sch, tab in candidates:
            cols = self._query(CATALOG_SQL, (sch, tab), f"looking up table {sch}.{tab}")
            if cols:
                return sch, tab, [(c, t) for c, t in cols]
        return schema, name, []

    def _query(self, query, args, doing: str) -> list:
        import psycopg

        try:
            return self.conn.execute(query, args).fetchall()
        except psycopg.Error as exc:
            raise self._db_error(exc, doing) from None

    def _missing_table(self, schema: str, name: str, table: str) -> MBTInputError:
        present = [r[0] for r in self._query(TABLES_SQL, (schema,), f"listing tables of {schema}")]
        return MBTInputError(
            f"table {schema}.{name} does not exist in PostgreSQL database {self.params.dbname!r}",
            field="table", hint=(f"tables in schema {schema!r}: {', '.join(present)}" if present
                                 else f"schema {schema!r} has no tables; check data_connector.config.schema"))

    @staticmethod
    def _ident(schema: str, name: str):
        from psycopg import sql

        return sql.Identifier(schema, name)

    # ---- reading --------------------------------------------------------------------------
    def _select_columns(self, table: str, columns: list[str] | None):
        schema, name, catalog = self._resolve(table)
        if not catalog:
            raise self._missing_table(schema, name, table)
        if columns is not None:
            known = dict(catalog)
            missing = [c for c in columns if c not in known]
            if missing:
                raise DataContractError(f"columns {missing} not in table {schema}.{name}", field="columns",
                                        hint=f"available: {', '.join(known)}")
            catalog = [(c, known[c]) for c in columns]
        return schema, name, catalog

    def _copy_out(self, schema: str, name: str, catalog, segment_bytes: int = SEGMENT_BYTES,
                  conn=None, select=None, what: str | None = None) -> Iterator:
        """Arrow tables parsed from a streamed COPY of the selected columns (at least one), on
        ``conn`` (default: the connector's connection). ``select`` (a composed SELECT whose
        result has exactly ``catalog``'s columns) replaces the plain column list of the table."""
        conn = conn or self.conn
        from psycopg import sql

        from airflow_mbt.plugins.connectors._pg_copy import CopyFailed, copy_out_segments
        from airflow_mbt.plugins.connectors._pg_csv import SegmentParser, empty_table

        what = what or f"{schema}.{name}"
        parser = SegmentParser(catalog)
        if select is None:
            select = sql.SQL("SELECT {cols} FROM {tab}").format(
                cols=sql.SQL(", ").join(sql.Identifier(c) for c, _t in catalog), tab=self._ident(schema, name))
        query = sql.SQL("COPY ({select}) TO STDOUT (FORMAT csv)").format(select=select)
        produced = False
        try:
            for segment in copy_out_segments(conn, query.as_bytes(conn), segment_bytes):
                produced = True
                yield parser.parse(segment)
        except CopyFailed as exc:
            if exc.cause is not None:
                raise self._db_error(exc.cause, f"reading {what}") from None
            reason = self._conn_error_text()
            self.close()
            raise InfraError("PostgreSQL", f"reading {what} at {self.params.where} failed: "
                                           f"{reason}") from None
        if not produced:
            yield empty_table(catalog)

    def _conn_error_text(self) -> str:
        conn = self._conn
        text = conn.pgconn.error_message.decode(errors="replace").strip() if conn is not None else ""
        return scrub(text or "connection lost", self.params.password)

    def read_table(self, table: str, columns: list[str] | None = None):
        from airflow_mbt.plugins.connectors._pg_csv import to_pandas

        schema, name, catalog = self._select_columns(table, columns)
        df = to_pandas(list(self._copy_out(schema, name, catalog)), catalog)
        log.info("read %d rows from PostgreSQL %s.%s", len(df), schema, name)
        return df

    def iter_table(self, table: str, chunk_rows: int = 200_000) -> Iterator:
        """Chunks of exactly ``chunk_rows`` rows (the last may be shorter); memory bounded by
        a COPY segment plus one chunk. Streams on its own connection, so the consumer may write
        through this connector (``write_chunks``) while the read is still open."""
        if chunk_rows < 1:
            raise MBTInputError(f"chunk_rows must be >= 1, got {chunk_rows}", field="chunk_rows")
        schema, name, catalog = self._select_columns(table, None)
        # segments of ~ 64 bytes/row * chunk_rows keep the buffered text near one chunk
        segment = max(1 << 20, min(SEGMENT_BYTES, chunk_rows * 64))
        own = connect(self.params)
        try:
            yield from self._chunked(self._copy_out(schema, name, catalog, segment, own), catalog, chunk_rows)
        finally:
            own.close()

    # ---- data sources with where / query (run parameters bound as literals) -------------
    def _source_select(self, source):
        """(composed SELECT, catalog, label) of a bound ``SourceQuery``.

        COPY takes no bind parameters, so the run parameter VALUES (dates from the RunContext,
        never YAML text) are composed client-side as ``sql.Literal`` (typed: ``'...'::date``,
        ``'...'::timestamptz``); the YAML text is the ``sql.SQL`` around them, and the filter runs
        in the database. The result's column types come from a ``LIMIT 0`` of the same SELECT.
        """
        import psycopg
        from psycopg import sql

        from airflow_mbt.sources import DERIVED_TABLE, Param

        def compose(segments) -> sql.Composed:
            return sql.Composed([sql.Literal(s.value) if isinstance(s, Param) else sql.SQL(s) for s in segments])

        if source.query is not None:
            base = sql.SQL("({query}) AS {alias}").format(query=compose(source.query),
                                                          alias=sql.Identifier(DERIVED_TABLE))
            label = "query"
        else:
            schema, name, catalog = self._resolve(source.table)
            if not catalog:
                raise self._missing_table(schema, name, source.table)
            base, label = self._ident(schema, name), f"{schema}.{name}"
        self._search_path(self.conn)
        select = sql.SQL("SELECT * FROM {base}").format(base=base)
        if source.where is not None:
            select = sql.SQL("{select} WHERE ({where})").format(select=select, where=compose(source.where))
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT * FROM ({select}) AS {alias} LIMIT 0").format(
                    select=select, alias=sql.Identifier("mbt_probe")))
                described = [(d.name, d.type_code) for d in cur.description or []]
                oids = sorted({oid for _n, oid in described})
                names = dict(cur.execute("SELECT oid::int8, typname FROM pg_catalog.pg_type WHERE oid = ANY(%s)",
                                         (oids,)).fetchall())
        except psycopg.Error as exc:
            import psycopg.errors as pge

            if isinstance(exc, (pge.SyntaxError, pge.UndefinedColumn, pge.UndefinedTable, pge.UndefinedFunction,
                                pge.DatatypeMismatch, pge.AmbiguousColumn, pge.InvalidTextRepresentation)):
                text = scrub(str(exc).strip(), self.params.password).splitlines()[0]
                raise MBTInputError(f"PostgreSQL rejected the data source: {text}", field=source.field,
                                    hint="check the query / where against the tables (mbt validate checks syntax only)"
                                    ) from None
            raise self._db_error(exc, f"describing {label}") from None
        catalog = [(n, names.get(oid, "text")) for n, oid in described]
        dupes = sorted({n for n, _t in catalog if [c for c, _ in catalog].count(n) > 1})
        if dupes:
            raise MBTInputError(f"the query returns columns {dupes} more than once", field=source.field,
                                hint="alias or drop the duplicated columns (e.g. USING (customer_id) in a join)")
        if source.partition is not None:
            select = self._partition_select(select, catalog, source.partition, compose)
            label += f" (partition {source.partition.index + 1}/{source.partition.count})"
        return select, catalog, label

    def _partition_select(self, select, catalog, part, compose):
        """``select`` restricted to one partition (``sources.partition_predicate``); ``by_range``
        first reads the (min, max) of the column over ``select`` in the database."""
        from psycopg import sql

        from airflow_mbt.sources import partition_predicate, partition_value

        types = dict(catalog)
        value, bounds = partition_value(part, types, "postgres"), None
        if value is not None:
            try:
                with self.conn.cursor() as cur:
                    row = cur.execute(sql.SQL("SELECT min({v}), max({v}) FROM ({select}) AS {alias}").format(
                        v=sql.SQL(value), select=select, alias=sql.Identifier("mbt_bounds"))).fetchone()
            except Exception as exc:  # noqa: BLE001 - classified as an infrastructure error
                raise self._db_error(exc, "reading the partition bounds") from None
            bounds = (row[0], row[1]) if row else None
        predicate = compose(partition_predicate(part, "postgres", value, bounds))
        return sql.SQL("SELECT * FROM ({select}) AS {alias} WHERE {predicate}").format(
            select=select, alias=sql.Identifier("mbt_part"), predicate=predicate)

    def count_source(self, source) -> int:
        """The number of rows of a bound ``SourceQuery`` (``SELECT count(*)`` in the database)."""
        from psycopg import sql

        select, _catalog, label = self._source_select(source)
        try:
            with self.conn.cursor() as cur:
                row = cur.execute(sql.SQL("SELECT count(*) FROM ({select}) AS {alias}").format(
                    select=select, alias=sql.Identifier("mbt_count"))).fetchone()
        except Exception as exc:  # noqa: BLE001 - classified as an infrastructure error
            raise self._db_error(exc, f"counting {label}") from None
        return int(row[0]) if row else 0

    def _search_path(self, conn) -> None:
        """Unqualified names in a ``query``/``where`` resolve in the connector's ``schema`` first
        (then ``public``), like the table names of ``read_table``."""
        value = ", ".join('"' + s.replace('"', '""') + '"' for s in dict.fromkeys([self.default_schema, "public"]))
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (value,))

    def read_source(self, source):
        """The rows of a bound ``SourceQuery`` as one DataFrame (filter evaluated in PostgreSQL)."""
        from airflow_mbt.plugins.connectors._pg_csv import to_pandas

        if source.is_plain_table:
            return self.read_table(source.table)
        select, catalog, label = self._source_select(source)
        df = to_pandas(list(self._copy_out("", "", catalog, select=select, what=label)), catalog)
        log.info("read %d rows from PostgreSQL %s", len(df), source.label)
        return df

    def iter_source(self, source, chunk_rows: int = 200_000) -> Iterator:
        """``iter_table`` for a bound ``SourceQuery``: chunks of ``chunk_rows`` rows of the
        filtered COPY, streamed on a connection of its own."""
        if source.is_plain_table:
            yield from self.iter_table(source.table, chunk_rows)
            return
        if chunk_rows < 1:
            raise MBTInputError(f"chunk_rows must be >= 1, got {chunk_rows}", field="chunk_rows")
        select, catalog, label = self._source_select(source)
        segment = max(1 << 20, min(SEGMENT_BYTES, chunk_rows * 64))
        own = connect(self.params)
        try:
            self._search_path(own)
            yield from self._chunked(self._copy_out("", "", catalog, segment, own, select=select, what=label),
                                     catalog, chunk_rows)
        finally:
            own.close()

    @staticmethod
    def _chunked(parts: Iterator, catalog, chunk_rows: int) -> Iterator:
        import pyarrow as pa

        from airflow_mbt.plugins.connectors._pg_csv import empty_table, to_pandas

        pending: list = []
        held = 0
        emitted = False
        for part in parts:
            pending.append(part)
            held += part.num_rows
            while held >= chunk_rows:
                merged = pa.concat_tables(pending)
                pending.clear()
                rest = merged.slice(chunk_rows)
                chunk = [merged.slice(0, chunk_rows)]
                del merged
                yield to_pandas(chunk, catalog)
                emitted = True
                pending, held = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
                del rest
        if held or not emitted:
            yield to_pandas(pending or [empty_table(catalog)], catalog)

    # ---- writing --------------------------------------------------------------------------
    def write_table(self, df, table: str, *, replace_where: dict[str, Any] | None = None) -> int:
        return self.write_chunks([df], table, replace_where=replace_where)

    def write_chunks(self, frames: Iterable, table: str, *, replace_where: dict[str, Any] | None = None) -> int:
        """Like ``write_table`` for a stream of frames with the same columns (bounded memory for
        large outputs): one transaction - the ``replace_where`` DELETE, then one COPY fed frame by
        frame. Any failure (or the process dying) commits nothing. Returns rows written."""
        import psycopg
        from psycopg import sql
        from airflow_mbt.plugins.connectors._pg_csv import encode_chunks

        frames = iter(frames)
        first = next(frames, None)
        schema, name, catalog = self._resolve(table)
        if not catalog:
            if first is None:
                return 0
            self._create_table(first, schema, name)
            schema, name, catalog = self._resolve(f'"{schema}"."{name}"')
        types = dict(catalog)
        columns = list(first.columns) if first is not None else []
        extra = [c for c in columns if c not in types]
        if extra:
            raise DataContractError(f"columns {extra} are not in table {schema}.{name}", field="columns",
                                    hint=f"table columns: {', '.join(types)}")
        where = dict(replace_where or {})
        bad = [c for c in where if c not in types]
        if bad:
            raise DataContractError(f"replace_where columns {bad} are not in table {schema}.{name}",
                                    field="replace_where")
        ident = self._ident(schema, name)
        copy_sql = sql.SQL("COPY {tab} ({cols}) FROM STDIN (FORMAT csv)").format(
            tab=ident, cols=sql.SQL(", ").join(sql.Identifier(str(c)) for c in columns))
        written = 0
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                if where:
                    cur.execute(sql.SQL("DELETE FROM {tab} WHERE {cond}").format(
                        tab=ident, cond=sql.SQL(" AND ").join(
                            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in where)),
                        list(where.values()))
                    if cur.rowcount:
                        log.info("replaced %d rows of %s.%s where %s", cur.rowcount, schema, name,
                                 ", ".join(f"{k}={v}" for k, v in where.items()))
                if columns:
                    # the queued writer sends on a worker thread while the next chunk is encoded
                    with cur.copy(copy_sql, writer=_abortable_writer(cur)) as copy:
                        for df in itertools.chain([first], frames):
                            if list(df.columns) != columns:
                                raise DataContractError(
                                    f"chunk columns {list(df.columns)} differ from the first chunk's {columns}",
                                    field="columns")
                            for chunk in encode_chunks(df, types, f"{schema}.{name}"):
                                copy.write(chunk)
                            written += len(df)
        except psycopg.Error as exc:
            raise self._db_error(exc, f"writing {schema}.{name}") from None
        log.info("wrote %d rows to PostgreSQL %s.%s", written, schema, name)
        return written

    def ensure_columns(self, table: str, columns: dict[str, str]) -> list[str]:
        """Migrate an existing ``table``: ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` for each
        ``{column: sql type}`` it lacks (types from a fixed list in code, never from YAML).
        Returns the columns added; a missing table is left to ``write_chunks`` (created there)."""
        import psycopg
        from psycopg import sql

        schema, name, catalog = self._resolve(table)
        present = {c for c, _t in catalog}
        missing = [c for c in columns if c not in present] if catalog else []
        for column in missing:
            try:
                self.conn.execute(sql.SQL("ALTER TABLE {tab} ADD COLUMN IF NOT EXISTS {col} {typ}").format(
                    tab=self._ident(schema, name), col=sql.Identifier(column), typ=sql.SQL(columns[column])))
            except psycopg.Error as exc:
                raise self._db_error(exc, f"adding column {column} to {schema}.{name}") from None
            log.warning("table %s.%s had no column %s: added it (%s)", schema, name, column, columns[column])
        return missing

    def _create_table(self, df, schema: str, name: str) -> None:
        from psycopg import sql

        from airflow_mbt.plugins.connectors._pg_csv import sql_type_for

        if not len(df.columns):
            raise DataContractError(f"cannot create table {schema}.{name} from a frame without columns",
                                    field="table")
        cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(str(c)), sql.SQL(sql_type_for(t)))
                                  for c, t in df.dtypes.items())
        stmt = sql.SQL("CREATE TABLE IF NOT EXISTS {tab} ({cols})").format(tab=self._ident(schema, name),
                                                                           cols=cols)
        import psycopg

        try:
            self.conn.execute(stmt)
        except psycopg.Error as exc:
            raise self._db_error(exc, f"creating table {schema}.{name}") from None
        log.warning("table %s.%s did not exist: created it from the frame's dtypes (%s)", schema, name,
                    ", ".join(f"{c} {sql_type_for(t)}" for c, t in df.dtypes.items()))
