"""Bad-input suite: every malformed pipeline/profile in tests/unit/pipeline/bad_input/ must give exit 2,
exactly one message starting with the exact ``file:line`` (and a column), naming the field, with
a hint, and no traceback. The table-driven hostile corpus is in ``test_hostile_input.py``.

Each fixture file describes itself in its header (``# file:``, ``# args:``, ``# expect:``,
``# field:``, ``# message:``); the rest of the file replaces ``# file:`` in a fresh project made
by ``mbt init``, and ``# --- file: PATH`` sections add more files.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from airflow_mbt.cli.main import main
from airflow_mbt.scaffold.project_init import init_project

FIXTURES = Path(__file__).with_name("bad_input")
CASES = sorted(FIXTURES.glob("*.yaml"))


def parse_fixture(path: Path) -> tuple[dict, dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    meta = dict(re.findall(r"^# (file|args|expect|field|message): (.*)$", text, flags=re.M)[:6])
    parts = re.split(r"^# --- file: (.*)\n", text, flags=re.M)
    files = {meta["file"]: parts[0]}
    files.update({parts[i]: parts[i + 1] for i in range(1, len(parts), 2)})
    return meta, files


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return init_project("proj", tmp_path_factory.mktemp("tpl"))


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_suite_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("fixture", CASES, ids=lambda p: p.stem)
def test_bad_input(fixture, template, tmp_path, capsys):
    meta, files = parse_fixture(fixture)
    project = tmp_path / "proj"
    shutil.copytree(template, project)
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text, encoding="utf-8")
    code, out, err = run_cli(["--project-dir", str(project), *shlex.split(meta["args"])], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert err.startswith(f"error: {meta['expect']}:"), err
    if meta["field"] != "-":
        assert f": {meta['field']}" in err, err
    assert meta["message"] in err, err
    assert "is valid" not in out
    assert sum(line.startswith(("error:", "warning:")) for line in err.splitlines()) == 1, err
    assert "\n  hint: " in err, err
    assert re.match(r"error: [^:\n]+:\d+:\d+: ", err), err  # file:line:col


@pytest.mark.parametrize("argv, field, message", [
    (["validate", "training_churn_model_v1", "--vars", "max_runtime_secs"], "--vars", "cannot parse 'max_runtime_secs'"),
    (["compile", "training_churn_model_v1", "--vars", "{not: [closed"], "--vars", "YAML mapping"),
    (["validate", "training_churn_mdel_v1"], None, "did you mean 'training_churn_model_v1'"),
    (["compile", "--target", "dev", "--profile", "prjo"], "--profile", "did you mean 'proj'"),
    (["run", "--select", "training_churn_model_v1", "--run-id", "../../etc"], "--run-id", "invalid run id"),
    (["step", "execute", "--pipeline", "training_churn_model_v1", "--step", "load_data", "--target", "dev",
      "--run-id", "run_20260101_000000_ab12"], None, "manifest not found"),
    (["deploy", "--target", "dev"], "--target", "no manifests compiled for target 'dev'"),
    (["compile", "_base_churn"], None, "'_base_churn' is a base pipeline"),
])
def test_bad_arguments(argv, field, message, template, tmp_path, capsys):
    project = tmp_path / "proj"
    shutil.copytree(template, project)
    code, out, err = run_cli(["--project-dir", str(project), *argv], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    if field:
        assert f"{field}: " in err
    assert message in err, err


def test_usage_error_exits_2(capsys):
    code, _, err = run_cli(["compile", "--no-such-option"], capsys)
    assert code == 2 and "unrecognized arguments" in err and "Traceback" not in err


def test_not_in_a_project(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["validate"], capsys)
    assert code == 2 and "not inside an mbt project" in err and "mbt init" in err
