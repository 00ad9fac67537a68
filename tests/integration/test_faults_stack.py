"""``scripts/stack.sh`` on the running stack: idempotent ``up``, ``status`` lines and exit codes,
clear failures for unknown services and for a service whose port is held by something else."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "stack.sh"


def run(*args, env=None):
    return subprocess.run(["bash", str(STACK), *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env=env)


def test_up_is_idempotent_and_status_reports_every_service():
    again = run("up")
    assert again.returncode == 0, again.stderr
    for svc in ("postgres", "s3", "mlflow", "h2o"):
        assert f"[stack] {svc}: already up" in again.stdout
    status = run("status")
    assert status.returncode == 0
    lines = {line.split()[0]: line for line in status.stdout.splitlines()}
    assert set(lines) >= {"postgres", "s3", "mlflow", "h2o"}
    assert all(" up " in lines[s] for s in ("postgres", "s3", "mlflow", "h2o"))
    assert "http://127.0.0.1:8333" in lines["s3"] and ".stack/logs/s3.log" in lines["s3"]


def test_unknown_service_and_usage_exit_2():
    bad = run("up", "nosuch")
    assert bad.returncode == 2 and "unknown service 'nosuch'" in bad.stderr and "mlflow" in bad.stderr
    usage = run("explode")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_port_held_by_a_stranger_fails_naming_service_and_port(tmp_path):
    """A private copy of the stack config whose H2O port is taken by a plain TCP listener."""
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        env_file = tmp_path / "stack.env"
        env_file.write_text((REPO / "scripts" / "stack.env").read_text()
                            + f"\nexport MBT_H2O_PORT='{port}'\nexport MBT_H2O_URL='http://127.0.0.1:{port}'\n")
        scripts = tmp_path / "repo" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "stack.sh").symlink_to(STACK)  # ROOT = tmp repo, so its stack.env is used
        (scripts / "stack").symlink_to(REPO / "scripts" / "stack")
        (scripts / "stack.env").symlink_to(env_file)
        (tmp_path / "repo" / ".venv").symlink_to(REPO / ".venv")
        (tmp_path / "repo" / "requirements").symlink_to(REPO / "requirements")
        proc = subprocess.run(["bash", str(scripts / "stack.sh"), "up", "h2o"], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL,
                              # MBT_* already in the environment override stack.env: drop the H2O ones
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("MBT_H2O")},
                                   "MBT_STACK_DIR": str(tmp_path / "stackdir")})
    assert proc.returncode == 1
    assert f"h2o: port {port}" in proc.stderr and "is taken" in proc.stderr, proc.stderr
