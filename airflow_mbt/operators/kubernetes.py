"""``MBTKubernetesStepOperator``: run one manifest step as ``mbt step execute`` in a pod.

Image, namespace, service account and the hardening settings (``security_context``,
``pod_security_context``, ``tolerations``, ``node_selector``, ``affinity``,
``priority_class_name``, ``startup_timeout_seconds``) come from the manifest target's
``executor.config``; container requests/limits from the step's ``resources``, else from
``executor.config.default_resources`` (so no step pod runs BestEffort when it is set). Connections reach the pod only as
``AIRFLOW_CONN_<ID>`` env vars that reference Kubernetes Secrets (``secretKeyRef``, key = conn
id, from ``executor.config.connection_secrets``) - never as values. A partitioned step
(``partitioned=True``, in the mapped task group of ``serving.partitions``) is one pod per
partition: its arguments end with ``--partition {{ ti.map_index }}``.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes.client import models as k8s

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from airflow_mbt.errors import MBTInputError, classify_exit_code
from airflow_mbt.operators.run_id import RUN_ID_TEMPLATE, RunIdTemplateMixin

_CONN_ID = re.compile(r"[A-Za-z0-9_]+")
_LABEL = re.compile(r"[^A-Za-z0-9_.-]")


def _iso(expr: str) -> str:
    """Jinja rendering ``expr`` (a datetime or None) as ISO 8601, or '' when None."""
    return f"{{{{ ({expr}).isoformat() if ({expr}) else '' }}}}"


# The run context of the pod, rendered from the task context at run time (``mbt step execute``
# reads '' as absent; the interval is completed from the cadence when start == end).
RUN_CONTEXT_ARGUMENTS = [
    "--logical-date", _iso("dag_run.logical_date or dag_run.run_after"),
    "--interval-start", _iso("dag_run.data_interval_start"),
    "--interval-end", _iso("dag_run.data_interval_end"),
    "--run-type", "{{ dag_run.run_type or '' }}",
    "--dag-id", "{{ dag_run.dag_id }}",
    "--airflow-run-id", "{{ dag_run.run_id }}",
]


# a step of the mapped task group ``partitions`` (serving.partitions): its map index is the partition
PARTITION_ARGUMENTS = ["--partition", "{{ ti.map_index }}"]


def step_arguments(pipeline: str, step: str, target: str, manifest_uri: str, manifest_hash: str,
                   manifest_conn_id: str | None = None) -> list[str]:
    """Arguments of ``mbt`` in the pod (run id, try number and run context rendered at run time)."""
    args = ["step", "execute", "--pipeline", pipeline, "--step", step, "--target", target,
            "--run-id", RUN_ID_TEMPLATE, "--manifest", manifest_uri, "--manifest-hash", manifest_hash,
            "--try-number", "{{ ti.try_number }}", *RUN_CONTEXT_ARGUMENTS]
    if manifest_conn_id:
        args += ["--manifest-conn-id", manifest_conn_id]
    return args


def with_manifest_hash(arguments: list[str], content_hash: str) -> list[str]:
    """``arguments`` of ``step_arguments`` with the value of ``--manifest-hash`` replaced."""
    out = list(arguments)
    for i, arg in enumerate(out[:-1]):
        if arg == "--manifest-hash":
            out[i + 1] = content_hash
    return out


def connection_env(connection_secrets: dict[str, str]) -> list[k8s.V1EnvVar]:
    """``AIRFLOW_CONN_<ID>`` from ``secretKeyRef`` {name: secret, key: conn id} per connection."""
    env = []
    for conn_id, secret in sorted((connection_secrets or {}).items()):
        if not _CONN_ID.fullmatch(str(conn_id)) or not secret:
            raise MBTInputError(f"invalid connection_secrets entry {conn_id!r}: {secret!r}",
                                field="executor.config.connection_secrets",
                                hint="map an Airflow conn id to the name of a Kubernetes Secret holding "
                                     "the connection URI/JSON under the key <conn id>")
        env.append(k8s.V1EnvVar(
            name=f"AIRFLOW_CONN_{str(conn_id).upper()}",
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=conn_id))))
    return env


def container_resources(resources: dict[str, Any] | None) -> k8s.V1ResourceRequirements | None:
    """Step ``resources`` ({"cpu": "2", "memory": "4Gi"}) as equal requests and limits."""
    res = {k: str(v) for k, v in (resources or {}).items() if v not in (None, "")}
    if not res:
        return None
    return k8s.V1ResourceRequirements(requests=dict(res), limits=dict(res))


# executor.config key -> KubernetesPodOperator argument (the profile schema checks the keys)
HARDENING = {"security_context": "container_security_context", "pod_security_context": "security_context",
             "tolerations": "tolerations", "node_selector": "node_selector", "affinity": "affinity",
             "priority_class_name": "priority_class_name", "startup_timeout_seconds": "startup_timeout_seconds"}


def hardening_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """The pod settings a platform team sets in ``executor.config`` (securityContext of the
    container and the pod, tolerations, nodeSelector, affinity, priorityClassName, startup
    timeout) as ``KubernetesPodOperator`` arguments; unset keys keep the operator's defaults."""
    return {arg: cfg[key] for key, arg in HARDENING.items() if cfg.get(key) not in (None, "", [], {})}


def _label(value: str) -> str:
    return _LABEL.sub("-", value)[:63].strip("-_.") or "x"


class MBTKubernetesStepOperator(RunIdTemplateMixin, KubernetesPodOperator):
    """One step of a manifest in its own pod; see the module docstring."""

    template_fields = tuple(KubernetesPodOperator.template_fields) + ("manifest_uri", "manifest_hash")

    def __init__(self, *, pipeline: str, step: str, manifest_uri: str, manifest_hash: str, target: str,
                 executor_config: dict[str, Any] | None = None, resources: dict[str, Any] | None = None,
                 manifest_conn_id: str | None = None, partitioned: bool = False, **kwargs: Any) -> None:
        cfg = dict(executor_config or {})
        image = kwargs.pop("image", None) or cfg.get("image")
        if not image:
            raise MBTInputError(f"pipeline {pipeline!r}: the kubernetes executor needs an image",
                                field=f"outputs.{target}.executor.config.image",
                                hint="e.g. image: zot-registry:5050/mbt-runner:latest")
        env = [k8s.V1EnvVar(name="MBT_RUN_ID", value=RUN_ID_TEMPLATE),
               k8s.V1EnvVar(name="MBT_TRY_NUMBER", value="{{ ti.try_number }}")]
        env += connection_env(cfg.get("connection_secrets") or {})
        kwargs.setdefault("task_id", step)
        kwargs.setdefault("name", f"mbt-{pipeline}-{step}".replace("_", "-").lower()[:50])
        kwargs.setdefault("namespace", cfg.get("namespace"))
        kwargs.setdefault("service_account_name", cfg.get("service_account"))
        kwargs.setdefault("labels", {"app.kubernetes.io/name": "mbt-step", "mbt/pipeline": _label(pipeline),
                                     "mbt/step": _label(step)})
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("on_finish_action", "delete_succeeded_pod")
        if cfg.get("image_pull_policy"):
            kwargs.setdefault("image_pull_policy", cfg["image_pull_policy"])
        kwargs.update({k: v for k, v in hardening_kwargs(cfg).items() if k not in kwargs})
        super().__init__(image=image, cmds=["mbt"],
                         arguments=step_arguments(pipeline, step, target, manifest_uri, manifest_hash,
                                                   manifest_conn_id) + (PARTITION_ARGUMENTS if partitioned else []),
                         env_vars=env + list(kwargs.pop("env_vars", None) or []),
                         container_resources=kwargs.pop("container_resources", None)
                         or container_resources(resources or cfg.get("default_resources")),
                         **kwargs)
        self.pipeline = pipeline
        self.step = step
        self.target = target
        self.manifest_uri = manifest_uri
        self.manifest_hash = manifest_hash

    def execute(self, context: Any) -> Any:
        """Run the pod with the release this DAG run pinned (``release_pin``)."""
        from airflow_mbt.operators.release_pin import pinned_release

        pin = pinned_release(context, self, self.manifest_hash)
        if pin != self.manifest_hash:
            self.arguments = with_manifest_hash(list(self.arguments or []), pin)
            self.manifest_hash = pin
        return super().execute(context)

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None) -> None:
        """A pod that exited with a non-retryable code (bad input, data contract) fails the task
        without further retries."""
        from airflow.sdk.exceptions import AirflowException

        try:
            super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
        except AirflowException as exc:
            raise pod_failure(exc, remote_pod, self.base_container_name, f"{self.pipeline}.{self.step}") from exc


def pod_failure(exc: Exception, remote_pod: Any, container: str, label: str) -> Exception:
    """The exception a failed pod should raise: ``AirflowFailException`` (no retry) when the step
    container exited with a non-retryable code, else ``exc`` itself."""
    kind = classify_exit_code(exit_code(remote_pod, container))
    if not kind.retryable:
        from airflow.sdk.exceptions import AirflowFailException

        return AirflowFailException(f"mbt step {label} failed with a non-retryable error ({kind.category}): {exc}")
    return exc


def exit_code(remote_pod: Any, container: str) -> int | None:
    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            code: int = status.state.terminated.exit_code
            return code
    return None
