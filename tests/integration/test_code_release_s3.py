"""Code inside the version on the stack's S3 (SeaweedFS): ``mbt deploy`` ships the project code
next to the release (``<pipeline>/code/<hex>.tar.gz``), and ``mbt step execute`` of that release
in a project whose ``lib/`` was edited since (as an image with other code would hold) runs the
released code: the transform returns 1 in the released code and 2 in the edited one, and the
split written by the step carries 1. Real CLI processes, real S3 reads; local-file data."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import airflow_mbt
from airflow_mbt.manifest import Manifest

pytestmark = pytest.mark.services

MBT = Path(sys.executable).with_name("mbt")
PIPELINE = "training_churn_model_v1"
RUN_ID = "run_20261126_000000_0123456789abcdef"


def _transform(version: int) -> str:
    return f"def mark(df):\n    out = df.copy()\n    out['code_version'] = {version}\n    return out\n"


@pytest.fixture
def s3_manifests(tmp_path):
    """A fresh manifests prefix on the stack's S3 (connection mbt_s3 from scripts/stack.env), emptied afterwards."""
    from airflow_mbt.manifests.backends import s3_location

    assert os.environ.get("AIRFLOW_CONN_MBT_S3"), "the stack's environment (scripts/stack.env) is not loaded"
    uri = f"s3://mbt-pipeline-artifacts/h-code-release/{uuid.uuid4().hex[:12]}/"
    yield uri
    s3_location(uri, "mbt_s3").storage.delete_prefix("")


def _mbt(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MBT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_deploy_then_execute_runs_the_released_code_with_edited_local_lib(s3_manifests, tmp_path):
    from airflow_mbt.manifests.backends import s3_location
    from airflow_mbt.manifests.code_archive import code_key

    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    env["MBT_CACHE_DIR"] = str(tmp_path / "cache")
    # the CLI processes run the airflow_mbt this test imports (a worktree's, not only the installed one)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(airflow_mbt.__file__).parents[1]), env.get("PYTHONPATH", "")])
    assert _mbt(["init", "proj"], tmp_path, env).returncode == 0
    project = tmp_path / "proj"
    base = project / "pipelines" / "_base_churn.yaml"
    base.write_text(base.read_text().replace("custom_transforms: []", 'custom_transforms: ["lib.features:mark"]'))
    (project / "lib" / "features.py").write_text(_transform(1))
    compiled = _mbt(["compile", PIPELINE, "--target", "dev"], project, env)
    assert compiled.returncode == 0, compiled.stderr
    manifest = Manifest.read(project / "target" / PIPELINE / "manifest.json")
    assert manifest.code_hash

    deployed = _mbt(["deploy", "--target", "dev", "--to", s3_manifests, "--conn-id", "mbt_s3"], project, env)
    assert deployed.returncode == 0, deployed.stderr
    key = code_key(PIPELINE, manifest.code_hash)
    assert f"{s3_manifests}{key}" in deployed.stdout
    assert s3_location(s3_manifests, "mbt_s3").read(key), "the code archive is not in S3"

    (project / "lib" / "features.py").write_text(_transform(2))  # the image's lib/ is other code
    uri = f"{s3_manifests}{PIPELINE}/manifest.json"
    logs = {}
    for step in ("load_data", "split_data"):
        done = _mbt(["step", "execute", "--pipeline", PIPELINE, "--step", step, "--target", "dev",
                     "--run-id", RUN_ID, "--manifest", uri, "--manifest-conn-id", "mbt_s3",
                     "--manifest-hash", manifest.content_hash, "-v"], project, env)
        assert done.returncode == 0, done.stdout + done.stderr
        logs[step] = done.stdout + done.stderr  # Airflow's logging (imported by S3Hook) may write to stdout
    assert f"running the release's code {manifest.code_hash} fetched from {s3_manifests}{key}" in logs["load_data"]
    assert "running the release's code" in logs["split_data"] and "(cached in" in logs["split_data"]
    import pandas as pd

    split = pd.read_parquet(project / "local_artifacts" / PIPELINE / RUN_ID / "split_data" / "train_set.parquet")
    assert set(split["code_version"]) == {1}
    cached = tmp_path / "cache" / "code" / manifest.code_hash.split(":")[1] / "lib" / "features.py"
    assert cached.read_text() == _transform(1)
