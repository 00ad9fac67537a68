"""``execution_timeout`` is a real timeout on live Airflow 3 (issue 13).

A tiny sklearn training pipeline on the stack's ``customers`` table is deployed with
``orchestrator.config.default_args: {execution_timeout: 20s, retries: 1, retry_delay: 2s}``. Its
``split_data`` step runs a custom transform (``lib/hold.py``) that waits while a HOLD file exists,
so that step hangs. The DAG run is triggered over REST, and the test checks:

- ``split_data`` times out: each of its two tries (the retry is Airflow's decision for a
  timeout, so a timeout must not be reported as bad input) ends ``failed`` after 20 s plus start-up
  overhead, and its log shows the task SDK's ``Process timed out`` and ``AirflowTaskTimeout``;
- ``load_data`` succeeded; every task after ``split_data`` is ``upstream_failed``; the run fails;
- ``split_data`` left nothing behind: its outputs are not in the run's artifact registry and there
  are no keys under ``<pipeline>/<run_id>/split_data/``;
- the pipeline's MLflow run (opened by ``load_data``) ended FAILED with ``mbt_failed_step=split_data``.
  Before the fix in ``runtime/executor.py`` it stayed RUNNING forever: ``AirflowTaskTimeout`` is a
  ``BaseException`` there, and only ``Exception`` and ``StepTerminated`` ended the run.

Airflow 3's task SDK enforces the timeout inside the task process: ``_run_execute_callable``
wraps ``execute`` in ``TimeoutPosix`` (``SIGALRM``), whose handler logs ``Process timed out`` and
raises ``AirflowTaskTimeout`` in the main thread, wherever the step is (here in the user's
transform). mbt lets it through unchanged (not an ``Exception``: neither the transform's
``except Exception`` nor ``attach_step`` wraps it), so Airflow retries it; ``on_kill`` is then
called after ``execute`` returned and does nothing.

The DAG id is unique per session, and this file does not use the session ``airflow`` fixture,
which deletes every mbt DAG (its ``forget_mbt_dags``) on an Airflow other sessions may be using.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import yaml

from airflow_api import AirflowAPI, AirflowAPIError
from spec_workflow import REPO, cli_env, edit_profile_for_local_stack, sh
from stack_clients import mlflow_client, s3_client, s3_delete_prefix, s3_keys
import hold_transform

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

NAME = f"e2e_timeout_{uuid.uuid4().hex[:6]}"
EXPERIMENT = "e2e_timeout"
TIMEOUT_S, RETRIES = 20, 1
HANGS = "split_data"  # runs training.preprocessing.custom_transforms
BUCKET = "mbt-pipeline-artifacts"  # the prod target's storage
MANIFESTS_URI = os.environ.get("MBT_MANIFESTS_URI", f"s3://{BUCKET}/manifests/")

PIPELINE = f"""\
base_pipeline: _base_churn
project: {{name: {NAME}, experiment_name: {EXPERIMENT}, tags: [e2e, timeout]}}
deployment: {{mode: batch, cadence: monthly}}
training:
  split: {{test_size: 0.3, seed: 7, stratify: true}}
  preprocessing:
    custom_transforms: ["lib.hold:hold"]
  model_training:
    framework: sklearn
    config: {{model: DecisionTreeClassifier, max_depth: 3}}
  evaluation:
    primary_metric: roc_auc
    generate_plots: false
    validation_criteria: []
"""
# Waits while HOLD exists (at most 240 s, so a timeout that never fires cannot hang a worker for
# long); the test removes HOLD at the end either way.
HOLD = f"/tmp/mbt-e2e-timeout-hold-{os.getpid()}"
HOLD_PY = hold_transform.source(HOLD, 240)


@pytest.fixture()
def live_airflow(stack_env) -> AirflowAPI:
    """The running Airflow, logged in; started (idempotently) only when it does not answer."""
    api = AirflowAPI()
    try:
        api.health()
    except AirflowAPIError:
        up = subprocess.run(["bash", "scripts/airflow.sh", "up"], cwd=REPO, capture_output=True, text=True,
                            timeout=420)
        if up.returncode != 0:
            pytest.fail(f"`scripts/airflow.sh up` exited {up.returncode}:\n{up.stdout}{up.stderr}", pytrace=False)
    try:
        health = api.health()
        api.token()
    except AirflowAPIError as err:
        pytest.fail(f"Airflow is not answering: {err}", pytrace=False)
    bad = {k: v for k, v in health.items() if k != "triggerer" and (v or {}).get("status") != "healthy"}
    if bad:
        pytest.fail(f"Airflow components unhealthy: {bad}", pytrace=False)
    return api


@pytest.fixture()
def hanging_pipeline(live_airflow, stack_env, tmp_path):
    """`mbt init`, the pipeline above with the hold transform and the short timeout, compiled for
    prod and `mbt deploy`ed; manifests, run artifacts and the DAG are removed afterwards."""
    env = cli_env(stack_env)
    sh("mbt init timeout-project", tmp_path, env)
    project = tmp_path / "timeout-project"
    edit_profile_for_local_stack(project)
    for name in ("training_churn_model_v1", "serving_churn_model_v1"):
        (project / "pipelines" / f"{name}.yaml").unlink()
    (project / "pipelines" / f"{NAME}.yaml").write_text(PIPELINE)
    (project / "lib" / "hold.py").write_text(HOLD_PY)
    profiles = project / "profiles.yaml"
    doc = yaml.safe_load(profiles.read_text())
    default_args = next(iter(doc.values()))["orchestrator"]["config"]["default_args"]
    default_args.pop("retry_delay_minutes", None)
    default_args.update(execution_timeout=f"{TIMEOUT_S}s", retries=RETRIES, retry_delay="2s")
    profiles.write_text(yaml.safe_dump(doc, sort_keys=False))

    bucket, _, prefix = MANIFESTS_URI.removeprefix("s3://").partition("/")
    s3 = s3_client(stack_env)
    t0 = time.monotonic()
    sh(f"mbt compile {NAME} --target prod && mbt deploy --target prod --select {NAME} --to {MANIFESTS_URI}",
       project, env)
    print(f"e2e timeout: compiled and deployed in {time.monotonic() - t0:.0f}s", flush=True)
    manifest = json.loads((project / "target" / NAME / "manifest.json").read_text())
    yield manifest
    if os.path.exists(HOLD):
        os.unlink(HOLD)
    s3_delete_prefix(s3, bucket, f"{prefix}{NAME}/")
    live_airflow.retire_dag(NAME)
    s3_delete_prefix(s3, BUCKET, f"{NAME}/")
    for run in _mlflow_runs():
        mlflow_client().delete_run(run.info.run_id)


def _mlflow_runs(mbt_run_id: str | None = None) -> list:
    client = mlflow_client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    query = f"tags.pipeline_name = '{NAME}'" + (f" and tags.mbt_run_id = '{mbt_run_id}'" if mbt_run_id else "")
    return client.search_runs([experiment.experiment_id], query) if experiment else []


def _manual_run(api: AirflowAPI) -> str:
    """Trigger a run over REST (the DAG still paused), then unpause. Unpausing also makes the
    scheduler create the run of the latest monthly tick (catchup=False still runs it); that one
    is marked failed as soon as it shows up, so the triggered run is the only one that runs."""
    run_id = str(api.trigger(NAME)["dag_run_id"])
    api.unpause(NAME)
    return run_id


def _fail_other_runs(api: AirflowAPI, run_id: str) -> set[str]:
    others = {run["dag_run_id"] for run in api.dag_runs(NAME)
              if run["dag_run_id"] != run_id and run["state"] not in ("success", "failed")}
    for other in others:
        api.set_run_state(NAME, other, "failed")
    return others


def _seconds(ti: dict) -> float:
    start, end = (datetime.fromisoformat(ti[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()


def test_execution_timeout_fails_the_hanging_step(hanging_pipeline, live_airflow, stack_env):
    api = live_airflow
    manifest = hanging_pipeline
    steps = [s["name"] for s in manifest["steps"]]
    assert steps[:2] == ["load_data", HANGS], steps

    t0 = time.monotonic()
    api.wait_for_dag(NAME, timeout=120)
    print(f"\ne2e timeout: DAG {NAME} listed after {time.monotonic() - t0:.0f}s", flush=True)
    open(HOLD, "w").close()
    started = time.monotonic()
    try:
        run_id = _manual_run(api)
        # both tries of split_data, each TIMEOUT_S plus process start-up, and the retry delay
        deadline = time.monotonic() + 60 + (RETRIES + 1) * (TIMEOUT_S + 25)
        others: set[str] = set()
        while True:
            others |= _fail_other_runs(api, run_id)
            run = api.dag_run(NAME, run_id)
            if run["state"] in ("success", "failed"):
                break
            assert time.monotonic() < deadline, (f"{NAME}/{run_id} still {run['state']} after "
                                                 f"{time.monotonic() - started:.0f}s:\n"
                                                 f"{api.describe_tasks(NAME, run_id)}")
            time.sleep(2)
    finally:
        os.unlink(HOLD)
    elapsed = time.monotonic() - started
    print(f"e2e timeout: run {run_id} ended {run['state']} {elapsed:.0f}s after the trigger "
          f"(other runs marked failed: {sorted(others) or 'none'})", flush=True)
    assert run["state"] == "failed", api.describe_tasks(NAME, run_id)

    tis = {ti["task_id"]: ti for ti in api.task_instances(NAME, run_id)}
    hung = tis[HANGS]
    assert hung["state"] == "failed" and hung["try_number"] == RETRIES + 1, api.describe_tasks(NAME, run_id)
    assert tis["load_data"]["state"] == "success", api.describe_tasks(NAME, run_id)
    after = sorted(set(tis) - {"load_data", HANGS})
    assert after and all(tis[t]["state"] == "upstream_failed" for t in after), \
        {t: tis[t]["state"] for t in after}

    # the last try ran execute for TIMEOUT_S (its start_date also covers the process start-up)
    assert TIMEOUT_S <= _seconds(hung) < TIMEOUT_S + 30, hung
    for attempt in range(1, RETRIES + 2):
        log = api.task_log(NAME, run_id, HANGS, attempt)
        print(f"e2e timeout: {HANGS} try {attempt}:", *[line for line in log.splitlines()
                                                         if "TaskTimeout" in line or "timed out" in line], sep="\n  ")
        assert "Process timed out" in log and "AirflowTaskTimeout" in log, log[-4000:]
        # a timeout is not the user's bad input: no AirflowFailException, so Airflow retried it
        assert "AirflowFailException" not in log and "(input)" not in log, log[-4000:]

    # nothing of split_data was kept: not registered, no keys under its folder
    mbt_run_id = api.xcom(NAME, run_id, HANGS, key="mbt_run_id")
    s3 = s3_client(stack_env)
    registry = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{NAME}/{mbt_run_id}/.artifact_registry.json")[
        "Body"].read())["artifacts"]
    assert {e["step"] for e in registry.values()} == {"load_data"}, registry
    assert s3_keys(s3, BUCKET, f"{NAME}/{mbt_run_id}/{HANGS}/") == []
    # the pipeline's MLflow run does not stay RUNNING
    [mlflow_run] = _mlflow_runs(mbt_run_id)
    assert mlflow_run.info.status == "FAILED", (mlflow_run.info, mlflow_run.data.tags)
    assert mlflow_run.data.tags.get("mbt_failed_step") == HANGS, mlflow_run.data.tags
