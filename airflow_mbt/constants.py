"""Names shared by every layer: the Enums of modes, kinds and statuses, exit codes, metric names.

The bottom of the import graph: this module imports nothing from ``airflow_mbt``. Enums are
``str``/``int`` subclasses so they serialise to the same JSON as the plain literals they replace
(``json.dumps(ArtifactKind.TABLE) == '"table"'``) and compare equal to them.
"""

from __future__ import annotations

import re
from enum import Enum, IntEnum


class _StrEnum(str, Enum):
    """A ``str`` Enum whose ``str()`` and ``format()`` are the value (as ``enum.StrEnum``, 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class ExecutorType(_StrEnum):
    """How a step runs under Airflow: in the worker process, or as a pod."""

    LOCAL = "local"
    KUBERNETES = "kubernetes"


class PipelineKind(_StrEnum):
    TRAINING = "training"
    SERVING = "serving"


class ArtifactKind(_StrEnum):
    """How a step output is serialised: ``table`` (DataFrame <-> Parquet), ``table_stream`` (one
    Parquet file written and read chunk by chunk), ``json`` (dict), ``dir`` (directory <-> tar)."""

    TABLE = "table"
    TABLE_STREAM = "table_stream"
    JSON = "json"
    DIR = "dir"


class StepStatus(_StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    TERMINATED = "terminated"


class PluginKind(_StrEnum):
    """Plugin groups; the value is the registry key, the entry-point group is ``airflow_mbt.<value>``."""

    DATA_CONNECTORS = "data_connectors"
    STORAGE = "storage"
    FRAMEWORKS = "frameworks"

    @property
    def entry_point_group(self) -> str:
        return f"airflow_mbt.{self.value}"

    @property
    def singular(self) -> str:
        return {"data_connectors": "data connector", "storage": "storage", "frameworks": "framework"}[self.value]


class ExitCode(IntEnum):
    """Exit codes of every ``mbt`` command and of a step pod."""

    OK = 0
    FAILURE = 1  # a service failed, or an unexpected error: a retry may fix it
    INPUT = 2  # bad input (YAML, profiles, arguments, data, connections): fix the input
    NOT_RETRYABLE = 3  # a retry cannot fix it (validation criteria, integrity, rejected credentials)
    SIGINT = 130  # interrupted (Ctrl-C)
    SIGTERM = 143  # terminated (Airflow timeout or "mark failed", pod eviction)

    @classmethod
    def describe(cls) -> str:
        """The exit-code table that ``mbt --help`` prints."""
        text = {
            cls.OK: "success",
            cls.FAILURE: "a service failed or an unexpected error (a retry may help)",
            cls.INPUT: "bad input: YAML, profiles, arguments, data, connections (fix the input)",
            cls.NOT_RETRYABLE: "cannot be fixed by a retry: validation criteria, integrity, rejected credentials",
            cls.SIGINT: "interrupted (SIGINT, Ctrl-C)",
            cls.SIGTERM: "terminated (SIGTERM: a timeout, 'mark failed' or an eviction)",
        }
        return "\n".join(f"  {int(code):<4} {text[code]}" for code in cls)


# ---- metrics ---------------------------------------------------------------------------------
METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"),
    "multiclass_classification": ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro",
                                  "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
PROBLEM_TYPES: tuple[str, ...] = tuple(METRICS)
DEFAULT_PRIMARY: dict[str, str] = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro",
                                   "regression": "rmse"}
# metrics where lower is better (validation and comparisons flip for these)
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "rmse", "mae", "mape"})
CRITERION_OPERATORS: tuple[str, ...] = (">=", "<=", "==", ">", "<")
_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CRITERION = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*({_NUMBER})\s*$")


def proba_column(cls: object) -> str:
    """Name of the probability column of one class in a framework's prediction frame."""
    return f"proba_{cls}"


# ``orchestrator.config.default_args`` fields that Airflow takes as a timedelta; the profile
# writes them as a duration (``parse_duration``), checked by profiles.schema.json at compile.
# the env var naming where `mbt step execute` writes its XCom value (pods of the kubernetes operator)
XCOM_FILE_ENV = "MBT_XCOM_FILE"

TIMEDELTA_ARGS = ("execution_timeout", "retry_delay", "max_retry_delay")
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*")
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: object) -> float | None:
    """Seconds of a duration: a number of seconds, or a string of ``<number><d|h|m|s>`` parts
    (``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"``); ``None`` when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    pos, total = 0, 0.0
    while pos < len(value):
        m = _DURATION_PART.match(value, pos)
        if m is None or m.end() == pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


def parse_criterion(text: object) -> tuple[str, str, float] | None:
    """``"roc_auc >= 0.7"`` -> ``("roc_auc", ">=", 0.7)``; ``None`` when malformed."""
    m = _CRITERION.match(text) if isinstance(text, str) else None
    return (m.group(1), m.group(2), float(m.group(3))) if m else None
