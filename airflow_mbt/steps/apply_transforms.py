"""Step ``apply_transforms``: replay the training preprocessing on the scoring data: custom
transforms, the feature contract check (one ``DataContractError`` for all problems), then the
fitted impute/scale/encode. The id column is kept in front of the feature columns."""

from __future__ import annotations

from airflow_mbt.ml import contract, custom_transforms, preprocessing
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    pre, df = inputs["preprocessor"], inputs["scoring_data"]
    df = custom_transforms.apply(df, pre.get("custom_transforms") or [], ctx.project_dir)
    table = ((ctx.config.get("serving") or {}).get("data_source") or {}).get("scoring_table", "scoring data")
    contract.check(df, pre, source=f"table {table!r}")
    features = preprocessing.transform(df, pre)
    id_col = pre.get("id_column")
    if id_col:
        features.insert(0, id_col, df[id_col].to_numpy())
    ctx.log.info("transformed %d rows into %d features", len(features), len(pre["output_columns"]))
    return {"features": features.reset_index(drop=True)}
