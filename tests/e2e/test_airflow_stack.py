"""scripts/airflow.sh against the live servers: idempotent `up`, `status`, loopback-only listeners,
login required on the REST API, and clear errors (no side effects) on bad input."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from airflow_api import AIRFLOW_URL, AirflowAPI, AirflowAPIError

pytestmark = [pytest.mark.services, pytest.mark.airflow_live]

REPO = Path(__file__).resolve().parents[2]
PIDS = REPO / ".stack" / "pids"
COMPONENTS = ("api-server", "scheduler", "dag-processor")


def airflow_sh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/airflow.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def server_pids() -> dict[str, int]:
    return {c: int((PIDS / f"airflow-{c}.pid").read_text()) for c in COMPONENTS}


def pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_up_is_idempotent_and_status_reports_all(airflow):
    before = server_pids()
    proc = airflow_sh("up")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for comp in COMPONENTS:
        assert f"{comp} already running (pid {before[comp]})" in proc.stdout
    assert server_pids() == before
    status = airflow_sh("status")
    assert status.returncode == 0, status.stdout
    for comp in COMPONENTS:
        assert f"{comp}: running (pid {before[comp]})" in status.stdout
    assert '"scheduler": {"status": "healthy"' in status.stdout


def test_servers_listen_on_loopback_only(airflow):
    groups = set(server_pids().values())
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30).stdout
    ours = []
    for line in out.splitlines():
        local = line.split()[3]
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pgid(pid) in groups:
                ours.append(local)
    assert "127.0.0.1:8080" in ours, out
    assert all(addr.startswith("127.0.0.1:") for addr in ours), ours


def test_rest_api_needs_a_valid_login(airflow):
    req = urllib.request.Request(f"{AIRFLOW_URL}/api/v2/dags")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401
    with pytest.raises(AirflowAPIError, match="HTTP 401"):
        AirflowAPI(password="wrong").token()
    assert "dags" in airflow.get("/api/v2/dags", limit=1)


def test_bad_database_fails_clearly_and_leaves_servers_alone(airflow):
    before = server_pids()
    proc = airflow_sh("up", env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                                 "postgresql+psycopg2://airflow_user:airflow_password@127.0.0.1:5432/no_such_db"})
    assert proc.returncode == 1
    assert "cannot reach airflow_db" in proc.stderr and "scripts/stack.sh up" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert server_pids() == before and all(pgid(p) for p in before.values())


def test_missing_stack_env_names_the_file(airflow, tmp_path):
    missing = tmp_path / "stack.env"
    proc = airflow_sh("up", env={"MBT_STACK_ENV": str(missing)})
    assert proc.returncode == 1
    assert f"{missing} not found: run scripts/stack.sh up first" in proc.stderr


def test_unknown_command_is_a_usage_error():
    proc = airflow_sh("sideways")
    assert proc.returncode == 2 and "usage:" in proc.stderr
