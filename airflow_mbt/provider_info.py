"""Airflow provider metadata for airflow-mbt (returned by ``airflow_mbt.get_provider_info``).

Airflow reads this at start-up in every process, so it is plain data: no imports beyond the
version. It declares the ``h2o`` and ``mlflow`` connection types (with their UI form, which
Airflow >= 3.2 takes from here instead of hook methods), the hooks and operators, and the
``[mbt]`` configuration section. An invalid structure breaks ``import airflow`` everywhere; a
unit test validates it against the installed ``airflow/provider_info.schema.json``.
"""

from __future__ import annotations

from airflow_mbt import __version__

INTEGRATION = "airflow-mbt"

DEFAULT_MANIFESTS_URI = "s3://mbt-pipeline-artifacts/manifests/"
DEFAULT_MANIFESTS_CONN_ID = "mbt_s3"
DEFAULT_CACHE_TTL_SECONDS = 60


def _option(description: str, default, *, type_: str = "string", example=None) -> dict:
    return {"description": description, "version_added": "0.1.0", "type": type_,
            "example": example, "default": default}


def _string_field(label: str, description: str, **schema) -> dict:
    return {"label": label, "description": description,
            "schema": {"type": ["string", "null"], **schema}}


def _bool_field(label: str, description: str, default: bool) -> dict:
    return {"label": label, "description": description,
            "schema": {"type": ["boolean", "null"], "default": default}}


PROVIDER_INFO: dict = {
    "package-name": "airflow-mbt",
    "name": "airflow-mbt",
    "description": "Model build tool: declarative tabular ML pipelines (YAML -> manifest) built into "
                   "Airflow DAGs at parse time, with H2O and MLflow connection types.",
    "versions": [__version__],
    "integrations": [
        {"integration-name": INTEGRATION, "tags": ["ml"]},
    ],
    "hooks": [
        {"integration-name": INTEGRATION,
         "python-modules": ["airflow_mbt.hooks.h2o", "airflow_mbt.hooks.mlflow"]},
    ],
    "operators": [
        {"integration-name": INTEGRATION,
         "python-modules": ["airflow_mbt.operators.step", "airflow_mbt.operators.kubernetes"]},
    ],
    "connection-types": [
        {
            "connection-type": "h2o",
            "hook-class-name": "airflow_mbt.hooks.h2o.H2OHook",
            "hook-name": "H2O cluster",
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"schema": "Protocol"},
                "placeholders": {"host": "127.0.0.1", "port": "54321", "schema": "http",
                                 "login": "(optional) H2O user", "password": "(optional) H2O password"},
            },
            "conn-fields": {
                "verify_ssl": _bool_field("Verify SSL", "Verify the server certificate on https", True),
                "context_path": _string_field("Context path", "Path prefix when H2O sits behind a proxy"),
            },
        },
        {
            "connection-type": "mlflow",
            "hook-class-name": "airflow_mbt.hooks.mlflow.MLflowHook",
            "hook-name": "MLflow tracking server",
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"schema": "Protocol", "password": "Password or token"},
                "placeholders": {"host": "127.0.0.1", "port": "5000", "schema": "http",
                                 "login": "(optional) basic-auth user",
                                 "password": "(optional) password, or a bearer token when login is empty"},
            },
            "conn-fields": {
                "insecure_tls": _bool_field("Skip TLS verification", "Sets MLFLOW_TRACKING_INSECURE_TLS",
                                            False),
                "path": _string_field("Path", "Path prefix of the tracking server, e.g. /mlflow"),
            },
        },
    ],
    "config": {
        "mbt": {
            "description": "airflow-mbt: where the DAG loader finds compiled manifests and how it caches them.",
            "options": {
                "manifests_uri": _option(
                    "Prefix holding compiled manifests (<prefix><pipeline>/manifest.json): an s3:// "
                    "prefix or a local folder. Env MBT_MANIFESTS_URI overrides it.",
                    DEFAULT_MANIFESTS_URI, example="/opt/airflow/mbt/target/"),
                "manifests_conn_id": _option(
                    "Airflow connection (type aws) used to read an s3:// manifests_uri.",
                    DEFAULT_MANIFESTS_CONN_ID),
                "teams": _option(
                    "Ownership rule of a shared Airflow: TEAM[=NAMESPACE], comma-separated. When set, "
                    "manifests are read from <manifests_uri><team>/ per team, and a team's DAG ids must "
                    "start with <team>_ and its pods run in its namespace (default: the team name).", "",
                    example="growth=ml-growth, risk"),
                "cache_dir": _option(
                    "Local cache of fetched manifests; empty means $AIRFLOW_HOME/mbt_cache.", "",
                    example="/tmp/mbt_cache"),
                "cache_ttl_seconds": _option(
                    "Seconds a parse trusts the local cache without asking S3 (0 = always ask).",
                    str(DEFAULT_CACHE_TTL_SECONDS), type_="integer"),
                "project_dir": _option(
                    "Directory that relative paths in a target resolve against (local executor).", "",
                    example="/opt/airflow/mbt"),
                "default_executor": _option(
                    "Executor used when a manifest target has none: local or kubernetes.", "local"),
            },
        },
    },
}
