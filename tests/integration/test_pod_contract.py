"""The pod contract, run for real (issue 12 point 4): Kubernetes cannot run here, but what its
pods would run can. For every step of a training and a (partitioned) serving pipeline compiled
for the kubernetes executor, the pod ``MBTKubernetesStepOperator`` renders
(``build_pod_request_obj``) is taken as it is: its env is resolved from the Secret it references
- ``infra/k8s/secret-templates/mbt-secrets.yaml`` filled with the local stack's connections - and
its command and arguments run as a process in an empty working directory with ONLY that env (plus
PATH to the venv's ``mbt``), against the real stack (PostgreSQL, S3, MLflow). Both pipelines
complete; the serving pipeline's 2 mapped partitions are 2 pods, then ``verify``.

The training pipeline registers its model with ``approval: required`` (issue 11): the pods of
``promote`` and ``apply_promotion`` mount the xcom ``emptyDir`` (a folder of the pod here) and
write the step result to ``$MBT_XCOM_FILE``, which is what the provider's sidecar hands back as
the task's XCom: the approval form renders from promote's file, and apply_promotion's (the alias
moved) adds the model asset's event to the task's ``AssetAlias`` outlet.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from airflow_mbt.dag_factory import build_dag
from airflow_mbt.manifest import Manifest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
SECRET_TEMPLATE = REPO / "infra" / "k8s" / "secret-templates" / "mbt-secrets.yaml"
VENV_BIN = Path(sys.executable).parent
TRAIN, SERVE, OUTPUT = "h_scale_pod_train", "h_scale_pod_serve", "h_scale_pod_predictions"
MODEL = f"h_pod_churn_{uuid.uuid4().hex[:8]}"  # a registered model of its own: no champion yet
WHEN = datetime(2026, 5, 1, tzinfo=timezone.utc)
# the image's `mbt`: the venv's entry point running this checkout (what the image installs)
CODE = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "PYTHONPATH": str(REPO)}

TRAINING_YAML = f"""base_pipeline: _base_churn
project: {{name: {TRAIN}}}
deployment: {{mode: batch, cadence: monthly}}
training:
  model_training:
    framework: sklearn
    config: {{model: RandomForestClassifier, n_estimators: 10, max_depth: 4}}
  evaluation: {{primary_metric: roc_auc, generate_plots: false, validation_criteria: ["roc_auc >= 0.55"]}}
  registration: {{model_name: {MODEL}, approval: required}}
"""
SERVING_YAML = """base_pipeline: _base_churn
project: {{name: {serve}}}
deployment: {{mode: batch, cadence: daily}}
training: {{model_training: {{framework: sklearn}}}}
serving:
  model_source: {{registry: mlflow, run_id: "{run_id}"}}
  data_source: {{scoring_table: customers_to_score}}
  partitions: {{count: 2, by: customer_id}}
  output: {{destination: database, table: {output}}}
"""


def filled_secrets(stack_env: dict) -> dict[str, dict[str, str]]:
    """The Secret template's data with every connection taken from the local stack (what an
    operator does when applying it to a cluster)."""
    doc = yaml.safe_load(SECRET_TEMPLATE.read_text())
    # mbt_logs is Airflow's remote-logging connection (Helm values), not a step's: the local stack
    # has one S3, so it is the same connection as mbt_s3 here
    local = {**stack_env, "AIRFLOW_CONN_MBT_LOGS": stack_env["AIRFLOW_CONN_MBT_S3"]}
    data = {key: local[f"AIRFLOW_CONN_{key.upper()}"] for key in doc["stringData"]}
    return {doc["metadata"]["name"]: data}


def pod_env(container: dict, secrets: dict) -> dict[str, str]:
    env = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] in secrets, f"the pod references Secret {ref['name']!r}, not in {SECRET_TEMPLATE}"
        env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def empty_dirs(spec: dict, container: dict, cwd: Path) -> dict[str, Path]:
    """The container's ``emptyDir`` mounts (the xcom sidecar's ``/airflow/xcom``) as fresh folders
    of the pod's working directory: mount path -> folder."""
    volumes = {v["name"] for v in spec["spec"].get("volumes") or [] if "emptyDir" in v}
    mounts = {m["mountPath"]: cwd / "volumes" / m["name"] for m in container.get("volumeMounts") or []
              if m["name"] in volumes}
    for folder in mounts.values():
        folder.mkdir(parents=True)
    return mounts


def in_volumes(env: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    """``env`` with paths under a mount path pointing into its folder (what the mount does in a pod)."""
    out = dict(env)
    for name, value in env.items():
        for mount, folder in mounts.items():
            if value.startswith(mount.rstrip("/") + "/"):
                out[name] = str(folder / value[len(mount.rstrip("/")) + 1:])
    return out


def run_pods(manifest: Manifest, pinned_uri: str, secrets: dict, workdir: Path,
             xcom: dict | None = None) -> tuple[list[str], str]:
    """Render and run every step's pod in order (a mapped step: one pod per map index); returns
    the steps run and the mbt run id the pods shared. A pod with the xcom sidecar: the JSON its
    step wrote to the xcom file (what the sidecar reads back) goes to ``xcom[step]``."""
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from kubernetes.client import ApiClient

    from airflow_mbt.partitions import is_partitioned_step, plan_of

    dag = build_dag(manifest, pinned_uri, manifest_conn_id="mbt_s3")
    dag_run = DagRun(dag_id=dag.dag_id, run_id=f"manual__{uuid.uuid4().hex[:8]}", logical_date=WHEN, run_after=WHEN,
                     data_interval=(WHEN, WHEN), run_type="manual")
    plan = plan_of(manifest.config)
    ran = []
    for step in manifest.steps:
        mapped = is_partitioned_step(plan, step.name)
        for index in range(plan.count) if mapped and plan else [-1]:
            # a fresh copy per task instance, as Airflow gives each (rendering replaces the templates)
            op = copy.deepcopy(dag.get_task(f"partitions.{step.name}" if mapped else step.name))
            ti = TaskInstance(op, run_id=dag_run.run_id, dag_version_id=None, map_index=index)
            ti.try_number = 1
            op.render_template_fields({"dag_run": dag_run, "ti": ti})
            spec = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
            containers = {c["name"]: c for c in spec["spec"]["containers"]}
            container = containers.pop(op.base_container_name)
            assert set(containers) == ({PodDefaults.SIDECAR_CONTAINER_NAME} if op.do_xcom_push else set())
            cwd = workdir / f"{step.name}-{index}"
            cwd.mkdir(parents=True)  # an empty working directory, as in the image
            mounts = empty_dirs(spec, container, cwd)
            env = {**CODE, "HOME": str(cwd), **in_volumes(pod_env(container, secrets), mounts)}
            proc = subprocess.run(container["command"] + container["args"], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=600, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, (f"pod of {step.name}[{index}] exited {proc.returncode}:\n"
                                          f"{container['args']}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            ran.append(f"{step.name}[{index}]" if mapped else step.name)
            if op.do_xcom_push and xcom is not None:  # the sidecar: cat /airflow/xcom/return.json
                result = mounts[PodDefaults.XCOM_MOUNT_PATH] / "return.json"
                xcom[step.name] = json.loads(result.read_text()) if result.exists() else None
    from airflow_mbt.runtime.run_id import run_id_from_airflow

    return ran, run_id_from_airflow(dag.dag_id, dag_run.run_id, WHEN)


def test_rendered_pods_of_both_pipelines_complete_as_processes(tmp_path, stack_env, pg_warehouse, s3_prefix):
    from airflow_mbt.manifests.store import publish_manifests
    from airflow_mbt.scaffold.project_init import init_project

    project = init_project("h_scale_pods", tmp_path)
    for name in ("training_churn_model_v1", "serving_churn_model_v1"):
        (project / "pipelines" / f"{name}.yaml").unlink()
    (project / "pipelines" / f"{TRAIN}.yaml").write_text(TRAINING_YAML)
    env = {**stack_env, **CODE, "HOME": str(tmp_path)}
    secrets = filled_secrets(stack_env)
    dest = f"s3://mbt-pipeline-artifacts/{s3_prefix}/"

    def compile_and_publish(name: str) -> tuple[Manifest, str]:
        proc = subprocess.run(["mbt", "compile", name, "--target", "prod"], cwd=project, env=env, text=True,
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        manifest = Manifest.read(project / "target" / name / "manifest.json")
        assert manifest.target.executor.type == "kubernetes"
        [change] = publish_manifests([manifest], dest, conn_id="mbt_s3", project_dir=project)  # ships lib/
        return manifest, change["pinned_uri"]

    import mlflow

    mlflow.set_tracking_uri(stack_env["MBT_MLFLOW_URI"])
    training, uri = compile_and_publish(TRAIN)
    xcom: dict = {}
    try:
        ran, run_id = run_pods(training, uri, secrets, tmp_path / "train-pods", xcom)
        assert ran == [s.name for s in training.steps] and ran[-2:] == ["promote", "apply_promotion"]
        check_lifecycle_xcom(training, uri, xcom, run_id)
    finally:
        try:
            mlflow.MlflowClient().delete_registered_model(MODEL)
        except mlflow.exceptions.MlflowException:
            pass
    [model_run] = mlflow.search_runs(experiment_names=["churn_prediction"], output_format="list", max_results=1,
                                     filter_string=f"tags.mbt_run_id = '{run_id}'")

    pg_warehouse.execute(f"DROP TABLE IF EXISTS public.{OUTPUT}")
    (project / "pipelines" / f"{SERVE}.yaml").write_text(SERVING_YAML.format(
        serve=SERVE, run_id=model_run.info.run_id, output=OUTPUT))
    serving, uri = compile_and_publish(SERVE)
    try:
        ran, _ = run_pods(serving, uri, secrets, tmp_path / "serve-pods")
        assert ran == ["load_model", *(f"{s}[{i}]" for s in ("load_scoring_data", "apply_transforms", "predict",
                                                             "publish") for i in range(2)), "verify"]
        rows = pg_warehouse.execute(f"SELECT mbt_partition, count(*) FROM public.{OUTPUT} GROUP BY 1 ORDER BY 1"
                                    ).fetchall()
        source = pg_warehouse.execute("SELECT count(*) FROM public.customers_to_score").fetchone()[0]
        assert [r[0] for r in rows] == [0, 1] and sum(r[1] for r in rows) == source
    finally:
        pg_warehouse.execute(f"DROP TABLE IF EXISTS public.{OUTPUT}")


def check_lifecycle_xcom(training: Manifest, uri: str, xcom: dict, run_id: str) -> None:
    """promote's XCom file renders the approval form; apply_promotion's (run under a DAG: approved)
    moved the alias and gives the model asset its event."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_mbt.operators.step import emit_asset_event
    from airflow_mbt.step_specs import model_asset

    assert set(xcom) == {"promote", "apply_promotion"}  # the only pods with the sidecar
    promote = xcom["promote"]
    assert (promote["name"], promote["status"], promote["run_id"]) == ("promote", "success", run_id)
    summary = promote["summary"]
    assert (summary["decision"], summary["model_name"], summary["champion"]) == ("awaiting_approval", MODEL, None)
    assert "asset_uri" not in summary  # nothing moved yet

    class TaskInstance:  # what the form's template calls: ti.xcom_pull(task_ids='promote')
        def xcom_pull(self, task_ids: str, **_: object) -> dict:
            return xcom[task_ids]

    dag = build_dag(training, uri, manifest_conn_id="mbt_s3")
    form = copy.deepcopy(dag.get_task("approve_promotion"))
    form.render_template_fields({"ti": TaskInstance()})
    version = summary["challenger"]["version"]
    assert f"### Promote `{MODEL}` version {version} to `champion`?" in form.body
    assert f"| challenger | {version} | `{summary['challenger']['run_id']}` | {summary['challenger']['value']} |" \
        in form.body and "| champion | none yet |" in form.body and "awaiting_approval" in form.body

    applied = xcom["apply_promotion"]["summary"]
    assert (applied["decision"], applied["alias_moved"], applied["asset_uri"]) == \
        ("promoted", True, model_asset(MODEL, "champion")[1])
    context = {"outlet_events": OutletEventAccessors()}
    op = dag.get_task("apply_promotion")
    emit_asset_event(context, op.outlets, applied)  # what the operator does after the pod
    [alias] = op.outlets
    [event] = context["outlet_events"][alias].asset_alias_events
    assert event.dest_asset_key.uri == applied["asset_uri"] and event.extra["version"] == version
