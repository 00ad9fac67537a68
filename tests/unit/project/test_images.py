"""Runner image references: pinned by digest or unique tag; ``mbt compile --image`` records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.images import check_image, is_pinned, with_image

DIGEST = "sha256:" + "ab" * 32
MBT = Path(sys.executable).with_name("mbt")


def test_pinned_references():
    assert is_pinned(f"zot-registry:5050/demo-project@{DIGEST}")
    assert is_pinned("zot-registry:5050/demo-project:3f2a9c1")
    assert is_pinned(f"ghcr.io/acme/runner:1.2@{DIGEST}")
    for ref in ("zot-registry:5050/demo-project:latest", "zot-registry:5050/demo-project", "Bad Name"):
        assert not is_pinned(ref)
    with pytest.raises(MBTInputError, match="not pinned") as err:
        check_image("zot-registry:5050/mbt-runner:latest")
    assert err.value.field == "--image" and "sha256" in err.value.hint
    with pytest.raises(MBTInputError, match="not an image reference"):
        check_image("registry/x@sha256:short")


def test_with_image_only_for_kubernetes_targets():
    k8s = {"name": "prod", "executor": {"type": "kubernetes", "config": {"image": "x:latest"}}}
    ref = f"zot-registry:5050/demo-project@{DIGEST}"
    assert with_image(k8s, ref)["executor"]["config"]["image"] == ref
    assert k8s["executor"]["config"]["image"] == "x:latest"  # not modified in place
    with pytest.raises(MBTInputError, match="for kubernetes targets"):
        with_image({"name": "dev", "executor": {"type": "local"}}, ref)


def test_compile_image_is_recorded_and_an_unpinned_one_warns(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}

    def mbt(*args, **extra_env):
        return subprocess.run([str(MBT), *args], cwd=tmp_path / "img", env={**env, **extra_env},
                              capture_output=True, text=True, timeout=300)

    subprocess.run([str(MBT), "init", "img"], cwd=tmp_path, env=env, check=True, capture_output=True)
    ref = f"zot-registry:5050/img@{DIGEST}"
    proc = mbt("compile", "training_churn_model_v1", "--target", "prod", "--image", ref)
    assert proc.returncode == 0 and "not pinned" not in proc.stderr, proc.stderr
    manifest = json.loads((tmp_path / "img" / "target" / "training_churn_model_v1" / "manifest.json").read_text())
    assert manifest["target"]["executor"]["config"]["image"] == ref
    unpinned = mbt("compile", "training_churn_model_v1", "--target", "prod",
                   MBT_RUNNER_IMAGE="zot-registry:5050/img:latest")
    assert unpinned.returncode == 0 and "is not pinned" in unpinned.stderr
    bad = mbt("compile", "training_churn_model_v1", "--target", "prod", "--image", "img:latest")
    assert bad.returncode == 2 and "--image" in bad.stderr and "Traceback" not in bad.stderr


def test_scaffold_image_name_is_a_valid_repository_per_project():
    from airflow_mbt.scaffold.project_init import image_name

    assert image_name("Demo-Project") == "demo-project"
    assert image_name("team_a..churn") == "team_a-churn"
    assert is_pinned(f"zot-registry:5050/{image_name('Team.B')}:0123abc")
