"""Dockerfiles, read offline with dockerfile-parse and linted with hadolint: the runner image
(runner_image/Dockerfile), the project image `mbt init` scaffolds, and the local stack's MLflow
and H2O images. Cross-file checks tie their pins to pyproject.toml and requirements/lock.txt, and
their build contexts to the .dockerignore files (matched the way Docker matches them).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import tomllib
from deploy_common import (
    DOCKERFILES,
    MBT,
    PROJECT_FILES,
    REALISTIC_SECRET,
    ROOT,
    RUNNER_DOCKERFILE,
    DockerfileView,
    describe,
    dockerignore_allows,
    hadolint,
    is_credential_name,
    manifests_uri_default,
    pins,
    project_dockerfile,
    provider_info,
    runner,
)

# ---------------------------------------------------------------- the reader over dockerfile-parse

SAMPLE = (
    "# syntax=docker/dockerfile:1\n"
    "ARG BASE=python\nARG TAG=3.11-slim\n"
    "FROM ${BASE}:${TAG} AS build\n"
    "ARG TAG\n"
    "RUN echo one \\\n    # a comment inside\n    && echo ${TAG}\n"
    "FROM scratch\n"
    "COPY --from=build --chown=1:0 /a /b /dest/\n"
    'ENV A=1 B="two words"\n'
    'CMD ["run", "--flag"]\n'
    "USER nobody\n")


def test_dockerfile_reader_gives_stages_args_copies_env_and_user():
    d = DockerfileView(SAMPLE)
    assert d.images == ["python:3.11-slim", "scratch"]
    assert d.stage_names == ["build", None] and d.stage_lines == [4, 9]
    (run,) = d.all("RUN")
    assert run.line == 6 and run.stage == 0
    assert " ".join(run.expand().split()) == "echo one && echo 3.11-slim"
    (cp,) = d.copies()
    assert (cp.sources, cp.dest, cp.flags, cp.line) == (["/a", "/b"], "/dest/", {"from": "build", "chown": "1:0"}, 10)
    assert d.env() == {"A": "1", "B": "two words"}
    assert d.all("CMD")[0].exec_form() == ["run", "--flag"]
    assert d.user() == "nobody"
    assert d.arg_defaults() == {"BASE": "python", "TAG": "3.11-slim"}


def test_dockerfile_reader_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="no FROM"):
        DockerfileView("RUN echo\n")
    with pytest.raises(ValueError, match="source and a destination"):
        DockerfileView("FROM x\nCOPY only-one\n").copies()
    with pytest.raises(json.JSONDecodeError):
        DockerfileView('FROM x\nCMD ["unterminated"\n').all("CMD")[0].exec_form()


def test_dockerignore_matching_last_pattern_wins():
    rules = "# comment\n*\n!airflow_mbt/\n!dags/mbt_loader.py\n**/__pycache__\n"
    assert dockerignore_allows(rules, "airflow_mbt/cli/main.py")
    assert dockerignore_allows(rules, "dags/mbt_loader.py")
    assert not dockerignore_allows(rules, "dags/other.py")
    assert not dockerignore_allows(rules, "tests/unit/x.py")
    assert not dockerignore_allows(rules, "airflow_mbt/__pycache__/x.pyc")


# ---------------------------------------------------------------- hadolint

def test_dockerfiles_pass_hadolint():
    code, findings = hadolint(*map(str, DOCKERFILES))
    blocking = [f for f in findings if f["level"] in ("error", "warning")]
    assert code == 0 and not blocking, describe(blocking)


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nCMD python -m http.server\n")
    code, findings = hadolint(str(bad))
    assert code != 0
    assert {"DL3006", "DL3013"} <= {f["code"] for f in findings}, describe(findings)


def test_hadolint_rejects_syntax_the_reader_would_accept(tmp_path):
    """dockerfile-parse is lenient; hadolint is the syntax gate (unknown instruction, no FROM)."""
    for name, text in (("typo", "FROM python:3.11-slim\nRUNN echo\n"), ("no-from", "RUN echo\n")):
        bad = tmp_path / name
        bad.write_text(text)
        code, findings = hadolint(str(bad))
        assert code != 0 and findings, (name, describe(findings))


# ---------------------------------------------------------------- runner image

def test_runner_image_base_matches_locked_airflow_and_python():
    airflow = pins("requirements/lock.txt")["apache-airflow"]
    d = runner()
    assert d.images == [f"apache/airflow:{airflow}-python3.11"], (
        f"{RUNNER_DOCKERFILE}:{d.stage_lines[0]}: FROM must be the official image of the locked "
        f"Airflow {airflow} on Python 3.11")


def test_runner_image_installs_jre17_and_libpq_as_root_then_drops_to_airflow():
    d = runner()
    apt = [i for i in d.all("RUN") if "apt-get install" in i.value]
    assert apt, "no apt-get install in the runner image"
    packages = set(apt[0].expand().split("apt-get install", 1)[1].split("&&")[0].split())
    assert {"openjdk-17-jre-headless", "libpq5"} <= packages
    users = [(i.line, i.expand()) for i in d.all("USER")]
    assert [u for line, u in users if line < apt[0].line][-1] == "root"
    assert d.user() == "airflow", "the image must not end as root"


def test_runner_image_pins_match_pyproject_and_lock():
    d = runner()
    args = d.arg_defaults()
    assert args["H2O_VERSION"] == pins("pyproject.toml")["h2o"] == "3.46.0.11"
    assert args["MLFLOW_VERSION"] == pins("requirements/lock.txt")["mlflow"]
    assert args["AIRFLOW_VERSION"] == pins("requirements/lock.txt")["apache-airflow"]
    (pip,) = [i for i in d.all("RUN") if "pip install" in i.value]
    words = pip.words()
    for pin in (f"apache-airflow=={args['AIRFLOW_VERSION']}", f"h2o=={args['H2O_VERSION']}",
                f"mlflow=={args['MLFLOW_VERSION']}"):
        assert pin in words, f"{RUNNER_DOCKERFILE}:{pip.line}: pip install must keep {pin}"
    copied_src = {c.dest.rstrip("/") for c in d.copies() if "pyproject.toml" in c.sources}
    assert copied_src & set(words), "pip install must install the copied airflow-mbt source"


def test_runner_image_installs_the_locked_versions():
    """The image's one pip install is constrained by requirements/lock.txt, copied into the image,
    and the versions it names explicitly are the locked ones: every dependency gets the version
    the tests ran on."""
    d = runner()
    (pip,) = [i for i in d.all("RUN") if "pip install" in i.value]
    words = pip.words()
    flag = next((w for w in ("--constraint", "-c") if w in words), None)
    assert flag, f"{RUNNER_DOCKERFILE}:{pip.line}: pip install needs --constraint requirements/lock.txt"
    constraint = words[words.index(flag) + 1]
    [lock_copy] = [c for c in d.copies() if "requirements/lock.txt" in c.sources]
    assert lock_copy.dest == constraint, f"{constraint} is not the copied lock ({lock_copy.dest})"
    locked = pins("requirements/lock.txt")
    args = d.arg_defaults()
    named = set()
    for word in words:
        name, sep, version = word.strip('"').partition("==")
        if sep:
            named.add(name)
            version = version.replace("${AIRFLOW_VERSION}", args["AIRFLOW_VERSION"]).replace(
                "${H2O_VERSION}", args["H2O_VERSION"]).replace("${MLFLOW_VERSION}", args["MLFLOW_VERSION"])
            assert locked.get(name) == version, f"{RUNNER_DOCKERFILE}:{pip.line}: {name}=={version}, lock has " \
                                                f"{locked.get(name)}"
    assert {"apache-airflow", "h2o", "mlflow"} <= named, named


def test_runner_image_copy_sources_exist_and_pass_its_dockerignore():
    ignore = (ROOT / "runner_image" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    copies = runner().copies()
    assert copies
    for cp in copies:
        assert "from" not in cp.flags
        for src in cp.sources:
            assert (ROOT / src).exists(), f"{RUNNER_DOCKERFILE}:{cp.line}: COPY source {src} is not in the repo"
            assert dockerignore_allows(ignore, src), f"COPY source {src} is excluded by the dockerignore"
    assert not dockerignore_allows(ignore, "tests/unit/deploy/test_dockerfile.py")
    assert not dockerignore_allows(ignore, ".venv/bin/python")


def test_runner_image_bakes_the_loader_dag_and_manifests_uri():
    d = runner()
    assert any(c.sources == ["dags/mbt_loader.py"] and c.dest.startswith("/opt/airflow/dags/")
               for c in d.copies())
    assert d.env()["MBT_MANIFESTS_URI"] == manifests_uri_default()


def test_runner_image_healthcheck_runs_the_mbt_entry_point():
    (hc,) = runner().all("HEALTHCHECK")
    cmd = json.loads(hc.value.split("CMD", 1)[1])
    assert cmd == ["mbt", "--version"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "mbt" in scripts
    out = subprocess.run([str(MBT), "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.startswith("mbt "), out.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_hold_no_secrets(path):
    d = DockerfileView.read(path)
    for name, default in d.arg_defaults().items():
        assert not (is_credential_name(name) and default), f"{path}: ARG {name} has a secret-looking default"
    for name, value in d.env().items():
        assert not (is_credential_name(name) and value), f"{path}: ENV {name} bakes a secret"
    assert not REALISTIC_SECRET.search(path.read_text(encoding="utf-8"))


def test_secret_check_catches_a_baked_credential():
    d = DockerfileView("FROM python:3.11-slim\nARG DB_PASSWORD=hunter2\nENV AWS_SECRET_ACCESS_KEY=abc\n")
    assert [n for n, v in d.arg_defaults().items() if is_credential_name(n) and v] == ["DB_PASSWORD"]
    assert [n for n, v in d.env().items() if is_credential_name(n) and v] == ["AWS_SECRET_ACCESS_KEY"]


# ---------------------------------------------------------------- project image (mbt init)

def test_project_dockerfile_builds_on_the_versioned_base_image():
    from airflow_mbt import __version__

    d = project_dockerfile()
    assert d.images == [f"zot-registry:5050/airflow-mbt:{__version__}"]
    ignore = (PROJECT_FILES / ".dockerignore").read_text(encoding="utf-8")
    for local_only in ("target/x/manifest.json", "local_artifacts/a", "mlruns/mlflow.db", ".git/HEAD"):
        assert not dockerignore_allows(ignore, local_only), local_only
    for needed in ("lib/features.py", "pipelines/training_churn_model_v1.yaml", "profiles.yaml"):
        assert (PROJECT_FILES / needed).exists() and dockerignore_allows(ignore, needed), needed
    workdir = d.all("WORKDIR")[-1].expand()
    assert d.env()["AIRFLOW__MBT__PROJECT_DIR"] == workdir
    assert "project_dir" in provider_info()["config"]["mbt"]["options"]


def test_mbt_init_writes_the_deployment_files(tmp_path):
    out = subprocess.run([str(MBT), "init", "demo", "--dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    for name in ("Dockerfile", ".woodpecker.yml", ".dockerignore"):
        expected = (PROJECT_FILES / name).read_text().replace("__IMAGE_NAME__", "demo")
        assert (tmp_path / "demo" / name).read_text() == expected, name
