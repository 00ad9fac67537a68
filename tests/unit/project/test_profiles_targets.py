"""profiles.yaml: profile/target selection, rendering, secrets, and the manifest target section."""

from __future__ import annotations

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project, find_project

DEV = """\
    dev:
      storage: {type: local, config: {base_path: ./local_artifacts}}
      data_connector: {type: local_file, config: {data_path: ./sample_data}}
      mlflow: {tracking_uri: "sqlite:///mlruns/mlflow.db"}
"""
PROD = """\
    prod:
      executor: {type: kubernetes, config: {namespace: mbt, image: "{{ env_var('IMG', 'runner:1') }}"}}
      storage: {type: s3, config: {bucket: b, endpoint_url: "{{ env_var('S3_URL') }}",
                                   access_key: "{{ secret('S3_ACCESS_KEY') }}", secret_key: "{{ secret('S3_SECRET_KEY') }}"}}
      data_connector: {type: postgres, config: {host: db, port: 5432, user: mbt, password: "{{ secret('PG_PASSWORD') }}"}}
      mlflow: {conn_id: mbt_mlflow}
      h2o: {url: "http://127.0.0.1:54321"}
      manifests: {uri: "s3://b/manifests/", conn_id: mbt_s3}
"""


def project(tmp_path, text, name="demo") -> Project:
    root = tmp_path / name
    root.mkdir()
    (root / "profiles.yaml").write_text(text)
    return Project(root)


def one_profile(name="demo", target="dev"):
    return f"{name}:\n  target: {target}\n  mlflow: {{experiment_name: churn}}\n" \
           f"  orchestrator: {{type: airflow, config: {{default_args: {{retries: 2}}}}}}\n  outputs:\n{DEV}{PROD}"


def test_default_target_section(tmp_path):
    t = resolve_target(project(tmp_path, one_profile("anything")))
    assert (t.profile, t.name, t.warnings) == ("anything", "dev", [])
    assert t.section == {
        "name": "dev", "profile": "anything", "executor": {"type": "local"},
        "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
        "data_connector": {"type": "local_file", "config": {"data_path": "./sample_data"}},
        "mlflow": {"experiment_name": "churn", "tracking_uri": "sqlite:///mlruns/mlflow.db"},
        "h2o": {}, "secrets": {"provider": "env"},
        "orchestrator": {"type": "airflow", "config": {"default_args": {"retries": 2}}}, "manifests": {}}


def test_prod_renders_env_and_keeps_secrets_as_references(tmp_path):
    t = resolve_target(project(tmp_path, one_profile()), "prod", env={"S3_URL": "http://s3:8333"})
    storage = t.section["storage"]["config"]
    assert storage["endpoint_url"] == "http://s3:8333"
    assert storage["access_key"] == {"$secret": "S3_ACCESS_KEY"}
    assert t.section["executor"]["config"]["image"] == "runner:1"
    assert t.section["data_connector"]["config"]["password"] == {"$secret": "PG_PASSWORD"}
    assert t.warnings == []


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_literal_credential_is_an_input_error_in_every_target(tmp_path, target):
    text = one_profile().replace("password: \"{{ secret('PG_PASSWORD') }}\"", "password: hunter2")
    text = text.replace("base_path: ./local_artifacts}", "base_path: ./local_artifacts, token: abc123}")
    with pytest.raises(MBTInputError) as err:
        resolve_target(project(tmp_path, text), target, env={"S3_URL": "http://s3:8333"})
    msg = str(err.value)
    line = 7 if target == "dev" else 14
    assert msg.startswith(f"profiles.yaml:{line}:") and "literal credential" in msg
    assert "hunter2" not in msg and "abc123" not in msg and "secret(" in msg


def test_other_targets_are_not_rendered(tmp_path):
    # prod needs S3_URL, but selecting dev must not care
    assert resolve_target(project(tmp_path, one_profile()), "dev", env={}).name == "dev"
    with pytest.raises(MBTInputError, match="S3_URL"):
        resolve_target(project(tmp_path, one_profile(), name="demo2"), "prod", env={})


def test_several_profiles_pick_the_folder_name(tmp_path):
    text = one_profile("other") + one_profile("demo", target="prod")
    t = resolve_target(project(tmp_path, text), env={"S3_URL": "u"})
    assert (t.profile, t.name) == ("demo", "prod")
    assert resolve_target(project(tmp_path, text, name="demo2"), profile="other").profile == "other"


def test_several_profiles_without_a_match(tmp_path):
    text = one_profile("a") + one_profile("b")
    with pytest.raises(MBTInputError, match="several profiles") as err:
        resolve_target(project(tmp_path, text))
    assert "--profile" in str(err.value)


def test_no_default_target(tmp_path):
    text = one_profile().replace("  target: dev\n", "")
    with pytest.raises(MBTInputError, match="no default `target:`"):
        resolve_target(project(tmp_path, text))
    assert resolve_target(project(tmp_path, text, name="demo2"), "dev").name == "dev"


def test_find_project_walks_up(tmp_path):
    root = project(tmp_path, one_profile()).root
    (root / "pipelines" / "deep").mkdir(parents=True)
    assert find_project(root / "pipelines" / "deep").root == root.resolve()
    with pytest.raises(MBTInputError, match="--project-dir"):
        find_project(project_dir=tmp_path)
