"""Partitioned serving: the plan (``serving.partitions``) and what one partition reads.

``serving.partitions: {count: N, by: <column>}`` splits the scoring rows of a run on a hash of the
key column; ``{count: N, by_range: <column>}`` splits the range ``[min, max]`` of a numeric, date or
timestamp column (over the rows of the run's data source, ``where`` included) into N equal-width
ranges. Every row lands in exactly one partition ``0 <= i < N``: a NULL key or a column whose
values are all equal goes to partition 0. The filter is SQL evaluated by the database next to the
data source's own ``where`` (the connectors compose it; the column is a quoted identifier, N and i
are bound values), so a partition's read touches only its rows.

The partitioned steps (``PARTITIONED_STEPS``) run once per partition (Airflow: a mapped task
group, ``map_index`` = partition; ``mbt run``: one partition after another, or ``--parallel K``
processes); their artifacts are stored and registered per partition (``artifact_name``,
``storage_step``), so partitions never share a key. ``load_model`` runs once; ``verify`` runs
after all partitions and checks that their rows add up to the source rows.

Stdlib only: imported by the compiler, the runtime, the connectors and the DAG factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mbt.errors import MBTInputError

PARTITIONED_STEPS = ("load_scoring_data", "apply_transforms", "predict", "publish")
VERIFY_STEP = "verify"
PARTITION_COLUMN = "mbt_partition"  # the output column stamping each row with its partition
HASH, RANGE = "hash", "range"
FIELD = "serving.partitions"


@dataclass(frozen=True)
class PartitionPlan:
    """``serving.partitions`` of a compiled pipeline: ``count`` partitions of ``column`` by
    ``method`` (``hash`` or ``range``)."""

    count: int
    column: str
    method: str

    def filter(self, index: int) -> PartitionFilter:
        """The filter of partition ``index``; an input error when it is out of range."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.count:
            raise MBTInputError(f"partition {index!r} is out of range: the pipeline has {self.count} partitions",
                                field="--partition", hint=f"use 0..{self.count - 1}")
        return PartitionFilter(self.method, self.column, self.count, index)


@dataclass(frozen=True)
class PartitionFilter:
    """The rows of partition ``index`` of ``count``: a connector turns it into SQL (``hash``:
    ``hash(column) mod count = index``; ``range``: equal-width bucket ``index`` of
    ``[min(column), max(column)]``), NULLs in partition 0."""

    method: str
    column: str
    count: int
    index: int


def plan_of(config: Mapping[str, Any]) -> PartitionPlan | None:
    """The partition plan of a compiled pipeline config (``None``: not partitioned). The JSON
    Schema has already checked the shape; this checks what it cannot (one of by / by_range)."""
    spec = (config.get("serving") or {}).get("partitions")
    if not spec:
        return None
    by, by_range = spec.get("by"), spec.get("by_range")
    if bool(by) == bool(by_range):
        raise MBTInputError("partitions need exactly one of by and by_range", field=FIELD,
                            hint="by: <key column> (hash) or by_range: <numeric or time column>")
    count = spec.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise MBTInputError(f"partitions.count must be an integer >= 1, got {count!r}", field=f"{FIELD}.count",
                            hint="e.g. count: 4")
    return PartitionPlan(count=count, column=str(by or by_range), method=HASH if by else RANGE)


def is_partitioned_step(plan: PartitionPlan | None, step: str) -> bool:
    return plan is not None and step in PARTITIONED_STEPS


def artifact_name(name: str, partition: int) -> str:
    """Registry name of artifact ``name`` of one partition (``scoring_data@p2``)."""
    return f"{name}@p{partition}"


def storage_step(step: str, partition: int) -> str:
    """The step segment of a partition's storage keys: ``<pipeline>/<run_id>/<step>/p<i>/<artifact>``."""
    return f"{step}/p{partition}"
