"""Step ``split_data``: the row filters (``training.filters``, ``drop_duplicates``,
``preprocessing.row_filters``; ``ml/row_filters``, counted in the step's ``rows_removed`` and in
``train_set.attrs``), custom transforms on the raw frame, checks of every column the pipeline
names (did you mean ...) and of a unique primary key, dropping ignored columns, then a
``training.split.method: time`` split on ``time_column`` (``cutoff`` or the latest ``test_size``)
or a (stratified) random train/test split from ``training.split``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.constants import _StrEnum
from airflow_mbt.ml import columns, custom_transforms, data_checks, row_filters
from airflow_mbt.ml.columns import as_datetime
from airflow_mbt.ml.preprocessing import settings_from_config
from airflow_mbt.ml.schema import PipelineSchema, normalize_labels, regression_labels
from airflow_mbt.steps.error_location import with_pipeline_location

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def split_settings(config: dict) -> tuple[float, int, bool]:
    split = (config.get("training") or {}).get("split") or {}
    test_size = split.get("test_size", 0.2)
    if not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise MBTInputError(f"test_size must be a fraction between 0 and 1, got {test_size!r}",
                            field="training.split.test_size", hint="e.g. 0.2")
    return float(test_size), int(split.get("seed", 42)), bool(split.get("stratify", True))


class SplitMethod(_StrEnum):
    RANDOM = "random"
    TIME = "time"


def time_split(df: "pd.DataFrame", split: dict, test_size: float) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Rows at or after ``cutoff`` (or the latest ``test_size`` share of rows) are the test set; no
    training row is later than a test row (rows tied at the boundary all go to the test set). Both
    sets come back in time order."""
    import math

    import pandas as pd

    col = split.get("time_column")
    if not col:
        raise MBTInputError("split.method time needs a time_column", field="training.split.method",
                            hint="add training.split.time_column: <a date or timestamp column>")
    times = as_datetime(df[col])
    missing = int(times.isna().sum())
    if missing:
        raise DataContractError(f"{missing} of {len(df)} rows have no parsable time in column {col!r}",
                                field="training.split.time_column", hint="fill or filter them in the label table")
    order = times.sort_values(kind="stable").index
    df, times = df.loc[order].reset_index(drop=True), times.loc[order].reset_index(drop=True)
    if split.get("cutoff") is not None:
        try:
            boundary = pd.Timestamp(str(split["cutoff"]))
        except ValueError:
            raise MBTInputError(f"cannot parse the date {split['cutoff']!r}", field="training.split.cutoff",
                                hint="an ISO date such as 2024-06-30") from None
        if boundary.tzinfo is not None:
            boundary = boundary.tz_convert("UTC").tz_localize(None)
    else:
        boundary = times.iloc[len(df) - max(1, math.ceil(test_size * len(df)))]
    is_test = (times >= boundary).to_numpy()
    train, test = df[~is_test], df[is_test]
    if not len(train) or not len(test):
        raise DataContractError(f"the time split at {boundary} leaves {len(train)} training and {len(test)} test rows",
                                field="training.split.cutoff" if split.get("cutoff") else "training.split.test_size",
                                hint=f"{col} runs from {times.iloc[0]} to {times.iloc[-1]}")
    return train, test


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from sklearn.model_selection import train_test_split

    schema = PipelineSchema.from_config(ctx.config)
    settings = settings_from_config(ctx.config)
    test_size, seed, stratify = split_settings(ctx.config)
    # popped: the raw frame is freed as soon as a filtered or trimmed copy replaces it (peak memory)
    df, removed = row_filters.training_rows(inputs.pop("raw_data"), ctx.config, ctx.run, ctx.code_dir, ctx.log)
    ctx.rows_removed.update(removed)
    df = custom_transforms.apply(df, settings["custom_transforms"], ctx.code_dir)
    columns.check_references(df, ctx.config, ctx.log)
    ignored = [c for c in schema.ignored_columns if c in df.columns]
    if ignored:
        df = df.drop(columns=ignored)
    df.reset_index(drop=True, inplace=True)  # in place: no copy of the frame
    pre_cfg = (ctx.config.get("training") or {}).get("preprocessing") or {}
    df = data_checks.handle_non_finite(df, pre_cfg.get("non_finite"), {schema.label_column}, ctx.log)
    strata = None
    if schema.is_classification:
        labels = normalize_labels(df[schema.label_column], schema.resolve_classes(df[schema.label_column]),
                                  schema.label_column)
        data_checks.reject_single_class(labels, schema.label_column)
        counts = labels.value_counts()
        if stratify and counts.min() >= 2:
            strata = labels
        elif stratify:
            ctx.log.warning("class %r has fewer than 2 rows: splitting without stratification", counts.idxmin())
    else:
        regression_labels(df[schema.label_column], schema.label_column)  # fail before training
    if len(df) < 4:
        raise DataContractError(f"only {len(df)} rows: too few to split into train and test sets",
                                field="training.data_source.label_table")
    split = (ctx.config.get("training") or {}).get("split") or {}
    if split.get("method", SplitMethod.RANDOM) == SplitMethod.TIME:
        train, test = time_split(df, split, test_size)
    else:
        train, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=strata)
    ctx.log.info("split %d rows into %d train / %d test (%s)", len(df), len(train), len(test),
                 split.get("method", SplitMethod.RANDOM))
    del df, strata  # only the two sets stay in memory while they are written
    train.reset_index(drop=True, inplace=True)
    test.reset_index(drop=True, inplace=True)
    train.attrs[row_filters.ATTR] = removed  # kept by Parquet: train_model records it with the model
    return {"train_set": train, "test_set": test}
