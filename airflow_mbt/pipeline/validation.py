"""``validate_pipeline``: load, merge, render, schema-check, semantic-check and fill defaults.

``check_data_columns`` additionally reads the CSV header of local sample data (csv module
only) to catch a label or key column that the data does not have.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline import semantics, sql_check
from airflow_mbt.pipeline.defaults import with_defaults
from airflow_mbt.pipeline.loading import load_pipeline
from airflow_mbt.project.schema_check import suggest, validate
from airflow_mbt.project.yaml_loader import Located
from airflow_mbt.project.paths import check_pipeline_path
from airflow_mbt.project.root import Project, check_pipeline_name

SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")


@dataclass
class ValidatedPipeline:
    name: str
    doc: Located          # rendered document with source positions
    config: dict          # with defaults filled
    source_file: str      # relative to the project dir, e.g. pipelines/x.yaml
    warnings: list[str] = field(default_factory=list)   # shown by validate/compile, never fatal

    @property
    def kind(self) -> str:
        return semantics.kind_of(self.config)


def validate_pipeline(project: Project, name: str, vars: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None, dialect: str | None = None) -> ValidatedPipeline:
    """``dialect``: the sqlglot dialect data_source SQL is checked in (``sql_check.dialect_of``
    of the target; default postgres)."""
    check_pipeline_name(name)
    if name.startswith("_"):
        raise MBTInputError(f"{name!r} is a base pipeline (its name starts with '_')",
                            file=project.relative(project.pipeline_path(name)),
                            hint="validate, compile or run the pipelines that use it as base_pipeline")
    doc = load_pipeline(project, name, vars, env)
    validate(doc, SCHEMA_PATH, what="pipeline")
    warnings = semantics.check(doc, name)
    output = ("serving", "output", "path")
    check_pipeline_path(semantics._get(doc.value, *output), output, project.root, doc.error)
    sql_check.check_data_sources(doc, dialect or sql_check.DEFAULT_DIALECT)
    return ValidatedPipeline(name=name, doc=doc, config=with_defaults(doc.value),
                             source_file=project.relative(project.pipeline_path(name)), warnings=warnings)


def _csv_header(path: Path) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            line = fh.readline(64 * 1024)  # a header line; never the whole of a file without newlines
        return next(csv.reader([line]), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def check_data_columns(pipeline: ValidatedPipeline, data_dir: Path) -> None:
    """When ``data_dir/<table>.csv`` exists (and no ``.parquet``, which the connector would read
    instead), its header must hold the label and key columns. Only the header line is read."""
    cfg, doc = pipeline.config, pipeline.doc
    schema = cfg["training"]["schema"]
    checks = []
    label_table = (cfg["training"].get("data_source") or {}).get("label_table")
    if pipeline.kind == "training" and label_table:
        checks.append((label_table, ("training", "schema", "target", "label_column"),
                       schema["target"]["label_column"]))
        checks.append((label_table, ("training", "schema", "identifiers", "primary_key"),
                       schema["identifiers"]["primary_key"]))
    scoring_table = (cfg.get("serving") or {}).get("data_source", {}).get("scoring_table")
    if pipeline.kind == "serving" and scoring_table and schema.get("identifiers", {}).get("primary_key"):
        checks.append((scoring_table,
                       ("training", "schema", "identifiers", "primary_key"), schema["identifiers"]["primary_key"]))
    for table, path, column in checks:
        stem = table.rsplit(".", 1)[-1]  # schema.table -> table, as the local_file connector does
        csv_path = data_dir / f"{stem}.csv"
        if (data_dir / f"{stem}.parquet").exists():
            continue  # the connector prefers Parquet; reading its schema would need pyarrow
        header = _csv_header(csv_path) if csv_path.is_file() else None
        if header is not None and column not in header:
            raise doc.error(path, f"column {column!r} is not in {csv_path.name} (columns: {', '.join(header)})",
                            hint=suggest(column, header) or "fix the column name or the data")
