"""Airflow hooks for the services airflow-mbt talks to that have no official provider: H2O and
MLflow. Connection types ``h2o`` and ``mlflow`` are declared in ``airflow_mbt.provider_info``.
Exports are lazy (``from airflow_mbt.hooks import H2OHook`` imports only that hook)."""

from __future__ import annotations

_EXPORTS = {"H2OHook": "airflow_mbt.hooks.h2o", "MLflowHook": "airflow_mbt.hooks.mlflow"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
