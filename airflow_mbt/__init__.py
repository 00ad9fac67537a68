"""airflow-mbt: declarative tabular ML pipelines, compiled to manifests and run locally or on Airflow.

Airflow imports this module at start-up (provider discovery), so it must stay light:
only the version and ``get_provider_info`` live here, and the latter imports lazily.
"""

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Airflow provider metadata (entry point ``apache_airflow_provider``)."""
    from airflow_mbt.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
