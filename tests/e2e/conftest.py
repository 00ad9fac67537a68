"""Session fixtures of the end-to-end tier: the local stack, live Airflow, the spec workflow.

``scripts/stack.sh up`` and ``scripts/airflow.sh up`` are run (both idempotent); when a service
does not come up the tests FAIL with the script output and the log tails - they never skip.
``spec_workflow`` runs the spec section 9 once per session and is shared by the checks in
``test_spec_workflow.py`` and the browser checks in ``test_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from airflow_api import AirflowAPI, AirflowAPIError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".stack" / "logs"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
WORKDIR = REPO / "test-artifacts" / "e2e-workdir"


def log_tails(pattern: str, lines: int = 40) -> str:
    out = []
    for path in sorted(LOGS.glob(pattern)):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"---- {path} (last {len(text)} lines) ----\n" + "\n".join(text))
    return "\n".join(out) or f"(no logs matching {LOGS}/{pattern})"


def run_script(args: list[str], timeout: float, logs: str) -> None:
    """Run a stack script; pytest.fail (never skip) with its output and the logs when it fails."""
    try:
        proc = subprocess.run(["bash", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`bash {' '.join(args)}` did not finish within {timeout}s\n"
                    f"{exc.stdout or ''}{exc.stderr or ''}\n{log_tails(logs)}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"`bash {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}\n"
                    f"{log_tails(logs)}", pytrace=False)
    print(proc.stdout, end="")


def load_stack_env() -> dict:
    """The variables scripts/stack.env exports, read through bash exactly as the scripts do."""
    proc = subprocess.run(["bash", "-c", "set -a; . scripts/stack.env; env -0"], cwd=REPO,
                          capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    env = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
    return {k: v for k, v in env.items() if k.startswith(("MBT_", "AIRFLOW_CONN_", "S3_", "PG_"))}


@pytest.fixture(scope="session")
def stack_env():
    """The local services are up; their env (connections, S3 keys) is applied for the session."""
    status = subprocess.run(["bash", "scripts/stack.sh", "status"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    if status.returncode != 0:  # `up` only when something is down (it serializes on a lock)
        run_script(["scripts/stack.sh", "up"], timeout=900, logs="[!a]*.log")
    env = load_stack_env()
    for key in ("AIRFLOW_CONN_MBT_WAREHOUSE", "AIRFLOW_CONN_MBT_S3", "AIRFLOW_CONN_MBT_MLFLOW",
                "AIRFLOW_CONN_MBT_H2O"):
        assert env.get(key), f"scripts/stack.env does not export {key}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def airflow(stack_env) -> AirflowAPI:
    """Live Airflow 3 (api-server, scheduler, dag-processor), logged in as admin."""
    run_script(["scripts/airflow.sh", "up"], timeout=420, logs="airflow-*.log")
    api = AirflowAPI()
    try:
        health = api.health()
        api.token()
    except AirflowAPIError as err:
        pytest.fail(f"Airflow is not answering after `airflow.sh up`: {err}\n{log_tails('airflow-*.log')}",
                    pytrace=False)
    bad = {k: v for k, v in health.items() if k != "triggerer" and (v or {}).get("status") != "healthy"}
    if bad:
        pytest.fail(f"Airflow components unhealthy: {bad}\n{log_tails('airflow-*.log')}", pytrace=False)
    gone = api.forget_mbt_dags()  # a clean run history: the database outlives earlier sessions' S3
    print(f"e2e: removed {len(gone)} mbt DAGs and their runs left from earlier sessions: {', '.join(gone)}")
    return api


@pytest.fixture(scope="session")
def spec_workflow(airflow, stack_env):
    """Spec section 9 (phases A-D) run once; see spec_workflow.py. The scratch project stays in
    test-artifacts/e2e-workdir/demo-project for inspection (wiped at the next session)."""
    from spec_workflow import run_spec_workflow

    workdir = WORKDIR
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # AutoML budget of both training runs: 20 s trained nothing on this 2-core machine under load.
    secs = int(os.environ.get("MBT_E2E_AUTOML_SECS", "60"))
    return run_spec_workflow(workdir, stack_env, airflow, runtime_secs=secs)


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
