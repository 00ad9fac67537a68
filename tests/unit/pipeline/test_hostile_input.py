"""Hostile-input corpus (``hostile_cases.CASES``): each case exits 2 with exactly one message that
starts with its location (``file:line:col``) and field, carries a hint, shows no traceback, and
leaks the planted secret neither into the output nor into any file of the project."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from hostile_cases import (
    CASES,
    PIPE,
    PLANTED_ENV,
    PLANTED_SECRET,
    PROFILES,
    SERVING,
    Case,
    Dir,
    Fifo,
    Symlink,
)

from airflow_mbt.cli.main import main
from airflow_mbt.scaffold.project_init import init_project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = init_project("proj", tmp_path_factory.mktemp("hostile"))
    (root / "profiles.yaml").write_text(PROFILES, encoding="utf-8")
    (root / "pipelines" / "training_churn_model_v1.yaml").write_text(PIPE, encoding="utf-8")
    (root / "pipelines" / "serving_churn_model_v1.yaml").write_text(SERVING, encoding="utf-8")
    return root


def _write(project: Path, rel: str, content) -> None:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    if isinstance(content, Symlink):
        path.symlink_to(content.to)
    elif isinstance(content, Fifo):
        os.mkfifo(path)
    elif isinstance(content, Dir):
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _line(case: Case) -> str:
    file, line, col = case.at
    if isinstance(line, str):
        text = case.files[file]
        text = text.decode("latin-1") if isinstance(text, bytes) else text
        line = next(i for i, row in enumerate(text.splitlines(), 1) if line in row)
    where = re.escape(file)
    if line is not None:
        where += f":{line}:" + (str(col) if col is not None else r"\d+")
    return where


def make_project(template: Path, tmp_path: Path, files: dict) -> Path:
    project = tmp_path / "proj"
    shutil.copytree(template, project, symlinks=True)
    for rel, content in files.items():
        _write(project, rel, content)
    return project


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_leak(project: Path, *texts: str) -> None:
    for text in texts:
        assert PLANTED_SECRET not in text and PLANTED_ENV not in text
    for path in project.rglob("*"):
        if path.is_file() and not path.is_symlink() and not path.is_fifo():
            data = path.read_bytes()
            assert PLANTED_SECRET.encode() not in data and PLANTED_ENV.encode() not in data, path


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv("MBT_PLANTED_SECRET", PLANTED_SECRET)
    monkeypatch.setenv("MBT_PLANTED_ENV", PLANTED_ENV)
    monkeypatch.delenv("MBT_SURELY_UNSET_S", raising=False)


def test_corpus_is_large_enough():
    from test_bad_input_suite import CASES as FIXTURES

    assert len({c.id for c in CASES}) == len(CASES)
    assert len(CASES) + len(FIXTURES) >= 100


def test_the_template_is_valid(template, tmp_path, capsys, planted):
    project = make_project(template, tmp_path, {})
    code, out, err = run_cli(["--project-dir", str(project), "compile", "--target", "dev"], capsys)
    assert code == 0, err
    assert_no_leak(project, out, err)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input(case: Case, template, tmp_path, capsys, monkeypatch, planted):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    project = make_project(template, tmp_path, case.files)
    code, out, err = run_cli(["--project-dir", str(project), *shlex.split(case.args)], capsys)
    assert code == case.code, (out, err)
    assert "Traceback" not in err and "error: unexpected " not in err
    assert sum(line.startswith(("error:", "warning:")) for line in err.splitlines()) == 1, err
    assert "\n  hint: " in err, err
    head = err.splitlines()[0]
    prefix = "error: " + (_line(case) + ": " if case.at else "")
    if case.field:
        prefix += re.escape(case.field) + ": " if case.at else re.escape(case.field) + r"(:\d+:\d+)?: "
    else:
        prefix += r"(?:[\w.\[\]!-]+: )?" if case.at else ""
    assert re.match(prefix, head), (prefix, err)
    assert case.message in err, err
    assert "is valid" not in out and "Manifest saved" not in out
    assert_no_leak(project, out, err)
