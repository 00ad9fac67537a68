"""The integration spec section 9 (DS workflow) driven as a new user would, against the live stack.

``run_spec_workflow(workdir, env)`` goes through phases A-D with the real ``mbt`` CLI, the
project's own ``.woodpecker.yml`` commands (run literally, as the CI agent would) and Airflow's
REST API, and returns a ``WorkflowResult`` with every id the checks need plus phase timings.

Decisions (also in docs/e2e.md):
- MLflow: the DS points the dev target at the shared tracking server
  (``tracking_uri: http://127.0.0.1:5000``, no local artifact location), so run_id_1 (local dev
  run) and run_id_2 (Airflow prod run) land in the same experiment ``churn_prediction``.
- AutoML budget: the scaffolded ``{{ var('max_runtime_secs', 300) }}`` is used with ``--vars``
  for the local run; before "pushing" the DS switches it to
  ``{{ env_var('MBT_MAX_RUNTIME_SECS', 300) }}`` so the literal CI commands get a small budget.
- Executor: this machine has no Kubernetes cluster, so the prod target's executor is set to
  ``local`` (``MBTStepOperator`` inside Airflow's LocalExecutor worker), the stand-in the spec names.
- The scaffolded serving pipeline follows the registry alias (``churn_model@champion``); this
  workflow keeps the spec's run-id flow: the draft stays out of ``pipelines/`` until a model is
  chosen in phase C, then pins that run (``run_id``) instead of the alias.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from airflow_api import AirflowAPI
from stack_clients import MLFLOW_URI, mlflow_client, s3_client, s3_delete_prefix

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
TRAINING = "training_churn_model_v1"
SERVING = "serving_churn_model_v1"
EXPERIMENT = "churn_prediction"
MANIFESTS = ("mbt-pipeline-artifacts", "manifests/")
PLACEHOLDER = "<run_id_from_mlflow>"
CI_STEPS = ("validate", "compile", "deploy")
DAG_RUN_TIMEOUT = 480
TIMINGS = REPO / "test-artifacts" / "e2e-timings.json"


@dataclass
class WorkflowResult:
    project: Path
    run_id_1: str = ""              # MLflow run id of the local dev training run
    mbt_run_id_1: str = ""
    training_dag_run: str = ""      # Airflow DAG run id
    mbt_run_id_2: str = ""          # mbt run id of that DAG run (XCom mbt_run_id)
    run_id_2: str = ""              # its MLflow run id (tag mbt_run_id)
    chosen_run_id: str = ""         # best of run_id_1 / run_id_2 by roc_auc
    chosen_roc_auc: float = 0.0
    dev_serving_output: str = ""
    serving_dag_run: str = ""
    serving_run_id: str = ""        # mbt run id of the serving DAG run
    ci_commands: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


class StepFailed(AssertionError):
    """A command of the workflow failed; carries its output."""


def cli_env(env: dict) -> dict:
    """The shell environment of the DS / the CI agent: the stack env and the venv's ``mbt``."""
    out = dict(os.environ)
    out.update(env)
    out["PATH"] = f"{VENV_BIN}{os.pathsep}{out.get('PATH', '')}"
    out.pop("MBT_PROJECT_DIR", None)
    return out


def sh(command: str, cwd: Path, env: dict, timeout: float = 900) -> str:
    """Run a shell command (bash, errexit) and return its output; fail with the output tail."""
    print(f"\n$ {command}   (in {cwd})", flush=True)
    try:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"`{command}` did not finish within {timeout}s:\n"
                         f"{(exc.stdout or '')[-4000:]}\n{(exc.stderr or '')[-4000:]}") from None
    output = proc.stdout + proc.stderr
    print(output[-3000:], flush=True)
    if proc.returncode != 0:
        raise StepFailed(f"`{command}` exited {proc.returncode}:\n{output[-6000:]}")
    return output


@contextmanager
def phase(result: WorkflowResult, name: str):
    started = time.monotonic()
    print(f"\n===== phase: {name} =====", flush=True)
    try:
        yield
    finally:
        result.timings[name] = round(time.monotonic() - started, 1)
        print(f"===== {name}: {result.timings[name]}s =====", flush=True)


# -- edits a DS makes in the project ---------------------------------------------------------
def edit_profile_for_local_stack(project: Path) -> None:
    """Dev target -> the shared MLflow server; prod executor -> local (no Kubernetes here)."""
    path = project / "profiles.yaml"
    doc = yaml.safe_load(path.read_text())
    assert len(doc) == 1, f"expected one profile in {path}, found {list(doc)}"
    outputs = next(iter(doc.values()))["outputs"]
    outputs["dev"]["mlflow"] = {"tracking_uri": MLFLOW_URI}
    outputs["prod"]["executor"] = {"type": "local"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def use_env_runtime_budget(project: Path) -> None:
    path = project / "pipelines" / f"{TRAINING}.yaml"
    text = path.read_text()
    new = text.replace("{{ var('max_runtime_secs', 300) }}", "{{ env_var('MBT_MAX_RUNTIME_SECS', 300) }}")
    assert new != text, f"{path} no longer holds the scaffolded max_runtime_secs template:\n{text}"
    path.write_text(new)


def park_serving_draft(project: Path) -> Path:
    """`mbt init` scaffolds the serving pipeline on the registry alias, with the run-id flow as a
    commented placeholder. This workflow follows the spec's run-id flow: until a model is chosen
    (phase C) the DS keeps the draft out of pipelines/, so training goes through CI alone."""
    src = project / "pipelines" / f"{SERVING}.yaml"
    draft = project / f"{SERVING}.yaml.draft"
    assert PLACEHOLDER in src.read_text(), f"{src} has no {PLACEHOLDER} placeholder"
    src.rename(draft)
    return draft


def create_serving_pipeline(project: Path, run_id: str) -> None:
    """Phase C step 10: the serving pipeline pinned to the chosen run id (the run-id flow: the
    placeholder line uncommented, the registry alias lines removed)."""
    draft = project / f"{SERVING}.yaml.draft"
    text = draft.read_text()
    for line in ("    model_name: churn_model\n", "    alias: champion\n"):
        assert line in text, f"{draft} has no {line!r}"
        text = text.replace(line, "")
    text = re.sub(r"\n  on_model_change: true[^\n]*", "", text)
    text = text.replace(f'# run_id: "{PLACEHOLDER}"', f'run_id: "{PLACEHOLDER}"')
    (project / "pipelines" / f"{SERVING}.yaml").write_text(text.replace(PLACEHOLDER, run_id))
    draft.unlink()


# -- CI ----------------------------------------------------------------------------------------
def ci_steps(project: Path, env: dict) -> list[tuple[str, list[str], dict]]:
    """(name, commands, environment) of the validate/compile/deploy steps of .woodpecker.yml,
    in file order. ``from_secret`` values come from the same-named variable of the stack env
    (the repository secret holds exactly what the agent exports)."""
    doc = yaml.safe_load((project / ".woodpecker.yml").read_text())
    steps = doc["steps"]
    items = steps.items() if isinstance(steps, dict) else ((s["name"], s) for s in steps)
    found = []
    for name, step in items:
        if name not in CI_STEPS:
            continue
        commands = step.get("commands") or []
        assert commands, f".woodpecker.yml step {name!r} has no commands"
        step_env = {}
        for key, value in (step.get("environment") or {}).items():
            step_env[key] = env[key] if isinstance(value, dict) and "from_secret" in value else str(value)
        found.append((name, [str(c) for c in commands], step_env))
    assert [n for n, _, _ in found] == list(CI_STEPS), \
        f".woodpecker.yml should have steps {CI_STEPS} (in that order), found {[n for n, _, _ in found]}"
    return found


def run_ci(project: Path, env: dict, result: WorkflowResult) -> None:
    """The CI steps as the agent runs them (Woodpecker turns ``$$`` into ``$``, a shell runs each
    line). No registry here: ``.mbt-image`` is what the resolve-digest step would write (the
    prod executor is local in this stack, so the image is recorded, never pulled)."""
    (project / ".mbt-image").write_text(f"zot-registry:5050/{project.name}:{'0' * 40}@sha256:{'a' * 64}\n")
    for name, commands, step_env in ci_steps(project, env):
        result.ci_commands[name] = commands
        for command in commands:
            sh(command.replace("$$", "$"), project, {**env, **step_env})


# -- Airflow -----------------------------------------------------------------------------------
def reset_deployment(api: AirflowAPI, env: dict, timeout: float = 120) -> None:
    """Fresh state, as on a new installation: no deployed manifests (releases, history) of the
    demo pipelines and no DAGs or DAG runs of them in Airflow."""
    s3 = s3_client(env)
    bucket, prefix = MANIFESTS
    for name in (TRAINING, SERVING):
        removed = s3_delete_prefix(s3, bucket, f"{prefix}{name}/")
        print(f"reset: removed {removed} objects under s3://{bucket}/{prefix}{name}/", flush=True)
    deadline = time.monotonic() + timeout
    for name in (TRAINING, SERVING):
        # the loader drops the DAG once its manifest is gone; then its history can be deleted
        while (dag := api.try_get(f"/api/v2/dags/{name}")) is not None and not dag.get("is_stale"):
            assert time.monotonic() < deadline, f"DAG {name} still active {timeout}s after its manifest was removed"
            time.sleep(3)
        if dag is not None:
            for run in api.dag_runs(name):  # leftovers of an interrupted session
                if run["state"] not in ("success", "failed"):
                    api.set_run_state(name, run["dag_run_id"], "failed")
            api.delete_dag(name)
            print(f"reset: deleted DAG {name} and its runs from Airflow", flush=True)


def run_dag(api: AirflowAPI, dag_id: str, schedule: str) -> tuple[str, str]:
    """Wait for the DAG, check its schedule, unpause, trigger and wait for success.
    Returns (DAG run id, mbt run id)."""
    dag = api.wait_for_dag(dag_id, timeout=240)
    summary = dag.get("timetable_summary")
    assert summary in SCHEDULES[schedule], f"{dag_id} schedule is {summary!r}, expected {schedule}"
    api.unpause(dag_id)
    run = api.trigger(dag_id)
    print(f"triggered {dag_id}: {run['dag_run_id']}", flush=True)
    api.wait_for_run(dag_id, run["dag_run_id"], timeout=DAG_RUN_TIMEOUT)
    # every task of the DAG run works under the same mbt run id (CONTRACTS section 3)
    ids = {api.xcom(dag_id, run["dag_run_id"], ti["task_id"], key="mbt_run_id")
           for ti in api.task_instances(dag_id, run["dag_run_id"])}
    assert len(ids) == 1, f"tasks of {dag_id}/{run['dag_run_id']} used different mbt run ids: {ids}"
    mbt_run_id = ids.pop()
    assert re.fullmatch(r"run_\d{8}_\d{6}_[0-9a-f]{16}", mbt_run_id), mbt_run_id
    return run["dag_run_id"], mbt_run_id


# Airflow 3 shows cron presets as their cron expression.
SCHEDULES = {"@monthly": {"@monthly", "0 0 1 * *"}, "@daily": {"@daily", "0 0 * * *"}}


# -- MLflow ------------------------------------------------------------------------------------
def mlflow_run_by_mbt_run_id(mbt_run_id: str):
    client = mlflow_client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"MLflow experiment {EXPERIMENT!r} missing on {MLFLOW_URI}"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.mbt_run_id = '{mbt_run_id}'")
    assert len(runs) == 1, f"expected one MLflow run tagged mbt_run_id={mbt_run_id}, found {len(runs)}"
    return runs[0]


def best_run(run_ids: list[str]) -> tuple[str, float]:
    """The run with the highest roc_auc among ``run_ids``, chosen through the MLflow API (a tie
    goes to the newer run)."""
    client = mlflow_client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    quoted = ", ".join(f"'{r}'" for r in run_ids)
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_id IN ({quoted})",
                              order_by=["metrics.roc_auc DESC", "attributes.start_time DESC"])
    assert {r.info.run_id for r in runs} == set(run_ids), f"runs {run_ids} not all in {EXPERIMENT}"
    return runs[0].info.run_id, runs[0].data.metrics["roc_auc"]


# -- the workflow ------------------------------------------------------------------------------
def run_spec_workflow(workdir: Path, stack_env: dict, api: AirflowAPI, *, runtime_secs: int = 60
                      ) -> WorkflowResult:
    env = cli_env(stack_env)
    env["MBT_MAX_RUNTIME_SECS"] = str(runtime_secs)
    project = workdir / "demo-project"
    result = WorkflowResult(project=project)
    started = time.monotonic()
    with phase(result, "reset: no deployed demo pipelines"):
        reset_deployment(api, env)

    with phase(result, "A: init, validate, compile, local dev run"):
        sh("mbt init demo-project", workdir, env)
        for expected in ("profiles.yaml", "pipelines", "sample_data", "Dockerfile", ".woodpecker.yml",
                         f"pipelines/{TRAINING}.yaml"):
            assert (project / expected).exists(), f"mbt init did not create {expected}"
        edit_profile_for_local_stack(project)
        park_serving_draft(project)
        out = sh(f"mbt validate {TRAINING}", project, env)
        assert f"Pipeline '{TRAINING}' is valid." in out
        out = sh(f"mbt compile {TRAINING} --target dev", project, env)
        assert f"Manifest saved to target/{TRAINING}/manifest.json" in out
        manifest = json.loads((project / "target" / TRAINING / "manifest.json").read_text())
        steps = [s["name"] for s in manifest["steps"]]
        assert steps == ["load_data", "split_data", "train_model", "evaluate", "log_run", "promote"], steps
        out = sh(f"mbt run --select {TRAINING} --target dev --vars max_runtime_secs={runtime_secs}",
                 project, env)
        results = json.loads((project / "target" / TRAINING / "run_results.json").read_text())
        assert results["status"] == "success", results
        result.mbt_run_id_1, result.run_id_1 = results["run_id"], results["mlflow_run_id"]
        assert result.mbt_run_id_1 in out and result.run_id_1 in out  # printed for the DS
        assert (project / "local_artifacts" / TRAINING / result.mbt_run_id_1).is_dir()

    with phase(result, "B: CI (validate/compile/deploy) + training DAG"):
        use_env_runtime_budget(project)
        run_ci(project, env, result)
        result.training_dag_run, result.mbt_run_id_2 = run_dag(api, TRAINING, "@monthly")
        result.run_id_2 = mlflow_run_by_mbt_run_id(result.mbt_run_id_2).info.run_id

    with phase(result, "C: choose model in MLflow, serving locally"):
        result.chosen_run_id, result.chosen_roc_auc = best_run([result.run_id_1, result.run_id_2])
        print(f"best run by roc_auc: {result.chosen_run_id} ({result.chosen_roc_auc:.4f})", flush=True)
        create_serving_pipeline(project, result.chosen_run_id)
        sh(f"mbt compile {SERVING} --target dev", project, env)
        sh(f"mbt run --select {SERVING} --target dev", project, env)
        serving_results = json.loads((project / "target" / SERVING / "run_results.json").read_text())
        assert serving_results["status"] == "success", serving_results
        result.dev_serving_output = str(dev_serving_output(project))

    with phase(result, "D: CI again + serving DAG"):
        run_ci(project, env, result)
        result.serving_dag_run, result.serving_run_id = run_dag(api, SERVING, "@daily")

    result.timings["total"] = round(time.monotonic() - started, 1)
    print("\nphase timings (s): " + json.dumps(result.timings), flush=True)
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps({"runtime_secs": runtime_secs, "timings_s": result.timings}, indent=2))
    return result


def dev_serving_output(project: Path) -> Path:
    """Where the local serving run wrote its predictions: ``predictions.csv`` for destination
    local_file, or the dev data connector's table file for destination database (a mapped file,
    else ``<output_path>/<table>.csv``)."""
    doc = yaml.safe_load((project / "pipelines" / f"{SERVING}.yaml").read_text())
    output = doc["serving"]["output"]
    if output.get("destination", "local_file") == "local_file":
        return project / output.get("path", "predictions.csv")
    profile = next(iter(yaml.safe_load((project / "profiles.yaml").read_text()).values()))
    config = profile["outputs"]["dev"]["data_connector"]["config"]
    mapped = (config.get("tables") or {}).get(output["table"])  # e.g. ./predictions.csv
    return (project / (mapped or f"{config.get('output_path', './output')}/{output['table']}.csv")).resolve()
