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

XCom and the model asset: the steps that move a model alias (``promote``, ``apply_promotion``:
``XCOM_STEPS``) run with ``do_xcom_push``. The pod gets env ``MBT_XCOM_FILE=/airflow/xcom/return.json``,
``mbt step execute`` writes the step result there once the step succeeded (the value
``MBTStepOperator`` returns in-process), the provider's sidecar hands it back, it becomes the
task's XCom (the approval form reads its ``summary``), and after the pod finished the operator
adds the model asset's event to the ``AssetAlias`` outlet when the summary says the alias moved
(``emit_asset_event``, as in-process). An env var, not an argument: a runner image older than
this ignores it (no XCom, as before) instead of failing on an unknown option. The sidecar
container gets the step container's ``security_context`` (a restricted namespace admits the pod).
Other steps run without the sidecar (one container per pod; nothing reads their XCom).
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes.client import models as k8s

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults

from airflow_mbt.constants import XCOM_FILE_ENV
from airflow_mbt.errors import MBTInputError, classify_exit_code
from airflow_mbt.operators.run_id import RUN_ID_TEMPLATE, RunIdTemplateMixin
from airflow_mbt.operators.step import emit_asset_event
from airflow_mbt.step_specs import APPLY_PROMOTION_STEP, PROMOTE_STEP

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


# the steps whose result the task needs back from the pod: the summary of the alias move (approval
# form, asset event); ``mbt step execute`` writes it to $MBT_XCOM_FILE, the xcom sidecar reads it
XCOM_STEPS = frozenset({PROMOTE_STEP.name, APPLY_PROMOTION_STEP.name})
XCOM_FILE = f"{PodDefaults.XCOM_MOUNT_PATH}/return.json"
NOBODY = 65534  # the sidecar's user when the pod must run as non-root and names no user


def sidecar_security_context(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The xcom sidecar's securityContext: the step container's (``executor.config.security_context``),
    so a namespace enforcing the restricted Pod Security Standard admits the pod; ``None`` (the
    provider's default, or the Kubernetes connection's extra) when none is set. With
    ``runAsNonRoot`` and no ``runAsUser`` on the container or the pod, the sidecar (alpine, root by
    default) runs as ``nobody``, else the kubelet would refuse to start it."""
    context = cfg.get("security_context")
    if not context:
        return None
    out = dict(context)
    pod = cfg.get("pod_security_context") or {}
    if out.get("runAsNonRoot") and "runAsUser" not in out and "runAsUser" not in pod:
        out["runAsUser"] = NOBODY
    return out


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
        kwargs.setdefault("do_xcom_push", step in XCOM_STEPS)
        if kwargs["do_xcom_push"]:
            env.append(k8s.V1EnvVar(name=XCOM_FILE_ENV, value=XCOM_FILE))
            kwargs.setdefault("xcom_sidecar_container_security_context", sidecar_security_context(cfg))
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
        return self._step_result(context, super().execute(context))  # deferrable: see trigger_reentry

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        """A deferrable pod's end: the same as after ``execute`` in sync mode."""
        return self._step_result(context, super().trigger_reentry(context, event))

    def _step_result(self, context: Any, result: Any) -> Any:
        """After the pod succeeded: the step result it wrote (``MBT_XCOM_FILE``, read back by the
        sidecar) is the XCom value; when its summary names the model asset (the alias moved), add
        the asset's event to the ``AssetAlias`` outlet, exactly as ``MBTStepOperator`` does."""
        if isinstance(result, dict):
            emit_asset_event(context, self.outlets, result.get("summary") or {})
        elif self.do_xcom_push:
            self.log.warning("mbt step %s.%s: the pod wrote no result to %s (a runner image older than the "
                             "operator?): no XCom summary, no asset event", self.pipeline, self.step, XCOM_FILE)
        return result

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
