"""Fixtures of the pipeline tests: a fresh copy of one ``mbt init`` project per test.

``template`` scaffolds the project once per module; ``project`` copies it into the test's own
folder and makes it the working directory. A module overrides ``template`` to change the
scaffold (e.g. its profiles) and keeps ``project``."""

from __future__ import annotations

import shutil

import pytest

from airflow_mbt.scaffold.project_init import init_project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return init_project("proj", tmp_path_factory.mktemp("tpl"))


@pytest.fixture
def project(template, tmp_path, monkeypatch):
    dest = tmp_path / "proj"
    shutil.copytree(template, dest)
    monkeypatch.chdir(dest)
    return dest
