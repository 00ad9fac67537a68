"""Step ``apply_transforms``: replay the training preprocessing on the scoring data, chunk by
chunk: custom transforms, the feature contract check (one ``DataContractError`` for all problems
of a chunk; the first chunk sees every column problem), then the fitted impute/scale/encode. The
id column is kept in front of the feature columns. Every step of the replay is row-wise, so the
chunked result equals the whole-frame one (custom transforms used in serving must be row-wise too).
Empty chunks (an empty partition) are skipped: the output is then an empty table.
"""

from __future__ import annotations

from airflow_mbt.ml import contract, custom_transforms, data_checks, preprocessing
from airflow_mbt.runtime.table_stream import frames
from airflow_mbt.steps.error_location import with_pipeline_location


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    pre = inputs["preprocessor"]
    table = ((ctx.config.get("serving") or {}).get("data_source") or {}).get("scoring_table", "scoring data")
    specs = pre.get("custom_transforms") or []
    id_col = pre.get("id_column")
    out = ctx.table_writer("features")
    with out:
        for df in frames(inputs["scoring_data"], ctx.chunk_rows()):
            if df.empty:  # an empty partition (serving.partitions): nothing to transform
                continue
            df = custom_transforms.apply(df, specs, ctx.project_dir)
            contract.check(df, pre, source=f"table {table!r}")
            data_checks.reject_non_finite(df, {id_col} if id_col else set(), f"table {table!r}")
            features = preprocessing.transform(df, pre)
            if id_col:
                features.insert(0, id_col, df[id_col].to_numpy())
            out.write(features.reset_index(drop=True))
    ctx.log.info("transformed %d rows into %d features", out.num_rows, len(pre["output_columns"]))
    return {"features": out}
