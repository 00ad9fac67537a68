"""`mbt --help`, `mbt validate` and `mbt compile` must not import heavy libraries (fast CLI start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_mbt.scaffold.project_init import init_project

HEAVY = ("pandas", "numpy", "sklearn", "h2o", "mlflow", "boto3", "botocore", "pyarrow", "psycopg", "kubernetes",
         "airflow", "matplotlib", "jinja2")

PROBE = """
import json, sys
from airflow_mbt.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def loaded(*argv) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], input=json.dumps(HEAVY),
                          capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return init_project("light", tmp_path_factory.mktemp("light"))


def test_help_is_light():
    assert loaded("--help") == {"code": 0, "heavy": []}


def test_validate_is_light(project):
    assert loaded("--project-dir", project, "validate", "training_churn_model_v1") == {"code": 0, "heavy": []}


def test_compile_is_light(project):
    assert loaded("--project-dir", project, "compile", "training_churn_model_v1", "--target", "prod") == \
        {"code": 0, "heavy": []}


def test_probe_detects_heavy_imports():
    """The probe itself works: importing pandas first is reported."""
    proc = subprocess.run([sys.executable, "-c", "import pandas\n" + PROBE, "--version"], input=json.dumps(HEAVY),
                          capture_output=True, text=True, timeout=120)
    assert "pandas" in json.loads(proc.stdout.strip().splitlines()[-1])["heavy"]
