"""Compile checks of kubernetes targets (connections covered by connection_secrets, no
secret()) and default_args durations (a bad value is an input error at compile, a good one a
real timedelta on every task)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from airflow_mbt.constants import parse_duration
from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.compiler import compile_pipeline
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project
from airflow_mbt.scaffold.project_init import init_project

TRAIN = "training_churn_model_v1"


def _project(tmp_path, edit):
    root = init_project("p", tmp_path)
    path = root / "profiles.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc["p"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Project(root)


def _compile(project, target="prod"):
    return compile_pipeline(project, TRAIN, resolve_target(project, target, env={}), env={})


def test_scaffolded_prod_target_compiles(tmp_path):
    assert _compile(_project(tmp_path, lambda p: None)).target_name == "prod"


def test_connection_missing_from_connection_secrets_is_an_input_error(tmp_path):
    def drop(p):
        del p["outputs"]["prod"]["executor"]["config"]["connection_secrets"]["mbt_mlflow"]

    with pytest.raises(MBTInputError, match="'mbt_mlflow' is not in executor.config.connection_secrets") as err:
        _compile(_project(tmp_path, drop))
    assert "profiles.yaml" in err.value.location() and "mbt_mlflow:" in err.value.hint


def test_secret_on_a_kubernetes_target_is_rejected_with_a_hint(tmp_path):
    def secret(p):
        p["outputs"]["prod"]["data_connector"]["config"]["password"] = "{{ secret('PG_PASSWORD') }}"

    with pytest.raises(MBTInputError, match="cannot reach the pods") as err:
        _compile(_project(tmp_path, secret))
    assert "conn_id" in err.value.hint and "profiles.yaml" in err.value.location()


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("1h30m") == 5400 and parse_duration(120) == 120
    assert parse_duration("2d") == 172800 and parse_duration("0.5m") == 30
    for bad in ("ten minutes", "5", "", -1, True, "1h 30x"):
        assert parse_duration(bad) is None, bad


def test_bad_execution_timeout_is_an_input_error_at_compile(tmp_path):
    def bad(p):
        p["orchestrator"]["config"]["default_args"]["execution_timeout"] = "ten minutes"

    with pytest.raises(MBTInputError, match="invalid value 'ten minutes'") as err:
        resolve_target(_project(tmp_path, bad), "dev", env={})
    assert "1h30m" in err.value.hint and "profiles.yaml" in err.value.location()


def test_execution_timeout_becomes_a_timedelta_on_every_task(tmp_path):
    from airflow_mbt.dag_factory import build_dag

    def good(p):
        p["orchestrator"]["config"]["default_args"].update(execution_timeout="1h30m", max_retry_delay=600)

    manifest = _compile(_project(tmp_path, good), "dev")
    dag = build_dag(manifest, "/tmp/unused/manifest.json")
    for task in dag.tasks:
        assert task.execution_timeout == timedelta(hours=1, minutes=30)
        assert task.max_retry_delay == timedelta(minutes=10)
        assert task.retry_delay == timedelta(minutes=5)


def test_retry_delay_and_retry_delay_minutes_together_are_an_input_error(tmp_path):
    """Two keys for one setting: before, retry_delay_minutes silently won over retry_delay."""
    def both(p):
        p["orchestrator"]["config"]["default_args"].update(retry_delay="5s", retry_delay_minutes=5)

    with pytest.raises(MBTInputError, match="retry_delay and retry_delay_minutes both set") as err:
        resolve_target(_project(tmp_path, both), "dev", env={})
    assert "keep one" in err.value.hint and "profiles.yaml" in err.value.location()
    assert "orchestrator.config.default_args" in str(err.value)


def test_retry_delay_alone_reaches_every_task(tmp_path):
    from airflow_mbt.dag_factory import build_dag

    def seconds(p):
        args = p["orchestrator"]["config"]["default_args"]
        args.pop("retry_delay_minutes")
        args["retry_delay"] = "5s"

    dag = build_dag(_compile(_project(tmp_path, seconds), "dev"), "/tmp/unused/manifest.json")
    assert {task.retry_delay for task in dag.tasks} == {timedelta(seconds=5)}
