"""``MBTPyfuncModel``: the MLflow pyfunc wrapper of an mbt model directory + preprocessor, so a
logged run is usable with ``mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)``.

``predict`` takes raw rows (the columns of the scoring table), runs the recorded custom transforms
(their modules are logged with the model, see ``transform_code``), checks the feature contract, replays the
preprocessing and returns the predictions table (id column when present, ``prediction``,
``prediction_probability``). This module imports mlflow at import time (the class must subclass
``PythonModel``, and its ``predict`` type hint names pandas); only ``log_run`` and consumers of logged models import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

MODEL_DIR = "model_dir"
PREPROCESSOR = "preprocessor"


class MBTPyfuncModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from airflow_mbt.ml import scoring

        pre_path = Path(context.artifacts[PREPROCESSOR])
        self._pre = json.loads(pre_path.read_text(encoding="utf-8"))
        code = pre_path.parents[1] / "code"  # MLflow's copy of code_paths, also put on sys.path
        self._code_dir = code if code.is_dir() else Path(os.getcwd())
        self._framework, self._model, self._meta = scoring.load(Path(context.artifacts[MODEL_DIR]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from airflow_mbt.ml import contract, custom_transforms, preprocessing, scoring

        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        df = custom_transforms.apply(df, self._pre.get("custom_transforms") or [], self._code_dir)
        contract.check(df, self._pre, source="model input", require_id=False)
        scored = scoring.score(self._framework, self._model, self._meta, preprocessing.transform(df, self._pre))
        id_col = self._pre.get("id_column")
        return scoring.predictions_table(df[id_col] if id_col in df.columns else None, scored, self._meta)


def transform_code(specs: list[str], project_dir: Path, scratch: Path) -> list[str]:
    """``code_paths`` for ``log_model`` holding the modules of the custom transforms with their
    package layout (``lib.features`` -> ``lib/__init__.py`` if any + ``lib/features.py``), so the
    logged model scores anywhere. Only those files are copied, nothing else of the project."""
    import shutil

    from airflow_mbt.ml.custom_transforms import code_files

    for rel in code_files(specs, project_dir):
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(project_dir) / rel, scratch / rel)
    tops = {rel.parts[0] for rel in code_files(specs, project_dir)}
    return [str(scratch / top) for top in sorted(tops)]


def pip_requirements(framework: str) -> list[str]:
    """Explicit requirements (MLflow would otherwise infer them by loading the model in a
    subprocess, which is slow)."""
    from importlib.metadata import PackageNotFoundError, version

    wanted = ["airflow-mbt", "mlflow", "pandas", "numpy", "pyarrow"]
    wanted += {"sklearn": ["scikit-learn", "joblib"], "h2o_automl": ["h2o"]}.get(framework, [])
    out = []
    for dist in wanted:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            out.append(dist)
    return out
