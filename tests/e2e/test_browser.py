"""Browser checks: what a person sees in the Airflow 3 UI and the MLflow UI after the spec workflow.

Headless Debian Chromium driven by Playwright (browser.py): the Airflow login form is filled like
a user would, then the DAG list and each DAG's runs are read from the rendered page text and
saved as screenshots under test-artifacts/screenshots/. The MLflow run page of the Airflow run
must show its metrics, parameters and artifacts.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest
from airflow_api import ADMIN, AIRFLOW_URL
from browser import open_page, screenshot, wait_for_js, wait_for_texts
from screenshot import airflow_login, fill_login_form
from spec_workflow import EXPERIMENT, SCHEDULES, SERVING, TRAINING
from stack_clients import MLFLOW_URI, mlflow_client

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]


def schedule_shown(page_text: str, dag_id: str) -> str:
    """The schedule the DAG list card shows for ``dag_id`` (the line after 'Schedule')."""
    match = re.search(re.escape(dag_id) + r"\s*\n(?:.*\n){0,20}?\s*Schedule\s*\n\s*([^\n]+)", page_text)
    assert match, f"no schedule shown for {dag_id} in:\n{page_text[:3000]}"
    return match.group(1).strip()


def test_airflow_login_rejects_wrong_password(airflow):
    with open_page() as page:
        page.goto(f"{AIRFLOW_URL}/dags")
        page.locator("input[name=username]").wait_for(timeout=60_000)
        fill_login_form(page, ADMIN[0], "not-the-password")
        wait_for_js(page, "document.body.innerText.toLowerCase().includes('invalid')", what="a login error")
        assert page.url.startswith(f"{AIRFLOW_URL}/auth/login")


def test_airflow_dag_list_shows_both_dags_and_schedules(spec_workflow, airflow, screenshots_dir):
    with open_page() as page:
        airflow_login(page, "/dags")
        text = wait_for_texts(page, [TRAINING, SERVING], timeout_s=60)
        shot = screenshot(page, screenshots_dir / "airflow_dag_list.png")
        print(f"screenshot: {shot}")
        assert schedule_shown(text, TRAINING) in SCHEDULES["@monthly"]
        assert schedule_shown(text, SERVING) in SCHEDULES["@daily"]

        for dag_id, dag_run in ((TRAINING, spec_workflow.training_dag_run),
                                (SERVING, spec_workflow.serving_dag_run)):
            page.goto(f"{AIRFLOW_URL}/dags/{dag_id}/runs")
            runs_text = wait_for_texts(page, [dag_run, "Success"], timeout_s=60)
            shot = screenshot(page, screenshots_dir / f"airflow_{dag_id}_runs.png")
            print(f"screenshot: {shot}")
            assert "Success" in run_row(runs_text, dag_run), runs_text[:3000]


def run_row(page_text: str, dag_run: str) -> str:
    """The text of the DAG runs table row of ``dag_run`` (up to the next run id)."""
    after = page_text.split(dag_run, 1)[1]
    return re.split(r"\n\s*(?:manual|scheduled|backfill|asset_triggered)__", after, maxsplit=1)[0]


def test_mlflow_run_page_shows_metrics_params_and_artifacts(spec_workflow, screenshots_dir):
    run = mlflow_client().get_run(spec_workflow.run_id_2)
    run_page = f"{MLFLOW_URI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    with open_page() as page:
        page.goto(run_page)
        metrics = ["roc_auc", "accuracy", "f1", "precision", "recall"]
        text = wait_for_texts(page, [run.info.run_id, *metrics, "framework", "h2o_automl",
                                 "binary_classification", TRAINING], timeout_s=90)
        shot = screenshot(page, screenshots_dir / "mlflow_run_overview.png", height=1800)
        print(f"screenshot: {shot}")
        shown = re.search(r"roc_auc\s*\n\s*([0-9.]+)", text)  # the value itself, not only the name
        assert shown and abs(float(shown.group(1)) - run.data.metrics["roc_auc"]) < 1e-3, text[:3000]

        page.goto(run_page + "/artifacts")
        wait_for_texts(page, ["metrics.json", "preprocessor.json"], timeout_s=90)
        shot = screenshot(page, screenshots_dir / "mlflow_run_artifacts.png")
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
    with open_page() as page:
        page.goto(f"{MLFLOW_URI}/#/compare-runs?{query}")
        text = wait_for_texts(page, [EXPERIMENT, "Comparing 2 Runs", "roc_auc",
                                 *(r.info.run_id for r in runs), *(r.info.run_name for r in runs)], timeout_s=90)
        shot = screenshot(page, screenshots_dir / "mlflow_compare_runs.png", height=2600)
        print(f"screenshot: {shot}")
    assert "h2o_automl" in text and "binary_classification" in text
