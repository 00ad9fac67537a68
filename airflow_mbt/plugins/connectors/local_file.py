"""``LocalFileConnector``: tables as files in a local folder (the dev target).

``read_table("customers")`` reads ``<data_path>/customers.parquet`` or, failing that,
``<data_path>/customers.csv``; a ``schema.table`` name uses only the table part. Writes go to
``<data_path>/<table>.csv`` atomically, under a file lock so concurrent writers do not lose rows.
``tables: {name: path}`` maps a table to a file of its own, e.g. ``churn_predictions:
./predictions.csv`` so the dev target publishes next to the project like the spec's workflow.

A data source with ``query`` or ``where`` runs in DuckDB over the files: every ``<data_path>/<stem>``
``.parquet``/``.csv`` (and every mapped table) is a view named after the table, so the same SQL as
on PostgreSQL selects and filters the rows; run parameters are bound as ``?`` parameters.
``write_table(..., replace_where=...)`` rewrites the file without the matching rows plus the new
rows, atomically (temp file + rename) under the lock: a partition is replaced, never duplicated.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any, Iterator

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.plugins.base import DataConnector
from airflow_mbt._fs import atomic_target, config_path, locked

SUFFIXES = (".parquet", ".csv")


class LocalFileConnector(DataConnector):
    """Config: ``data_path`` (default ``./sample_data``, relative to the project dir) where tables
    are read, ``output_path`` (default ``./output``) where tables are written (never next to the
    input tables; a written table is read back from there when ``data_path`` lacks it), and an
    optional ``tables`` mapping of table name -> file path (``.csv`` or ``.parquet``) for both."""

    type_name = "local_file"

    def __init__(self, config: dict, runtime=None):
        super().__init__(config or {}, runtime)
        self.data_path = config_path(self.config, "data_path", "./sample_data", runtime,
                                     "data_connector.config.data_path")
        self.output_path = config_path(self.config, "output_path", "./output", runtime,
                                       "data_connector.config.output_path")
        tables = self.config.get("tables") or {}
        if not isinstance(tables, dict):
            raise MBTInputError("tables must map table names to file paths", field="data_connector.config.tables",
                                hint="e.g. tables: {churn_predictions: ./predictions.csv}")
        self.table_files = {}
        for name, raw in tables.items():
            path = config_path(tables, name, "", runtime, f"data_connector.config.tables.{name}")
            if path.suffix not in SUFFIXES:
                raise MBTInputError(f"table file {raw!r} must end in .csv or .parquet",
                                    field=f"data_connector.config.tables.{name}")
            self.table_files[str(name)] = path

    def _mapped(self, table: str) -> Path | None:
        if not isinstance(table, str):
            return None
        name = table.strip()
        return self.table_files.get(name) or self.table_files.get(name.rsplit(".", 1)[-1])

    # ---- names ----------------------------------------------------------------------------
    @staticmethod
    def _stem(table: str) -> str:
        if not isinstance(table, str) or not table.strip():
            raise MBTInputError(f"invalid table name {table!r}", field="table")
        name = table.strip()
        if name.endswith(SUFFIXES):  # "customers.csv" names the file itself
            name = name.rsplit(".", 1)[0]
        name = name.rsplit(".", 1)[-1]  # schema.table -> table
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise MBTInputError(f"invalid table name {table!r}", field="table",
                                hint="the local_file connector reads <data_path>/<table>.parquet or .csv")
        return name

    def table_file(self, table: str) -> Path:
        """The CSV file ``write_table`` writes for ``table``: ``<output_path>/<table>.csv``."""
        return self._mapped(table) or self.output_path / f"{self._stem(table)}.csv"

    def _source(self, table: str) -> Path:
        mapped = self._mapped(table)
        if mapped is not None:
            if mapped.is_file():
                return mapped
            raise MBTInputError(f"table {table!r} not found: looked for {mapped}", field="table",
                                hint="data_connector.config.tables maps it to that file")
        stem = self._stem(table)
        explicit = [s for s in SUFFIXES if table.strip().endswith(s)]
        candidates = [self.data_path / f"{stem}{suffix}" for suffix in (explicit or SUFFIXES)]
        for path in candidates + [self.output_path / f"{stem}.csv"]:
            if path.is_file():
                return path
        raise MBTInputError(f"table {table!r} not found: looked for {' and '.join(str(p) for p in candidates)}",
                            field="table",
                            hint="put a CSV or Parquet file there, or set data_connector.config.data_path")

    # ---- reading --------------------------------------------------------------------------
    def read_table(self, table: str, columns: list[str] | None = None):
        import pandas as pd

        path = self._source(table)
        try:
            if path.suffix == ".parquet":
                return pd.read_parquet(path, columns=columns)
            return pd.read_csv(path, usecols=columns)
        except (ValueError, KeyError) as exc:
            if columns is not None:
                available = self._columns(path)
                missing = [c for c in columns if c not in available]
                if missing:
                    raise DataContractError(f"columns {missing} not in {path}", field="columns",
                                            hint=f"available: {', '.join(available)}") from None
            raise MBTInputError(f"cannot read {path}: {exc}", field="table") from None

    @staticmethod
    def _columns(path: Path) -> list[str]:
        import pandas as pd

        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)

    def iter_table(self, table: str, chunk_rows: int = 200_000) -> Iterator:
        path = self._source(table)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
            return
        import pandas as pd

        with pd.read_csv(path, chunksize=chunk_rows) as reader:
            yield from reader

    # ---- SQL over the files (DuckDB) -------------------------------------------------------
    def _tables(self) -> dict[str, Path]:
        """Table name -> file for every data file (Parquet preferred, as ``read_table`` does)."""
        found: dict[str, Path] = {}
        if self.data_path.is_dir():
            for suffix in reversed(SUFFIXES):
                for path in sorted(self.data_path.glob(f"*{suffix}")):
                    if path.is_file() and not path.name.startswith("."):
                        found[path.stem] = path
        for name, path in self.table_files.items():
            if path.is_file():
                found[name.rsplit(".", 1)[-1]] = path
        return found

    def _duck_result(self, source):
        import duckdb

        from airflow_mbt.sources import DERIVED_TABLE, duckdb_sql

        con = duckdb.connect(":memory:")
        for name, path in self._tables().items():
            rel = con.read_parquet(str(path)) if path.suffix == ".parquet" else con.read_csv(str(path))
            rel.create_view(name)
        params: list = []
        if source.query is not None:
            text, params = duckdb_sql(source.query)
            base = f'({text}) AS "{DERIVED_TABLE}"'
        else:
            stem = self._stem(source.table)
            self._source(source.table)  # the missing-file error, as read_table gives it
            base = '"' + stem.replace('"', '""') + '"'
        sql = f"SELECT * FROM {base}"
        if source.where is not None:
            text, more = duckdb_sql(source.where)
            sql, params = f"{sql} WHERE ({text})", params + more
        try:
            if source.partition is not None:
                sql, params = self._partition_sql(con, sql, params, source.partition)
            return con, con.sql(sql, params=params or None)
        except duckdb.Error as exc:
            con.close()
            first = str(exc).strip().splitlines()[0]
            raise MBTInputError(f"DuckDB rejected the data source: {first}", field=source.field,
                                hint=f"tables (files in {self.data_path}): {', '.join(self._tables()) or 'none'}"
                                ) from None

    @staticmethod
    def _partition_sql(con, sql: str, params: list, part) -> tuple[str, list]:
        """``sql`` restricted to one partition (``sources.partition_predicate``); ``by_range`` first
        reads the (min, max) of the column over ``sql`` in DuckDB."""
        from airflow_mbt.sources import duckdb_sql, partition_predicate, partition_value

        rel = con.sql(f"SELECT * FROM ({sql}) AS mbt_probe LIMIT 0", params=params or None)
        types = {name: str(kind) for name, kind in zip(rel.columns, rel.types)}
        value, bounds = partition_value(part, types, "duckdb"), None
        if value is not None:
            rows = con.execute(f"SELECT min({value}), max({value}) FROM ({sql}) AS mbt_bounds",
                               params or None).fetchall()
            row = rows[0] if rows else None
            bounds = (row[0], row[1]) if row else None
        text, more = duckdb_sql(partition_predicate(part, "duckdb", value, bounds))
        return f"SELECT * FROM ({sql}) AS mbt_part WHERE {text}", params + more

    def count_source(self, source) -> int:
        """The number of rows of a bound ``SourceQuery`` (counted by DuckDB over the files)."""
        con, result = self._duck_result(source)
        try:
            row = result.aggregate("count(*)").fetchall()[0]
            return int(row[0]) if row else 0
        finally:
            con.close()

    def read_source(self, source):
        if source.is_plain_table:
            return self.read_table(source.table)
        con, result = self._duck_result(source)
        try:
            return result.to_arrow_table().to_pandas()
        finally:
            con.close()

    def iter_source(self, source, chunk_rows: int = 200_000) -> Iterator:
        if source.is_plain_table:
            yield from self.iter_table(source.table, chunk_rows)
            return
        con, result = self._duck_result(source)
        try:
            reader = result.to_arrow_reader(chunk_rows)
            empty = True
            for batch in reader:
                if batch.num_rows:
                    empty = False
                    yield batch.to_pandas()
            if empty:
                yield reader.schema.empty_table().to_pandas()
        finally:
            con.close()

    # ---- writing --------------------------------------------------------------------------
    def write_table(self, df, table: str, *, replace_where: dict[str, Any] | None = None) -> int:
        """Append ``df`` to ``<data_path>/<table>.csv``; rows of the existing file matching every
        ``replace_where`` pair are dropped first. Existing values are kept as text (no re-parsing)."""
        return self.write_chunks([df], table, replace_where=replace_where)

    def write_chunks(self, frames, table: str, *, replace_where: dict[str, Any] | None = None) -> int:
        """``write_table`` for a stream of frames with the same columns (see ``replace_csv_rows``)."""
        target = self.table_file(table)
        if target.suffix != ".csv":
            raise MBTInputError(f"the local_file connector writes CSV files, not {target.name}",
                                field="data_connector.config.tables", hint="map the table to a .csv path")
        return replace_csv_rows(target, frames, replace_where)


def replace_csv_rows(target: Path, frames, replace_where: dict[str, Any] | None = None,
                     chunk_rows: int = 200_000) -> int:
    """Rewrite the CSV file ``target`` as: its rows not matching every ``replace_where`` pair
    (compared as CSV text), then the rows of ``frames``; atomically (temp file + rename) under the
    file's lock, so a rerun of a partition replaces it and a crash leaves the old file.

    When the file's header equals the frames' columns both are streamed in chunks (bounded
    memory); otherwise (a file of an older layout, new columns) the file is read whole and the
    columns are united (old rows get empty cells for the new columns)."""
    import pandas as pd

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return 0
    columns = [str(c) for c in first.columns]
    written = 0
    with locked(target):
        header = list(pd.read_csv(target, nrows=0, dtype=str).columns) if target.is_file() else None
        with atomic_target(target) as tmp:
            if header is not None and header != columns:
                existing = pd.read_csv(target, dtype=str, keep_default_na=False)
                if replace_where:
                    existing = existing[~_matches(existing, replace_where)]
                new_rows = _as_text(pd.concat([first, *frames], ignore_index=True))
                union = list(existing.columns) + [c for c in new_rows.columns if c not in existing.columns]
                combined = pd.concat([existing, new_rows], ignore_index=True).reindex(columns=union)
                combined.to_csv(tmp, index=False)
                return len(new_rows)
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(pd.DataFrame(columns=columns).to_csv(index=False))
                if header is not None:
                    with pd.read_csv(target, dtype=str, keep_default_na=False, chunksize=chunk_rows) as reader:
                        for old in reader:
                            if replace_where:
                                old = old[~_matches(old, replace_where)]
                            old.to_csv(fh, index=False, header=False)
                for df in itertools.chain([first], frames):
                    if [str(c) for c in df.columns] != columns:
                        raise DataContractError(f"chunk columns {list(df.columns)} differ from the first chunk's "
                                                f"{columns}", field="columns")
                    df.to_csv(fh, index=False, header=False)
                    written += len(df)
    return written


def _as_text(df):
    """The frame as it will appear in a CSV file, every cell a string ("" for missing)."""
    import pandas as pd

    if len(df.columns) == 0:
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(df.to_csv(index=False)), dtype=str, keep_default_na=False)


def _matches(existing, where: dict[str, Any]):
    """Boolean mask of the rows of a text frame equal to all ``where`` values (compared as CSV text)."""
    import pandas as pd

    wanted = _as_text(pd.DataFrame({k: [v] for k, v in where.items()})).iloc[0]
    mask = pd.Series(True, index=existing.index)
    for column, value in wanted.items():
        if column not in existing.columns:
            return pd.Series(False, index=existing.index)
        mask &= existing[column] == value
    return mask
