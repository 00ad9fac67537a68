"""Provider registration: the metadata Airflow loads at start-up is valid and complete."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jsonschema
import pytest

import airflow_mbt
from airflow_mbt.provider_info import PROVIDER_INFO


def _airflow_schema(name: str) -> dict:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text())


def test_get_provider_info_validates_against_airflow_schema():
    info = airflow_mbt.get_provider_info()
    jsonschema.validate(info, _airflow_schema("provider_info.schema.json"))
    assert info["package-name"] == "airflow-mbt"
    assert info["versions"] == [airflow_mbt.__version__]


def test_connection_types_match_provider_yaml_schema():
    """conn-fields / ui-field-behaviour (read by Airflow >= 3.2) follow provider.yaml's schema."""
    item_schema = _airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    types = {c["connection-type"]: c for c in PROVIDER_INFO["connection-types"]}
    assert set(types) == {"h2o", "mlflow"}
    for conn in types.values():
        jsonschema.validate(conn, item_schema)
        assert conn["ui-field-behaviour"]["relabeling"]["schema"] == "Protocol"
        assert conn["conn-fields"]


def test_declared_classes_and_modules_exist_and_agree():
    for conn in PROVIDER_INFO["connection-types"]:
        module, _, cls_name = conn["hook-class-name"].rpartition(".")
        hook_cls = getattr(importlib.import_module(module), cls_name)
        assert hook_cls.conn_type == conn["connection-type"]
        assert hook_cls.hook_name == conn["hook-name"]
    for section in ("hooks", "operators"):
        for entry in PROVIDER_INFO[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


@pytest.mark.parametrize("option,default", [
    ("manifests_uri", "s3://mbt-pipeline-artifacts/manifests/"),
    ("manifests_conn_id", "mbt_s3"),
    ("default_executor", "local"),
    ("teams", ""),
])
def test_mbt_config_section_defaults(option, default):
    options = PROVIDER_INFO["config"]["mbt"]["options"]
    assert options[option]["default"] == default
    assert {"cache_dir", "cache_ttl_seconds", "project_dir"} <= set(options)


def test_providers_manager_discovers_the_provider():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "airflow-mbt" in pm.providers
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["h2o"].hook_class_name == "airflow_mbt.hooks.h2o.H2OHook"
    assert hooks["mlflow"].connection_id_attribute_name == "mlflow_conn_id"
    assert pm.field_behaviours["mlflow"]["relabeling"]["schema"] == "Protocol"
