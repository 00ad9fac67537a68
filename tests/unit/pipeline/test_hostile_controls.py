"""Controls of the hostile-input rules: what stays allowed, and the compile-side failures that
need a patched environment (root ignores read-only folders; a 16 MiB manifest is slow to build)."""

from __future__ import annotations

import errno

import pytest
from hostile_cases import PR, PROFILES
from test_hostile_input import make_project, run_cli, template  # noqa: F401 - the fixture

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project import limits
from airflow_mbt.project.credentials import check_credentials, url_has_credentials
from airflow_mbt.project.paths import local_path

C = ["compile", "training_churn_model_v1", "--target", "dev"]


@pytest.fixture(autouse=True)
def planted(monkeypatch):
    monkeypatch.setenv("MBT_PLANTED_SECRET", "x")


@pytest.mark.parametrize("old, new", [
    ("base_path: ./local_artifacts", "base_path: /tmp/mbt-artifacts-absolute-ok"),  # literal absolute: DE's choice
    ("config: {base_path: ./local_artifacts}", "config: {base_path: ./local_artifacts, use_token: true}"),
    ("config: {base_path: ./local_artifacts}", "config: {base_path: ./local_artifacts, password: \"{{ secret('MBT_PLANTED_SECRET') }}\"}"),
    ("sqlite:///mlruns/mlflow.db", "sqlite:///./mlruns/other.db"),
])
def test_allowed(template, tmp_path, capsys, old, new):  # noqa: F811
    project = make_project(template, tmp_path, {PR: PROFILES.replace(old, new)})
    code, _out, err = run_cli(["--project-dir", str(project), *C], capsys)
    assert code == 0, err


def test_rule_helpers():
    assert url_has_credentials("http://u:p@h") and url_has_credentials("x://u:{{ env_var('P') }}@h")
    assert not url_has_credentials("ssh://git@host/repo") and not url_has_credentials("http://h:5000/a@b")
    check_credentials({"secrets": {"provider": "env"}, "connection_secrets": {"a": "b"}, "token": None},
                      lambda *a: AssertionError(a))
    assert local_path("s3://b/k", uri=True) is None and local_path("sqlite:////abs/x.db", uri=True) == "/abs/x.db"
    assert local_path("file:///tmp/m", uri=True) == "/tmp/m" and local_path("./m", uri=True) == "./m"


def test_read_only_target_is_an_input_error(template, tmp_path, capsys, monkeypatch):  # noqa: F811
    from airflow_mbt.manifest import Manifest

    def refuse(self, path):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Manifest, "write", refuse)
    project = make_project(template, tmp_path, {})
    code, _out, err = run_cli(["--project-dir", str(project), *C], capsys)
    assert code == 2 and err.startswith("error: target/training_churn_model_v1/manifest.json: cannot write"), err
    assert "Read-only file system" in err and "hint:" in err


def test_oversized_manifest_is_an_input_error(template, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setattr(limits, "MAX_MANIFEST_BYTES", 1000)
    project = make_project(template, tmp_path, {})
    code, _out, err = run_cli(["--project-dir", str(project), *C], capsys)
    assert code == 2 and err.startswith("error: pipelines/training_churn_model_v1.yaml:1:1: the compiled manifest"), err
    assert not (project / "target" / "training_churn_model_v1" / "manifest.json").exists()


def test_number_limits():
    assert limits.number_problem(10 ** 19) is None and limits.number_problem(10 ** 25)
    assert limits.number_problem(float("nan")) and limits.number_problem(True) is None
    with pytest.raises(MBTInputError):
        limits.check_numbers({"a": [1, {"b": float("inf")}]}, lambda p, m, h: MBTInputError(m, field=str(p), hint=h))
