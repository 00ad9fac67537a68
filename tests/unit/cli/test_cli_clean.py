"""``mbt clean``: keeps the N newest runs per pipeline, removes stale target/ folders, --dry-run
removes nothing; a negative --keep is an input error."""

from __future__ import annotations

import os

import pytest

from airflow_mbt.cli.main import main
from airflow_mbt.scaffold.project_init import init_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = init_project("proj", tmp_path)
    for pipeline in ("training_churn_model_v1", "serving_churn_model_v1"):
        for day in range(1, 5):
            run = root / "local_artifacts" / pipeline / f"run_2026010{day}"
            run.mkdir(parents=True)
            (run / "model.tar").write_bytes(b"x" * 1000)
            os.utime(run, (day * 86400, day * 86400))
    (root / "target" / "training_churn_model_v1").mkdir(parents=True)
    (root / "target" / "renamed_pipeline").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def runs(root, pipeline="training_churn_model_v1"):
    return sorted(p.name for p in (root / "local_artifacts" / pipeline).iterdir())


def test_dry_run_lists_and_removes_nothing(project, capsys):
    assert main(["clean", "--keep", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove local_artifacts/training_churn_model_v1/run_20260101" in out
    assert "would remove target/renamed_pipeline" in out and "would remove 5 folder(s)" in out
    assert len(runs(project)) == 4 and (project / "target" / "renamed_pipeline").is_dir()


def test_keep_n_newest_runs_per_pipeline_and_current_targets(project, capsys):
    assert main(["clean", "--keep", "2"]) == 0
    assert runs(project) == ["run_20260103", "run_20260104"]
    assert runs(project, "serving_churn_model_v1") == ["run_20260103", "run_20260104"]
    assert sorted(p.name for p in (project / "target").iterdir()) == ["training_churn_model_v1"]
    assert main(["clean", "--keep", "0"]) == 0
    assert runs(project) == []


def test_negative_keep_is_an_input_error(project, capsys):
    assert main(["clean", "--keep", "-1"]) == 2
    assert "--keep" in capsys.readouterr().err
