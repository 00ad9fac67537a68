"""The local docker-compose stack (infra/docker-compose.yml): it follows the compose specification,
has every service with build contexts and bind sources that exist, consistent dependencies and
loopback-only ports, credentials as overridable local defaults that match the PostgreSQL init
script, the pinned MLflow/H2O versions, and Airflow on the runner image with only options Airflow
declares.
"""

from __future__ import annotations

import json
import re

import pytest
from deploy_common import (
    COMPOSE,
    CONNECTIONS,
    ROOT,
    DockerfileView,
    compose,
    is_credential_name,
    manifests_uri_default,
    pins,
    profile_prod_image,
    unknown_options,
)

REQUIRED_SERVICES = {"postgres", "seaweedfs", "s3-buckets", "mlflow", "h2o", "gitea", "woodpecker-server",
                     "woodpecker-agent", "airflow-init", "airflow-api-server", "airflow-scheduler",
                     "airflow-dag-processor", "zot"}
HOST_PATHS_ALLOWED = {"/var/run/docker.sock"}


def test_compose_has_every_service_with_sources_that_exist():
    services = compose()["services"]
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
                assert source in compose()["volumes"], f"{name}: volume {source} is not declared"


def test_compose_dependencies_and_ports_are_consistent():
    services = compose()["services"]
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
    doc = compose()
    agent = doc["services"]["woodpecker-agent"]["environment"]
    assert agent["WOODPECKER_BACKEND_DOCKER_NETWORK"] == doc["networks"]["mbt"]["name"]
    assert agent["WOODPECKER_SERVER"].split(":")[0] == "woodpecker-server"
    zot = doc["services"]["zot"]
    assert "zot-registry" in zot["networks"]["mbt"]["aliases"]
    config = json.loads((COMPOSE.parent / "zot" / "config.json").read_text(encoding="utf-8"))
    registry_port = profile_prod_image().split("/")[0].split(":")[1]
    assert config["http"]["port"] == registry_port, "zot-registry:<port> must work inside the network too"
    assert f"127.0.0.1:{registry_port}:{registry_port}" in zot["ports"]


def test_compose_file_follows_the_compose_specification():
    from compose_spec import PyCompose

    doc = compose()
    spec = PyCompose.from_json(json.dumps(doc))   # PyYAML has already applied the x-airflow merge
    spec.validate()
    assert set(spec.service_names()) == set(doc["services"])
    broken = json.loads(json.dumps(doc))
    broken["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps(broken))


def test_compose_credentials_are_overridable_local_defaults():
    for name, svc in compose()["services"].items():
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
    services = compose()["services"]
    assert DockerfileView.read(ROOT / "infra" / "h2o" / "Dockerfile").arg_defaults()["H2O_VERSION"] \
        == pins("pyproject.toml")["h2o"]
    assert DockerfileView.read(ROOT / "infra" / "mlflow" / "Dockerfile").arg_defaults()["MLFLOW_VERSION"] \
        == pins("requirements/lock.txt")["mlflow"]
    cmd = services["mlflow"]["command"]
    backend = cmd[cmd.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow_db")
    assert cmd[cmd.index("--artifacts-destination") + 1] == "s3://mbt-mlflow-artifacts/"
    assert "mlflow:5000" in cmd[cmd.index("--allowed-hosts") + 1].split(",")
    assert set(services["s3-buckets"]["environment"]["S3_BUCKETS"].split(",")) == \
        {"mbt-mlflow-artifacts", "mbt-pipeline-artifacts"}


def test_compose_airflow_runs_the_runner_image_on_airflow_db():
    from airflow_mbt import __version__

    services = compose()["services"]
    commands = {}
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        svc = services[name]
        assert svc["build"] == {"context": "..", "dockerfile": "runner_image/Dockerfile"}, name
        assert svc["image"].endswith(f"/airflow-mbt:{__version__}")
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow_db")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server:8080/")
        assert env["MBT_MANIFESTS_URI"] == manifests_uri_default()
        for conn_id, conn_type in CONNECTIONS.items():
            assert json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])["conn_type"] == conn_type
        commands[name] = svc["command"]
    assert commands == {"airflow-init": ["db", "migrate"], "airflow-api-server": ["api-server"],
                        "airflow-scheduler": ["scheduler"], "airflow-dag-processor": ["dag-processor"]}


def test_compose_airflow_env_sets_only_options_airflow_declares():
    pairs = set()
    for svc in compose()["services"].values():
        for key in svc.get("environment", {}):
            if key.startswith("AIRFLOW__"):
                section, _, option = key[len("AIRFLOW__"):].lower().partition("__")
                pairs.add((section, option))
    assert pairs and unknown_options(sorted(pairs)) == []
