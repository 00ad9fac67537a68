"""Airflow operators running manifest steps: in-process (``MBTStepOperator``) or in a Kubernetes
pod (``MBTKubernetesStepOperator``). Exports are lazy: importing this package loads nothing, and
only touching ``MBTKubernetesStepOperator`` pulls in the cncf-kubernetes provider."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "MBTStepOperator": "airflow_mbt.operators.step",
    "MBTKubernetesStepOperator": "airflow_mbt.operators.kubernetes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
