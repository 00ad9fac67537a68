"""Abstract plugin interfaces. Concrete plugins live in connectors/, storage/ and frameworks/.

Every plugin is constructed as ``PluginClass(config: dict, runtime: TargetRuntime)`` where
``config`` is the target's resolved ``config:`` mapping (secrets already resolved, never logged)
and ``runtime`` gives access to connections and the project directory.
No heavy import (pandas, boto3, h2o, ...) at module level.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import pandas as pd

    from airflow_mbt.runtime.context import StepContext, TargetRuntime
    from airflow_mbt.sources import SourceQuery



def _no_sql(connector: "DataConnector", source: "SourceQuery") -> Exception:
    from airflow_mbt.errors import MBTInputError

    return MBTInputError(f"the {connector.type_name or type(connector).__name__} connector cannot run a query or "
                         "where filter", field=source.field, hint="use a table name, or the postgres / local_file "
                                                                  "connector")


class DataConnector(ABC):
    """Reads and writes tables for ``load_data``, ``load_scoring_data`` and ``publish``."""

    type_name: str = ""

    def __init__(self, config: dict, runtime: "TargetRuntime"):
        self.config = config
        self.runtime = runtime

    @abstractmethod
    def read_table(self, table: str, columns: list[str] | None = None) -> "pd.DataFrame":
        """Read a whole table (name may be ``schema.table``)."""

    def iter_table(self, table: str, chunk_rows: int = 200_000) -> Iterator["pd.DataFrame"]:
        """Read a table in chunks of at most ``chunk_rows`` rows (bounded memory)."""
        yield self.read_table(table)

    def read_source(self, source: "SourceQuery") -> "pd.DataFrame":
        """Read a bound data source (``airflow_mbt.sources.SourceQuery``): a table, or a
        ``query``, filtered by ``where``; run parameters arrive as values, never as SQL text.
        The base class handles plain tables only."""
        if not source.is_plain_table:
            raise _no_sql(self, source)
        return self.read_table(source.table)  # type: ignore[arg-type]

    def iter_source(self, source: "SourceQuery", chunk_rows: int = 200_000) -> Iterator["pd.DataFrame"]:
        """``read_source`` in chunks of at most ``chunk_rows`` rows (bounded memory)."""
        if not source.is_plain_table:
            raise _no_sql(self, source)
        yield from self.iter_table(source.table, chunk_rows)  # type: ignore[arg-type]

    @abstractmethod
    def write_table(self, df: "pd.DataFrame", table: str, *, replace_where: dict[str, Any] | None = None) -> int:
        """Append ``df`` to ``table`` atomically; when ``replace_where`` is given, first delete the
        rows matching all its ``column = value`` pairs in the same transaction. Returns rows written."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections."""


class Storage(ABC):
    """Artifact storage addressed by keys like ``<run_id>/<step>/<artifact>``."""

    type_name: str = ""

    def __init__(self, config: dict, runtime: "TargetRuntime"):
        self.config = config
        self.runtime = runtime

    @abstractmethod
    def uri(self, key: str) -> str:
        """Public URI of a key, e.g. ``s3://bucket/key`` or ``/abs/path/key``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write bytes; returns the URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read bytes; raises ``FileNotFoundError`` when missing."""

    def put_file(self, key: str, path: "Path") -> str:
        """Upload a local file (multipart for large files where the backend supports it)."""
        return self.put(key, path.read_bytes())

    def get_file(self, key: str, path: "Path") -> None:
        """Download to a local file (atomically: a failed download leaves ``path`` as it was)."""
        from airflow_mbt._fs import atomic_write_bytes

        atomic_write_bytes(path, self.get(key))

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (recursive), sorted."""

    def list_versions(self, prefix: str) -> dict[str, str | None]:
        """Keys under ``prefix`` -> the version ``read_versioned`` would report, or ``None`` where a
        listing cannot tell it cheaply (a reader then compares by reading). One LIST on S3."""
        return dict.fromkeys(self.list(prefix))

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """Return ``(data, version)``; ``(None, None)`` when the key does not exist."""

    @abstractmethod
    def write_conditional(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Compare-and-swap write. ``expected_version=None`` means "only if absent".
        Returns the new version; raises ``RegistryConflictError`` when the precondition fails."""


class Framework(ABC):
    """A model framework (``model_training.framework``)."""

    name: str = ""

    def __init__(self, runtime: "TargetRuntime"):
        self.runtime = runtime

    @abstractmethod
    def train(self, X: "pd.DataFrame", y: "pd.Series", problem_type: str, config: dict,
              ctx: "StepContext") -> Any:
        """Fit and return a model object."""

    @abstractmethod
    def save(self, model: Any, directory: "Path") -> None:
        """Persist in the framework's portable format (MOJO for H2O) into an empty directory."""

    @abstractmethod
    def load(self, directory: "Path") -> Any:
        """Load what ``save`` wrote (possibly in another process, months later)."""

    @abstractmethod
    def predict(self, model: Any, X: "pd.DataFrame", problem_type: str) -> "pd.DataFrame":
        """Return a frame aligned with X: column ``prediction`` and, for classification,
        ``proba_<class>`` per class."""

    def feature_importance(self, model: Any) -> dict[str, float]:
        return {}

    def cleanup(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Remove frames/models this run created on a shared cluster."""
