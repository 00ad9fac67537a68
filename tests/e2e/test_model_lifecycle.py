"""The model lifecycle on live Airflow (marker ``airflow_live``): registry aliases, the promote gate,
human approval through the HITL REST API, and serving triggered by the model's asset event.

One scratch project (``mbt init``) with tiny sklearn pipelines that all register ONE model
(unique per session), deployed with ``mbt deploy --target prod`` to the manifests prefix Airflow
reads (env ``MBT_MANIFESTS_URI``, default the shared ``manifests/``):

1. ``weak`` (a depth-1 tree) trains first: no champion yet, so it becomes champion.
2. ``serving`` follows ``model@champion`` with ``on_model_change: true`` (cadence OR asset).
3. ``strong`` (a forest) beats the re-scored champion: the alias moves, the asset event triggers
   the serving DAG, which scores with the new champion: ``churn_predictions.model_run_id`` is the
   strong run, with no YAML edit and no redeploy; its drift check (``monitoring``) writes one
   ``model_monitoring`` row per monitored column and metric, against the champion's reference.
4. ``gate`` (approval required, promote always; its own registered model, so it runs beside the
   champion flow): a run approved through the REST API moves the alias; a rejected run leaves it
   (and succeeds, ``apply_promotion`` skipped).
Each DAG's first run is the one unpausing creates (catchup off: the latest interval).
Browser screenshots assert on page text: the MLflow registered model page with ``champion``, the
Airflow Assets page, and the approval form.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml
from browser import open_page, screenshot, wait_for_texts
from screenshot import airflow_login
from spec_workflow import cli_env, edit_profile_for_local_stack, sh
from stack_clients import MLFLOW_URI, mlflow_client, s3_client, s3_delete_prefix, warehouse

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

MANIFESTS_URI = os.environ.get("MBT_MANIFESTS_URI", "s3://mbt-pipeline-artifacts/manifests/")
# Unique per session: run ids derive from (pipeline, Airflow run id), and the MLflow database
# outlives a session's S3, so a fixed name would meet an earlier session's MLflow run of the
# same scheduled date (whose artifacts are gone) and reuse it as a retry would.
TOKEN = uuid.uuid4().hex[:6]
WEAK, STRONG, GATE, SERVE = (f"e2e_life_{kind}_{TOKEN}_v1" for kind in ("weak", "strong", "gate", "serving"))
TRAINING_YAML = """base_pipeline: _base_churn
project: {{name: {name}, tags: [e2e, lifecycle]}}
deployment: {{mode: batch, cadence: monthly}}
training:
  split: {{test_size: 0.25, seed: 42, stratify: true}}
  model_training:
    framework: sklearn
    config: {config}
  evaluation:
    primary_metric: roc_auc
    generate_plots: false
    validation_criteria: ["roc_auc >= 0.5"]
  registration:
    model_name: {model}
    promote: {promote}
    approval: {approval}
"""
SERVING_YAML = """base_pipeline: _base_churn
project: {{name: {name}, tags: [e2e, lifecycle, serving]}}
deployment: {{mode: batch, cadence: daily, on_model_change: true}}
training:
  model_training: {{framework: sklearn}}
serving:
  model_source: {{model_name: {model}, alias: champion}}
  data_source: {{scoring_table: customers_to_score}}
  output: {{destination: database, table: churn_predictions, include_probabilities: true}}
  monitoring: {{max_psi: 0.25, on_breach: warn}}
"""


def _pipelines(model: str) -> dict[str, str]:
    weak = "{model: DecisionTreeClassifier, max_depth: 1}"
    strong = "{model: RandomForestClassifier, n_estimators: 40, max_depth: 6, random_state: 1}"
    train = {WEAK: (weak, "if_better", "none"), STRONG: (strong, "if_better", "none"), GATE: (weak, "always", "required")}
    out = {name: TRAINING_YAML.format(name=name, config=cfg, model=f"{model}_gate" if name == GATE else model,
                                      promote=promote, approval=approval)
           for name, (cfg, promote, approval) in train.items()}
    out[SERVE] = SERVING_YAML.format(name=SERVE, model=model)
    return out


@pytest.fixture(scope="module")
def lifecycle(airflow, stack_env, tmp_path_factory):
    """The deployed scratch project; afterwards its manifests, DAGs and registered model go."""
    env = cli_env(stack_env)
    root = tmp_path_factory.mktemp("lifecycle")
    sh("mbt init life-project", root, env)
    project = root / "life-project"
    edit_profile_for_local_stack(project)
    profiles = project / "profiles.yaml"
    doc = yaml.safe_load(profiles.read_text())
    next(iter(doc.values()))["outputs"]["prod"]["manifests"]["uri"] = MANIFESTS_URI
    profiles.write_text(yaml.safe_dump(doc, sort_keys=False))
    for path in (project / "pipelines").glob("[!_]*.yaml"):
        path.unlink()
    model = f"e2e_life_churn_{uuid.uuid4().hex[:8]}"
    for name, text in _pipelines(model).items():
        (project / "pipelines" / f"{name}.yaml").write_text(text)
    s3 = s3_client(stack_env)
    bucket, prefix = MANIFESTS_URI.removeprefix("s3://").split("/", 1)
    for name in (WEAK, STRONG, GATE, SERVE):
        s3_delete_prefix(s3, bucket, f"{prefix}{name}/")
    sh(f"mbt compile --target prod && mbt deploy --target prod -s {WEAK} -s {STRONG} -s {GATE}", project, env)
    yield {"project": project, "env": env, "model": model, "bucket": bucket, "prefix": prefix}
    for name in (WEAK, STRONG, GATE, SERVE):
        s3_delete_prefix(s3, bucket, f"{prefix}{name}/")
        airflow.retire_dag(name)
    for name in (model, f"{model}_gate"):
        try:
            mlflow_client().delete_registered_model(name)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _first_run(airflow, dag_id: str, timeout: float = 180) -> str:
    """Unpause ``dag_id`` and return the run that creates (catchup off: the latest interval)."""
    airflow.wait_for_dag(dag_id, timeout=180)
    airflow.unpause(dag_id)
    deadline = time.monotonic() + timeout
    while not (runs := airflow.dag_runs(dag_id)):
        assert time.monotonic() < deadline, f"unpausing {dag_id} started no run"
        time.sleep(3)
    return runs[0]["dag_run_id"]


def _summary(airflow, dag_id: str, run_id: str, task: str) -> dict:
    return airflow.xcom(dag_id, run_id, task)["summary"]


def _champion(model: str):
    return mlflow_client().get_model_version_by_alias(model, "champion")


def _wait_hitl(airflow, dag_id: str, run_id: str, timeout: float = 300) -> dict:
    path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            f"/taskInstances/approve_promotion/-1/hitlDetails")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = airflow.try_get(path)
        if detail:
            return detail
        time.sleep(3)
    raise AssertionError(f"no approval request for {dag_id} {run_id}:\n{airflow.describe_tasks(dag_id, run_id)}")


def _respond(airflow, dag_id: str, run_id: str, option: str) -> None:
    path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            f"/taskInstances/approve_promotion/-1/hitlDetails")
    airflow._raw("PATCH", path, {"chosen_options": [option], "params_input": {}})


def test_champion_gate_asset_serving_and_approval(lifecycle, airflow, stack_env, screenshots_dir):
    model, project, env = lifecycle["model"], lifecycle["project"], lifecycle["env"]
    gate_model = f"{model}_gate"
    # the approval pipeline registers its own model, so it runs beside the champion flow
    gate_run = _first_run(airflow, GATE)

    # 1. the first model has nothing to beat
    weak_run = _first_run(airflow, WEAK)
    airflow.wait_for_run(WEAK, weak_run, timeout=600)
    first = _summary(airflow, WEAK, weak_run, "promote")
    assert first["decision"] == "promoted" and _champion(model).version == first["challenger"]["version"]

    # 2. serving follows the alias (cadence OR the model asset); deployed after the first champion
    sh(f"mbt deploy --target prod --select {SERVE}", project, env)
    airflow.wait_for_dag(SERVE, timeout=180)
    assert "Asset" in str(airflow.dag_details(SERVE).get("timetable_summary")), airflow.dag_details(SERVE)
    _first_run(airflow, SERVE)  # its cadence run; the asset-triggered one comes next

    # 3. a better model takes the alias; its asset event runs serving with it
    strong_run = _first_run(airflow, STRONG)

    # meanwhile: approval required (promote: always) -> the form shows both metrics; approve
    form = _wait_hitl(airflow, GATE, gate_run, timeout=900)
    assert "challenger" in form["body"] and "champion" in form["body"] and "roc_auc" in form["body"], form
    with open_page() as page:
        airflow_login(page, f"/dags/{GATE}/runs/{urllib.parse.quote(gate_run, safe='')}/tasks/approve_promotion")
        wait_for_texts(page, ["approve_promotion"], timeout_s=90)
        page.goto(page.url.rstrip("/") + "/required_actions")
        text = wait_for_texts(page, ["Approve", "Reject", "challenger"], timeout_s=90)
        screenshot(page, screenshots_dir / "airflow_approval_form.png")
    assert "roc_auc" in text
    assert _gate_champion(gate_model) is None  # nothing moved before the approval
    _respond(airflow, GATE, gate_run, "Approve")
    assert _gate_end(airflow, gate_run, "Approve")["state"] == "success"
    applied = _summary(airflow, GATE, gate_run, "apply_promotion")
    assert applied["decision"] == "promoted" and _gate_champion(gate_model) == applied["challenger"]["version"]

    airflow.wait_for_run(STRONG, strong_run, timeout=900)
    won = _summary(airflow, STRONG, strong_run, "promote")
    assert won["decision"] == "promoted", won
    assert won["challenger"]["value"] > won["champion"]["value"]  # the champion re-scored on this test set
    champion = _champion(model)
    assert champion.version == won["challenger"]["version"] and champion.run_id == won["challenger"]["run_id"]

    # a rejected approval leaves the alias, and the run succeeds as "not promoted"
    rejected_run = airflow.trigger(GATE)["dag_run_id"]
    deadline = time.monotonic() + 600
    while not (runs := [r for r in airflow.dag_runs(SERVE) if r["run_type"] == "asset_triggered"]):
        assert time.monotonic() < deadline, f"the asset event did not trigger {SERVE}: {airflow.dag_runs(SERVE)}"
        time.sleep(5)
    airflow.wait_for_run(SERVE, runs[0]["dag_run_id"], timeout=900)
    served = _summary(airflow, SERVE, runs[0]["dag_run_id"], "load_model")
    assert served["version"] == champion.version
    with warehouse(stack_env) as conn:
        ids = conn.execute("SELECT DISTINCT model_run_id FROM public.churn_predictions WHERE pipeline_name = %s "
                           "AND serving_run_id = %s", (SERVE, _mbt_run_id(airflow, SERVE, runs[0]["dag_run_id"]))
                           ).fetchall()
    assert ids == [(champion.run_id,)]
    # drift: one row per (monitored column, metric) of this serving run, against the champion's reference
    reference = mlflow_client().download_artifacts(champion.run_id, "reference_stats.json", str(screenshots_dir))
    ref = json.loads(Path(reference).read_text(encoding="utf-8"))
    with warehouse(stack_env) as conn:
        rows = conn.execute("SELECT feature, metric, value, model_run_id FROM public.model_monitoring "
                            "WHERE pipeline_name = %s AND serving_run_id = %s",
                            (SERVE, _mbt_run_id(airflow, SERVE, runs[0]["dag_run_id"]))).fetchall()
    assert {f for f, *_ in rows} == set(ref["features"]) | set(ref["predictions"]), rows
    assert {f for f, m, *_ in rows if m == "psi"} == set(ref["features"]) | set(ref["predictions"])
    assert {r[3] for r in rows} == {champion.run_id} and all(r[2] is not None for r in rows)

    before = _gate_champion(gate_model)
    _wait_hitl(airflow, GATE, rejected_run, timeout=900)
    _respond(airflow, GATE, rejected_run, "Reject")
    assert _gate_end(airflow, rejected_run, "Reject")["state"] == "success"
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(GATE, rejected_run)}
    assert states["apply_promotion"] == "skipped", states
    assert _gate_champion(gate_model) == before

    # browser: the registered model page with its aliases, the Assets page
    with open_page() as page:
        page.goto(f"{MLFLOW_URI}/#/models/{model}")
        wait_for_texts(page, [model, "champion", "challenger"], timeout_s=90)
        screenshot(page, screenshots_dir / "mlflow_registered_model.png")
        airflow_login(page, "/assets")
        wait_for_texts(page, [f"mbt_model__{model}__champion"], timeout_s=90)
        screenshot(page, screenshots_dir / "airflow_assets.png")


def _gate_end(airflow, run_id: str, option: str) -> dict:
    """The gate run's end, once ``option`` was given. Should the resumed approval task fail, its
    retry asks again (a new try is a new form: Airflow's behaviour), so the same answer is given
    to it, printing the task states and logs of the failed try to show why."""
    deadline = time.monotonic() + 600
    answered = {1}
    while (run := airflow.dag_run(GATE, run_id))["state"] not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{GATE} {run_id} did not end:\n{airflow.describe_tasks(GATE, run_id)}"
        ti = {t["task_id"]: t for t in airflow.task_instances(GATE, run_id)}["approve_promotion"]
        if ti["state"] == "awaiting_input" and ti["try_number"] not in answered:
            print(f"approve_promotion asked again on try {ti['try_number']}:\n{airflow.describe_tasks(GATE, run_id)}")
            _respond(airflow, GATE, run_id, option)
            answered.add(ti["try_number"])
        time.sleep(5)
    assert run["state"] == "success", airflow.describe_tasks(GATE, run_id)
    return run


def _gate_champion(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client().get_model_version_by_alias(name, "champion").version
    except MlflowException:
        return None


def _mbt_run_id(airflow, dag_id: str, run_id: str) -> str:
    return airflow.xcom(dag_id, run_id, "load_model", key="mbt_run_id")
