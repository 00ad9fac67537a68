"""Row filters: ``<section>.filters`` (SQL boolean expressions, like ``data_source.where``),
``training.drop_duplicates`` and ``training.preprocessing.row_filters`` (functions that return a
subset of their rows).

Contract:
- ``apply_sql(df, section, config, run)`` keeps the rows for which every expression of
  ``<section>.filters`` is true (NULL counts as false). Expressions were checked by sqlglot at
  validate (``pipeline/sql_check``); run parameters (``{{ ds }}``...) are bound as parameters,
  never pasted into SQL. They are evaluated by DuckDB over the frame, in-process, row-wise (so a
  chunked serving frame filters like the whole one), and reference the frame's columns.
- ``drop_duplicates(df, setting)``: ``true`` drops repeated whole rows, a list of columns drops
  rows repeating those columns; the first row is kept.
- Every function returns ``(frame, {"<field>": rows removed})``; ``Removed`` sums them over
  chunks. The counts go to ``run_results.json`` (the step's ``rows_removed``) and, for training,
  to MLflow (``rows.removed.<field>`` params).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.sources import bind_expression, duckdb_sql

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ATTR = "mbt_rows_removed"  # DataFrame.attrs key carrying the counts from split_data to train_model


class Removed(dict[str, int]):
    """``{field: rows removed}`` accumulated over chunks."""

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self[key] = self.get(key, 0) + int(value)


def apply_sql(df: "pd.DataFrame", section: str, config: Any, run: Any = None) -> tuple["pd.DataFrame", dict[str, int]]:
    filters = (config.get(section) or {}).get("filters") or []
    if not filters or df.empty:
        return df, {f"{section}.filters[{i}]": 0 for i in range(len(filters))}
    import duckdb

    counts: dict[str, int] = {}
    con = duckdb.connect()
    try:
        for i, text in enumerate(filters):
            field = f"{section}.filters[{i}]"
            sql, params = duckdb_sql(bind_expression(text, run, field))
            con.register("mbt_rows", df)
            try:
                mask = con.execute(f"SELECT COALESCE(({sql}), FALSE) FROM mbt_rows", params).fetchnumpy()
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0][:300]
                raise DataContractError(f"filter {text!r} failed on the data: {first}", field=field,
                                        hint="filters may use the table's columns and run parameters "
                                             "such as {{ ds }}") from None
            finally:
                con.unregister("mbt_rows")
            keep = next(iter(mask.values())).astype(bool)
            counts[field] = int(len(df) - keep.sum())
            df = df[keep]
    finally:
        con.close()
    return df, counts


def drop_duplicates(df: "pd.DataFrame", setting: Any, field: str = "training.drop_duplicates"
                    ) -> tuple["pd.DataFrame", dict[str, int]]:
    if not setting:
        return df, {}
    subset = None if setting is True else list(setting)
    missing = [c for c in subset or [] if c not in df.columns]
    if missing:
        import difflib

        close = difflib.get_close_matches(missing[0], [str(c) for c in df.columns], n=1)
        raise MBTInputError(f"drop_duplicates names columns the data does not have: {', '.join(missing)}",
                            field=field, hint=f"did you mean {close[0]!r}?" if close else "list columns of the table")
    out = df.drop_duplicates(subset=subset, keep="first")
    return out, {field: int(len(df) - len(out))}


def training_rows(df: "pd.DataFrame", config: Any, run: Any, project_dir: Any, log: Any
                  ) -> tuple["pd.DataFrame", dict[str, int]]:
    """The training filters in order: SQL filters, drop_duplicates, row-filter functions."""
    from airflow_mbt.ml import custom_transforms

    training = config.get("training") or {}
    removed = Removed()
    df, counts = apply_sql(df, "training", config, run)
    removed.add(counts)
    df, counts = drop_duplicates(df, training.get("drop_duplicates"))
    removed.add(counts)
    specs = (training.get("preprocessing") or {}).get("row_filters") or []
    field = "training.preprocessing.row_filters"
    for i, spec in enumerate(specs):
        before = len(df)
        df = custom_transforms.apply(df, [spec], project_dir, field=field, row_filters=True)
        removed[f"{field}[{i}]"] = before - len(df)
    if any(removed.values()):
        log.info("row filters removed %s", ", ".join(f"{n} rows ({k})" for k, n in removed.items() if n))
    if removed and len(df) == 0:
        raise DataContractError("the row filters removed every row", field=next(iter(removed)),
                                hint="check the filters against the data")
    return df.reset_index(drop=True), dict(removed)
