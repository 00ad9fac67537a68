"""Compile-time checks of a kubernetes target, for the pipeline being compiled.

Step pods get connections only from Kubernetes Secrets (``executor.config.connection_secrets``:
conn id -> Secret name, mounted as ``AIRFLOW_CONN_<ID>`` through ``secretKeyRef``), so:

* every connection the pipeline's steps use on that target (storage, data connector, MLflow,
  and H2O for an ``h2o_automl`` pipeline) must be listed there, else the pod would run without
  it and fail at its first request;
* ``{{ secret('X') }}`` is rejected on a kubernetes target: the pod has no way to get ``X``
  (a Secret would need a name and a key); use a connection (``conn_id``) held in a Kubernetes
  Secret instead (documented in docs/kubernetes.md).

``check_kubernetes_target(target, config)`` raises an ``MBTInputError`` at the profiles.yaml
position of the field, with a hint; other targets pass untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_mbt.project.profiles import _secret_refs

# sections whose conn_id the steps use; manifests.conn_id is for `mbt deploy` and the loader
_CONN_SECTIONS = (("storage", "config"), ("data_connector", "config"), ("mlflow",), ("h2o",))


def used_connections(section: Mapping[str, Any], framework: str | None) -> dict[str, tuple[str, ...]]:
    """conn id -> the section path naming it, for the connections step pods use."""
    out: dict[str, tuple[str, ...]] = {}
    for path in _CONN_SECTIONS:
        if path[0] == "h2o" and framework != "h2o_automl":
            continue
        node: Any = section
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        conn_id = node.get("conn_id") if isinstance(node, Mapping) else None
        if isinstance(conn_id, str) and conn_id:
            out.setdefault(conn_id, path + ("conn_id",))
    return out


def check_kubernetes_target(target: Any, config: Mapping[str, Any]) -> None:
    """See the module docstring; ``target`` is a ``ResolvedTarget``."""
    section = target.section
    executor = section.get("executor") or {}
    if executor.get("type") != "kubernetes":
        return
    for path, name in _secret_refs({k: v for k, v in section.items() if k != "manifests"}, ()):
        raise target.doc.error(target.loc_path(*path), f"{{{{ secret('{name}') }}}} cannot reach the pods of "
                               f"kubernetes target {target.name!r}",
                               hint="put the credential into an Airflow connection held in a Kubernetes Secret "
                                    "and name it with conn_id (listed in executor.config.connection_secrets)")
    framework = ((config.get("training") or {}).get("model_training") or {}).get("framework")
    secrets = (executor.get("config") or {}).get("connection_secrets") or {}
    for conn_id, path in used_connections(section, framework).items():
        if conn_id not in secrets:
            listed = ", ".join(sorted(secrets)) or "none"
            raise target.doc.error(target.loc_path(*path), f"connection {conn_id!r} is not in "
                                   f"executor.config.connection_secrets of kubernetes target {target.name!r} "
                                   f"(listed: {listed})",
                                   hint=f"add `{conn_id}: <Kubernetes Secret name>` to connection_secrets; "
                                        "the Secret holds the connection under the key "
                                        f"{conn_id!r}")
