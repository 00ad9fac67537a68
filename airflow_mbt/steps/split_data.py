"""Step ``split_data``: custom transforms on the raw frame, checks of the label/id columns,
dropping ignored columns, then a (stratified) train/test split from ``training.split``."""

from __future__ import annotations

from airflow_mbt.errors import DataContractError, MBTInputError
from airflow_mbt.ml import custom_transforms
from airflow_mbt.ml.preprocessing import settings_from_config
from airflow_mbt.ml.schema import PipelineSchema, normalize_labels, regression_labels
from airflow_mbt.steps.error_location import with_pipeline_location


def split_settings(config: dict) -> tuple[float, int, bool]:
    split = (config.get("training") or {}).get("split") or {}
    test_size = split.get("test_size", 0.2)
    if not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise MBTInputError(f"test_size must be a fraction between 0 and 1, got {test_size!r}",
                            field="training.split.test_size", hint="e.g. 0.2")
    return float(test_size), int(split.get("seed", 42)), bool(split.get("stratify", True))


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from sklearn.model_selection import train_test_split

    schema = PipelineSchema.from_config(ctx.config)
    settings = settings_from_config(ctx.config)
    test_size, seed, stratify = split_settings(ctx.config)
    df = custom_transforms.apply(inputs["raw_data"], settings["custom_transforms"], ctx.project_dir)
    columns = ", ".join(map(str, df.columns))
    if schema.label_column not in df.columns:
        raise DataContractError(f"label column {schema.label_column!r} is not in the data",
                                field="training.schema.target.label_column", hint=f"columns: {columns}")
    if schema.primary_key and schema.primary_key not in df.columns:
        raise DataContractError(f"primary key column {schema.primary_key!r} is not in the data",
                                field="training.schema.identifiers.primary_key", hint=f"columns: {columns}")
    absent = [c for c in schema.ignored_columns if c not in df.columns]
    if absent:
        ctx.log.warning("ignored_columns not in the data: %s", ", ".join(absent))
    df = df.drop(columns=[c for c in schema.ignored_columns if c in df.columns]).reset_index(drop=True)
    strata = None
    if schema.is_classification:
        labels = normalize_labels(df[schema.label_column], schema.resolve_classes(df[schema.label_column]),
                                  schema.label_column)
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
    train, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=strata)
    ctx.log.info("split %d rows into %d train / %d test", len(df), len(train), len(test))
    return {"train_set": train.reset_index(drop=True), "test_set": test.reset_index(drop=True)}
