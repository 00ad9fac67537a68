"""Step ``apply_transforms``: replay the training preprocessing on the scoring data, chunk by
chunk: custom transforms, the feature contract check (one ``DataContractError`` for all problems
of a chunk; the first chunk sees every column problem), then the fitted impute/scale/encode. The
id column is kept in front of the feature columns. Every step of the replay is row-wise, so the
chunked result equals the whole-frame one (custom transforms used in serving must be row-wise too).

Custom transforms run from the code logged with the model (``preprocessor["transform_code"]``,
written to the step's folder and imported in isolation), not from the current ``lib/``; a file
of the current project that differs from the logged one is a warning. A model logged without
code (older mbt) falls back to the step's code folder (``ctx.code_dir``: the release's code
when the task fetched it, else the project's ``lib/``), with a warning. ``serving.filters`` (SQL
boolean expressions, row-wise) drop scoring rows first; the counts are the step's ``rows_removed``.
Empty chunks (an empty partition) are skipped: the output is then an empty table.
"""

from __future__ import annotations

from airflow_mbt.errors import DataContractError
from airflow_mbt.ml import contract, custom_transforms, data_checks, preprocessing, row_filters
from airflow_mbt.runtime.table_stream import frames
from airflow_mbt.steps.error_location import with_pipeline_location


def _transforms(ctx, pre: dict) -> tuple[list, object]:
    """The loaded transforms and the folder they come from."""
    specs = pre.get("custom_transforms") or []
    if not specs:
        return [], None
    files = pre.get("transform_code") or {}
    if not files:
        ctx.log.warning("the model has no logged transform code: running %s from the project's current code",
                        ", ".join(specs))
        return custom_transforms.load_all(specs, ctx.code_dir), ctx.code_dir
    changed = custom_transforms.changed_files(files, ctx.code_dir)
    if changed:
        ctx.log.warning("%s changed since the model was trained (logged code sha256 %s): serving runs the "
                        "logged code; retrain to use the new code", ", ".join(changed),
                        str(pre.get("transform_code_sha256", ""))[:12])
    root = custom_transforms.materialize(files, ctx.step_dir / "logged_code")
    return custom_transforms.load_all(specs, root), root


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    pre = inputs["preprocessor"]
    table = ((ctx.config.get("serving") or {}).get("data_source") or {}).get("scoring_table", "scoring data")
    loaded, code_root = _transforms(ctx, pre)
    id_col = pre.get("id_column")
    out = ctx.table_writer("features")
    with out:
        for df in frames(inputs["scoring_data"], ctx.chunk_rows()):
            df, removed = row_filters.apply_sql(df, "serving", ctx.config, ctx.run)
            for key, count in removed.items():
                ctx.rows_removed[key] = ctx.rows_removed.get(key, 0) + count
            if df.empty:  # an empty partition (serving.partitions) or all rows filtered out
                continue
            df = custom_transforms.run(df, loaded, root=code_root)
            contract.check(df, pre, source=f"table {table!r}")
            data_checks.reject_non_finite(df, {id_col} if id_col else set(), f"table {table!r}")
            features = preprocessing.transform(df, pre)
            if id_col:
                features.insert(0, id_col, df[id_col].to_numpy())
            out.write(features.reset_index(drop=True))
        if out.num_rows == 0:
            raise DataContractError("serving.filters removed every scoring row", field="serving.filters",
                                    hint="check the filters against the scoring data")
    ctx.log.info("transformed %d rows into %d features", out.num_rows, len(pre["output_columns"]))
    return {"features": out}
