"""Spec section 9 end to end on the live local stack, and the section 11 verification checklist.

The ``spec_workflow`` fixture (conftest.py -> spec_workflow.py) runs phases A-D once as a new
user would: ``mbt init`` in a scratch folder, validate, compile and run locally (run_id_1), the
project's ``.woodpecker.yml`` commands run literally (validate, compile, deploy), the training DAG
triggered in Airflow (run_id_2), the best run by roc_auc chosen through the MLflow API and written
into the serving pipeline, serving run locally, CI again, the serving DAG triggered. The tests
below are the checklist items, each against the real service.
"""

from __future__ import annotations

import io
import json
import tarfile
import urllib.parse
from pathlib import Path

import pytest

from spec_workflow import EXPERIMENT, SERVING, TRAINING
from stack_clients import MLFLOW_URI, mlflow_client, s3_client, s3_keys, warehouse

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.services, pytest.mark.airflow_live, pytest.mark.h2o]


def test_airflow_runs_the_manifests_ci_compiled(spec_workflow, airflow):
    """What CI compiled in the project (target/<name>/manifest.json, --target prod) is what the
    loader DAG built: same schedule and the same content hash in the DAG's documentation."""
    print("phase timings (s):", json.dumps(spec_workflow.timings))
    assert any("mbt deploy" in c for c in spec_workflow.ci_commands["deploy"])
    for name in (TRAINING, SERVING):
        manifest = json.loads((spec_workflow.project / "target" / name / "manifest.json").read_text())
        assert manifest["target"]["name"] == "prod"
        details = airflow.dag_details(name)
        assert manifest["content_hash"] in (details.get("doc_md") or ""), details.get("doc_md")
        assert sorted(t["task_id"] for t in airflow.get(f"/api/v2/dags/{name}/tasks")["tasks"]) == \
            sorted(s["name"] for s in manifest["steps"])


def test_goal1_mlflow_experiment_holds_local_and_airflow_runs(spec_workflow):
    client = mlflow_client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None
    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], max_results=1000)}
    assert len(runs) >= 2
    assert spec_workflow.run_id_1 in runs and spec_workflow.run_id_2 in runs
    assert spec_workflow.run_id_1 != spec_workflow.run_id_2
    assert runs[spec_workflow.run_id_1].data.tags["target"] == "dev"
    assert runs[spec_workflow.run_id_2].data.tags["target"] == "prod"


def test_goal1_prod_run_metrics_params_tags(spec_workflow):
    run = mlflow_client().get_run(spec_workflow.run_id_2)
    assert run.info.status == "FINISHED"
    for metric in ("roc_auc", "accuracy", "f1", "precision", "recall"):
        assert 0.0 <= run.data.metrics[metric] <= 1.0, (metric, run.data.metrics)
    assert run.data.params["framework"] == "h2o_automl"
    assert run.data.params["problem_type"] == "binary_classification"
    assert run.data.tags["pipeline_name"] == TRAINING
    assert run.data.tags["mbt_run_id"] == spec_workflow.mbt_run_id_2


def test_goal1_model_artifacts_in_mlflow_bucket(spec_workflow, stack_env, tmp_path):
    """The prod run's model lives in SeaweedFS bucket mbt-mlflow-artifacts (proxied by MLflow)
    and downloads through the MLflow API."""
    client = mlflow_client()
    run = client.get_run(spec_workflow.run_id_2)
    model_uri = run.data.tags["mbt_model_uri"]
    assert model_uri.startswith("models:/")
    model = client.get_logged_model(model_uri.split("/", 1)[1].strip("/"))
    location = urllib.parse.urlparse(model.artifact_location)
    assert location.scheme == "mlflow-artifacts", model.artifact_location
    keys = s3_keys(s3_client(stack_env), "mbt-mlflow-artifacts", location.path.lstrip("/"))
    assert any(k.endswith("MLmodel") for k in keys), keys[:20]
    assert any("/artifacts/" in k and not k.endswith("MLmodel") for k in keys), keys[:20]
    # "Model artifact downloadable": the MLmodel file comes back through the tracking server
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{model.artifact_location}/MLmodel",
                                                tracking_uri=MLFLOW_URI, dst_path=str(tmp_path))
    assert "python_function" in Path(local).read_text()


def test_best_run_chosen_by_roc_auc_is_in_serving_pipeline(spec_workflow):
    client = mlflow_client()
    aucs = {r: client.get_run(r).data.metrics["roc_auc"] for r in (spec_workflow.run_id_1, spec_workflow.run_id_2)}
    # the choice has the best roc_auc (both runs can tie: same data, same AutoML seed)
    assert aucs[spec_workflow.chosen_run_id] == max(aucs.values())
    text = (spec_workflow.project / "pipelines" / f"{SERVING}.yaml").read_text()
    assert f'run_id: "{spec_workflow.chosen_run_id}"' in text


def test_local_serving_wrote_predictions(spec_workflow):
    import csv

    with open(spec_workflow.dev_serving_output, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(spec_workflow.project / "sample_data" / "customers_to_score.csv", newline="") as fh:
        ids = {r["customer_id"] for r in csv.DictReader(fh)}
    assert {"customer_id", "prediction", "prediction_probability"} <= set(rows[0])
    assert {r["customer_id"] for r in rows} == ids and len(rows) == len(ids)
    assert {r["prediction"] for r in rows} <= {"0", "1"}
    assert all(0.0 <= float(r["prediction_probability"]) <= 1.0 for r in rows)


def test_goal2_scores_in_postgres(spec_workflow, stack_env):
    run_id = spec_workflow.serving_run_id
    with warehouse(stack_env) as conn:
        expected = {r[0] for r in conn.execute("SELECT customer_id FROM customers_to_score")}
        rows = conn.execute(
            "SELECT customer_id, prediction, prediction_probability, execution_date, model_run_id "
            "FROM churn_predictions WHERE serving_run_id = %s", (run_id,)).fetchall()
        per_run = conn.execute(
            "SELECT serving_run_id, count(*), count(DISTINCT customer_id) FROM churn_predictions "
            "GROUP BY serving_run_id").fetchall()
    assert expected, "customers_to_score is empty"
    assert len(rows) == len(expected) and {r[0] for r in rows} == expected  # one row per customer
    assert {r[1] for r in rows} <= {0, 1}
    assert all(0.0 <= r[2] <= 1.0 for r in rows)
    assert all(r[3] is not None for r in rows)
    assert {r[4] for r in rows} == {spec_workflow.chosen_run_id}
    # serving_run_id identifies one serving execution: never two rows of a customer under one id
    assert all(total == distinct for _, total, distinct in per_run)


def test_goal3_both_dags_scheduled_and_successful(spec_workflow, airflow):
    from spec_workflow import SCHEDULES

    for dag_id, schedule, dag_run in ((TRAINING, "@monthly", spec_workflow.training_dag_run),
                                      (SERVING, "@daily", spec_workflow.serving_dag_run)):
        dag = airflow.get(f"/api/v2/dags/{dag_id}")
        assert dag["timetable_summary"] in SCHEDULES[schedule]
        assert not dag["is_paused"]
        runs = {r["dag_run_id"]: r["state"] for r in airflow.dag_runs(dag_id)}
        assert runs[dag_run] == "success"
        states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(dag_id, dag_run)}
        assert set(states.values()) == {"success"}, states
    train_tasks = [ti["task_id"] for ti in airflow.task_instances(TRAINING, spec_workflow.training_dag_run)]
    assert sorted(train_tasks) == sorted(["load_data", "split_data", "train_model", "evaluate", "log_run",
                                          "promote"])


def test_pipeline_artifacts_bucket_holds_run_folders(spec_workflow, stack_env):
    s3 = s3_client(stack_env)
    for pipeline, run_id in ((TRAINING, spec_workflow.mbt_run_id_2), (SERVING, spec_workflow.serving_run_id)):
        keys = s3_keys(s3, "mbt-pipeline-artifacts", f"{pipeline}/{run_id}/")  # keys are <pipeline>/<run_id>/...
        assert f"{pipeline}/{run_id}/.artifact_registry.json" in keys, keys[:20]
        registry = json.loads(s3.get_object(Bucket="mbt-pipeline-artifacts",
                                            Key=f"{pipeline}/{run_id}/.artifact_registry.json")["Body"].read())
        assert registry["run_id"] == run_id
        for art in registry["artifacts"].values():
            assert art["key"] in keys, art
    manifests = s3_keys(s3, "mbt-pipeline-artifacts", "manifests/")
    assert any(k.startswith(f"manifests/{TRAINING}/") for k in manifests)
    assert any(k.startswith(f"manifests/{SERVING}/") for k in manifests)


def test_no_secret_in_manifests_task_logs_or_mlflow(spec_workflow, stack_env):
    """The S3 secret key and the warehouse password never show up in what the workflow produced:
    compiled manifests (project and S3), Airflow task, DAG-processor and server logs, MLflow
    params/tags."""
    secrets = {json.loads(stack_env["AIRFLOW_CONN_MBT_S3"])["password"],
               json.loads(stack_env["AIRFLOW_CONN_MBT_WAREHOUSE"])["password"]}
    texts = {}
    for path in (spec_workflow.project / "target").glob("*/manifest.json"):
        texts[str(path)] = path.read_text()
    s3 = s3_client(stack_env)
    for key in s3_keys(s3, "mbt-pipeline-artifacts", "manifests/"):
        body = s3.get_object(Bucket="mbt-pipeline-artifacts", Key=key)["Body"].read()
        where = f"s3://mbt-pipeline-artifacts/{key}"
        if key.endswith(".tar.gz"):  # a release's code archive: every member is checked
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
                assert members, f"empty code archive {where}"
                for member in members:
                    texts[f"{where}!{member.name}"] = tar.extractfile(member).read().decode(errors="replace")
        else:
            texts[where] = body.decode()
    logs = REPO / ".stack" / "airflow" / "logs"
    for dag_id, dag_run in ((TRAINING, spec_workflow.training_dag_run), (SERVING, spec_workflow.serving_dag_run)):
        run_logs = list((logs / f"dag_id={dag_id}" / f"run_id={dag_run}").rglob("*.log"))
        assert run_logs, f"no task logs for {dag_id}/{dag_run} under {logs}"
        texts.update({str(p): p.read_text(errors="replace") for p in run_logs})
    texts.update({str(p): p.read_text(errors="replace") for p in (logs / "dag_processor").rglob("*.log")})
    texts.update({str(p): p.read_text(errors="replace") for p in (REPO / ".stack" / "logs").glob("airflow-*.log")})
    for run_id in (spec_workflow.run_id_1, spec_workflow.run_id_2):
        run = mlflow_client().get_run(run_id)
        texts[f"mlflow run {run_id}"] = json.dumps([run.data.params, run.data.tags])
    leaks = [where for where, text in texts.items() if any(s in text for s in secrets)]
    assert not leaks, f"secret values found in: {leaks}"
