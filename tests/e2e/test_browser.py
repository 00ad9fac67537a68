"""Browser checks: what a person sees in the Airflow 3 UI and the MLflow UI after the spec workflow.

Headless Chromium over the DevTools protocol (chromium.py): the Airflow login form is filled like
a user would, then the DAG list and each DAG's runs are read from the rendered page text and
saved as screenshots under test-artifacts/screenshots/. The MLflow run page of the Airflow run
must show its metrics, parameters and artifacts.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from airflow_api import AIRFLOW_URL, ADMIN
from chromium import Browser
from screenshot import airflow_login
from spec_workflow import EXPERIMENT, SCHEDULES, SERVING, TRAINING
from stack_clients import MLFLOW_URI, mlflow_client

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]


def schedule_shown(page_text: str, dag_id: str) -> str:
    """The schedule the DAG list card shows for ``dag_id`` (the line after 'Schedule')."""
    match = re.search(re.escape(dag_id) + r"\s*\n(?:.*\n){0,20}?\s*Schedule\s*\n\s*([^\n]+)", page_text)
    assert match, f"no schedule shown for {dag_id} in:\n{page_text[:3000]}"
    return match.group(1).strip()


def test_airflow_login_rejects_wrong_password(airflow):
    with Browser() as b:
        b.navigate(f"{AIRFLOW_URL}/dags")
        b.wait_for("document.querySelector('input[name=username]') !== null", what="the login form")
        b.type_into("input[name=username]", ADMIN[0])
        b.type_into("input[name=password]", "not-the-password")
        b.press_enter()
        b.wait_for("document.body.innerText.toLowerCase().includes('invalid')", what="a login error")
        assert b.url().startswith(f"{AIRFLOW_URL}/auth/login")


def test_airflow_dag_list_shows_both_dags_and_schedules(spec_workflow, airflow, screenshots_dir):
    with Browser() as b:
        airflow_login(b, "/dags")
        text = b.wait_for_texts([TRAINING, SERVING], timeout=60)
        shot = b.screenshot(screenshots_dir / "airflow_dag_list.png")
        print(f"screenshot: {shot}")
        assert schedule_shown(text, TRAINING) in SCHEDULES["@monthly"]
        assert schedule_shown(text, SERVING) in SCHEDULES["@daily"]

        for dag_id, dag_run in ((TRAINING, spec_workflow.training_dag_run),
                                (SERVING, spec_workflow.serving_dag_run)):
            b.navigate(f"{AIRFLOW_URL}/dags/{dag_id}/runs")
            runs_text = b.wait_for_texts([dag_run, "Success"], timeout=60)
            shot = b.screenshot(screenshots_dir / f"airflow_{dag_id}_runs.png")
            print(f"screenshot: {shot}")
            assert "Success" in run_row(runs_text, dag_run), runs_text[:3000]


def run_row(page_text: str, dag_run: str) -> str:
    """The text of the DAG runs table row of ``dag_run`` (up to the next run id)."""
    after = page_text.split(dag_run, 1)[1]
    return re.split(r"\n\s*(?:manual|scheduled|backfill|asset_triggered)__", after, maxsplit=1)[0]


def test_mlflow_run_page_shows_metrics_params_and_artifacts(spec_workflow, screenshots_dir):
    run = mlflow_client().get_run(spec_workflow.run_id_2)
    page = f"{MLFLOW_URI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    with Browser() as b:
        b.navigate(page)
        metrics = ["roc_auc", "accuracy", "f1", "precision", "recall"]
        text = b.wait_for_texts([run.info.run_id, *metrics, "framework", "h2o_automl",
                                 "binary_classification", TRAINING], timeout=90)
        shot = b.screenshot(screenshots_dir / "mlflow_run_overview.png", height=1800)
        print(f"screenshot: {shot}")
        shown = re.search(r"roc_auc\s*\n\s*([0-9.]+)", text)  # the value itself, not only the name
        assert shown and abs(float(shown.group(1)) - run.data.metrics["roc_auc"]) < 1e-3, text[:3000]

        b.navigate(page + "/artifacts")
        b.wait_for_texts(["metrics.json", "preprocessor.json"], timeout=90)
        shot = b.screenshot(screenshots_dir / "mlflow_run_artifacts.png")
        print(f"screenshot: {shot}")


def test_mlflow_compares_local_and_airflow_runs(spec_workflow, screenshots_dir):
    """Spec step 9: the DS compares run_id_1 (local dev) and run_id_2 (Airflow prod) side by side
    in the MLflow UI before choosing one."""
    client = mlflow_client()
    exp_id = client.get_run(spec_workflow.run_id_2).info.experiment_id
    runs = [client.get_run(r) for r in (spec_workflow.run_id_1, spec_workflow.run_id_2)]
    assert spec_workflow.mbt_run_id_1 in runs[0].info.run_name
    assert spec_workflow.mbt_run_id_2 in runs[1].info.run_name
    query = urllib.parse.urlencode({"runs": json.dumps([r.info.run_id for r in runs]),
                                    "experiments": json.dumps([exp_id])})
    with Browser() as b:
        b.navigate(f"{MLFLOW_URI}/#/compare-runs?{query}")
        text = b.wait_for_texts([EXPERIMENT, "Comparing 2 Runs", "roc_auc",
                                 *(r.info.run_id for r in runs), *(r.info.run_name for r in runs)], timeout=90)
        shot = b.screenshot(screenshots_dir / "mlflow_compare_runs.png", height=2600)
        print(f"screenshot: {shot}")
    assert "h2o_automl" in text and "binary_classification" in text
