"""Streamed tables (artifact kind ``table_stream``): one Parquet file written and read chunk by chunk,
so a step's memory is bounded by a chunk, not by the table.

- Writing: ``TableWriter`` (handed out by ``StepContext.table_writer(name)``) appends each pandas
  frame as a row group through ``pyarrow.parquet.ParquetWriter``. The sha256 and the size are
  computed from the bytes as they are written, so storing the artifact never reads it back.
- Reading: ``StreamedTable`` (what a step receives for a ``table_stream`` input) gives ``num_rows``,
  ``columns``, ``iter_frames(chunk_rows)`` and ``to_pandas()`` (whole table, for small data).
  Chunks have the dtypes the whole-table read would give (an integer column with a null anywhere
  is float64 in every chunk), so chunked and whole-frame processing give the same values.
- ``frames(value, chunk_rows)`` iterates a DataFrame or a ``StreamedTable`` alike (a manifest
  compiled before ``table_stream`` still hands the serving steps DataFrames).
- ``default_chunk_rows()``: the chunk size, env ``MBT_CHUNK_ROWS`` (default 250,000).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Iterator

from airflow_mbt.errors import MBTError, MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CHUNK_ROWS_ENV = "MBT_CHUNK_ROWS"
DEFAULT_CHUNK_ROWS = 250_000


class StreamError(MBTError):
    """A frame cannot be appended to a streamed table (e.g. its columns differ from the first)."""

    retryable = False


def default_chunk_rows() -> int:
    """Rows per chunk for streamed steps: ``MBT_CHUNK_ROWS`` or 250,000."""
    raw = os.environ.get(CHUNK_ROWS_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_ROWS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise MBTInputError(f"{CHUNK_ROWS_ENV}={raw!r} is not a positive integer", field=CHUNK_ROWS_ENV,
                            hint=f"unset it for the default {DEFAULT_CHUNK_ROWS} or use e.g. 100000")
    return value


def pandas_of(table: Any) -> pd.DataFrame:
    """A pyarrow Table as pandas without de-duplicating strings (a memo as large as a column of
    unique ids), releasing Arrow buffers column by column as they are converted, and returning the
    memory pool's freed pages to the system afterwards."""
    import pyarrow as pa

    df: pd.DataFrame = table.to_pandas(deduplicate_objects=False, self_destruct=True, split_blocks=True)
    # the pool keeps the freed read and conversion buffers (about 80 MiB per 1M churn rows) otherwise
    pa.default_memory_pool().release_unused()
    return df


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts the bytes it passes to the real file."""

    def __init__(self, fh: BinaryIO) -> None:
        super().__init__()
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self.size


class TableWriter:
    """Appends pandas frames to one Parquet file, one row group per frame (use as a context
    manager, or call ``close()``). All frames must have the first frame's columns; values are
    converted to the first frame's Arrow types."""

    def __init__(self, path: Path, name: str = "table"):
        self.path = Path(path)
        self.name = name
        self.num_rows = 0
        self.sha256: str | None = None
        self.size: int | None = None
        self._schema: Any = None
        self._writer: Any = None
        self._fh: BinaryIO | None = None
        self._hashing: _HashingFile | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def closed(self) -> bool:
        return self.sha256 is not None

    def write(self, df: "pd.DataFrame") -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.closed:
            raise StreamError(f"table {self.name!r} is already closed")
        if not isinstance(df, pd.DataFrame):
            raise StreamError(f"table {self.name!r}: chunks must be pandas DataFrames, got {type(df).__name__}")
        try:
            if self._schema is None:
                table = pa.Table.from_pandas(df, preserve_index=False)
            else:
                if list(df.columns) != self._schema.names:
                    raise StreamError(f"table {self.name!r}: chunk columns {list(df.columns)} differ from "
                                      f"the first chunk's {self._schema.names}")
                table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        except StreamError:
            raise
        except Exception as exc:  # pyarrow conversion errors: mixed objects, a type change between chunks
            raise StreamError(f"table {self.name!r}: a chunk cannot be written as Parquet: {exc}") from exc
        if self._writer is None:
            self._schema = table.schema
            self._fh = open(self.path, "wb")
            self._hashing = _HashingFile(self._fh)
            self._writer = pq.ParquetWriter(self._hashing, self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.num_rows += table.num_rows

    def write_all(self, frames: Iterable["pd.DataFrame"]) -> "TableWriter":
        """Write every frame of ``frames`` and close."""
        with self:
            for df in frames:
                self.write(df)
        return self

    def close(self) -> None:
        """Finish the file (an empty table when nothing was written) and record sha256 and size."""
        if self.closed:
            return
        if self._writer is None:
            import pandas as pd

            self.write(pd.DataFrame())
        assert self._fh is not None and self._hashing is not None  # set with the writer
        self._writer.close()
        self._fh.close()
        self.sha256, self.size = self._hashing.sha.hexdigest(), self._hashing.size

    def abort(self) -> None:
        """Drop a partly written file."""
        if self._writer is not None and not self.closed:
            try:
                self._writer.close()
            finally:
                if self._fh is not None:
                    self._fh.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def table(self) -> "StreamedTable":
        """The written table, for reading back (closes the writer)."""
        self.close()
        return StreamedTable(self.path)


class StreamedTable:
    """Read side of a streamed table: a Parquet file read chunk by chunk."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self._file = pq.ParquetFile(self.path)
        self._widen = self._null_widened_columns()

    @property
    def num_rows(self) -> int:
        rows: int = self._file.metadata.num_rows
        return rows

    def __len__(self) -> int:
        return self.num_rows

    @property
    def columns(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def _null_widened_columns(self) -> dict[str, str]:
        """Columns whose pandas dtype depends on nulls (integers become float64, booleans object
        when any value is null): the dtype of the whole-table read, for columns with a null."""
        import pyarrow as pa

        meta, schema = self._file.metadata, self._file.schema_arrow
        out = {}
        for j, field in enumerate(schema):
            if pa.types.is_integer(field.type):
                target = "float64"
            elif pa.types.is_boolean(field.type):
                target = "object"
            else:
                continue
            has_null = False
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(j).statistics
                if stats is None or not stats.has_null_count:  # no statistics: count this column
                    has_null = self._file.read(columns=[field.name]).column(0).null_count > 0
                    break
                if stats.null_count:
                    has_null = True
                    break
            if has_null:
                out[field.name] = target
        return out

    def iter_frames(self, chunk_rows: int | None = None, columns: list[str] | None = None) -> Iterator["pd.DataFrame"]:
        """Frames of ``chunk_rows`` rows (the last may be shorter) with a fresh 0-based index each;
        at least one frame (empty for an empty table). ``columns``: read only these (in file order)."""
        import pyarrow as pa

        rows = chunk_rows or default_chunk_rows()
        produced = False
        picked = None if columns is None else [c for c in self.columns if c in set(columns)]
        for batch in self._file.iter_batches(batch_size=rows, columns=picked, use_pandas_metadata=picked is None):
            produced = True
            yield self._frame(pa.Table.from_batches([batch]))
        if not produced:
            empty = self._file.schema_arrow.empty_table()
            yield self._frame(empty if picked is None else empty.select(picked))

    def _frame(self, table: Any) -> pd.DataFrame:
        df = pandas_of(table)
        for col, dtype in self._widen.items():
            if col in df.columns and df[col].dtype != dtype:
                df[col] = df[col].astype(dtype)
        return df

    def to_pandas(self) -> "pd.DataFrame":
        """The whole table as one DataFrame (small tables and tests)."""
        import pyarrow.parquet as pq

        return pandas_of(pq.read_table(self.path))

    def __repr__(self) -> str:
        return f"StreamedTable({self.path.name}, rows={self.num_rows}, columns={self.columns})"


def frames(value: Any, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of a ``StreamedTable`` or of a DataFrame (sliced, 0-based index per chunk)."""
    rows = rows or default_chunk_rows()
    if isinstance(value, StreamedTable):
        yield from value.iter_frames(rows)
        return
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise StreamError(f"expected a DataFrame or a streamed table, got {type(value).__name__}")
    if len(value) == 0:
        yield value.reset_index(drop=True)
        return
    for start in range(0, len(value), rows):
        yield value.iloc[start:start + rows].reset_index(drop=True)
