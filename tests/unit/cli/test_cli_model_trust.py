"""``mbt run`` on the scaffolded churn project (sklearn instead of H2O, no JVM): a column typo in
``ignored_columns`` exits 2 naming file:line:col with a did-you-mean and no traceback; a failed
criterion exits 3, lists every metric and keeps the run; the column plan is printed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

MBT = Path(sys.executable).with_name("mbt")
TRAIN = "training_churn_model_v1"


def mbt(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    return subprocess.run([str(MBT), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    parent = tmp_path_factory.mktemp("trust")
    assert mbt("init", "demo-project", cwd=parent).returncode == 0
    root = parent / "demo-project"
    base = root / "pipelines" / "_base_churn.yaml"
    base.write_text(base.read_text().replace("framework: h2o_automl", "framework: sklearn"))
    train = root / "pipelines" / f"{TRAIN}.yaml"
    text = train.read_text()
    config = text[text.index("    config:"):text.index("  evaluation:")]
    train.write_text(text.replace(config, "    config: {model: RandomForestClassifier, n_estimators: 30}\n"))
    return root


def set_yaml(root, old, new):
    path = root / "pipelines" / ("_base_churn.yaml" if "ignored_columns" in old else f"{TRAIN}.yaml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path, next(i for i, t in enumerate(path.read_text().splitlines(), 1) if new.strip() in t)


def test_ignored_columns_typo_exits_2_with_location_and_did_you_mean(project):
    path, line = set_yaml(project, "ignored_columns: []", "ignored_columns: [tenur]")
    try:
        proc = mbt("run", "--select", TRAIN, "--target", "dev", cwd=project)
    finally:
        set_yaml(project, "ignored_columns: [tenur]", "ignored_columns: []")
    assert proc.returncode == 2, proc.stderr
    assert f"pipelines/_base_churn.yaml:{line}:" in proc.stderr
    assert "training.schema.ignored_columns[0]" in proc.stderr and "did you mean 'tenure'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failed_criteria_exits_3_and_lists_every_metric(project):
    set_yaml(project, 'validation_criteria: ["roc_auc >= 0.6"]', 'validation_criteria: ["roc_auc >= 0.9999"]')
    try:
        proc = mbt("run", "--select", TRAIN, "--target", "dev", cwd=project)
    finally:
        set_yaml(project, 'validation_criteria: ["roc_auc >= 0.9999"]', 'validation_criteria: ["roc_auc >= 0.6"]')
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout + proc.stderr
    assert "roc_auc >= 0.9999 (actual 0." in out and "other metrics: accuracy=0." in out
    assert "mbt_status=failed_criteria" in out and "Traceback" not in out
    assert "column plan (" in proc.stderr and "contract_type" in proc.stderr
