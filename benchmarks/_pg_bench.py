"""Shared setup of the PostgreSQL benchmarks: stack env, psql runner, frames shaped like
``churn_predictions``, median timing. Benchmarks print figures; they assert nothing about time."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_stack_env() -> None:
    """``scripts/stack.sh up postgres`` then the variables of ``scripts/stack.env`` into os.environ."""
    subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "up", "postgres"], check=True,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run(["env", "-i", "bash", "-c", f'set -a; . "{REPO}/scripts/stack.env"; env -0'],
                         capture_output=True, check=True).stdout.decode()
    for item in out.split("\0"):
        if "=" in item:
            k, v = item.split("=", 1)
            if k not in {"PWD", "SHLVL", "_", "OLDPWD"}:
                os.environ[k] = v


def connector_config() -> dict:
    return {"host": "127.0.0.1", "port": int(os.environ["MBT_PG_PORT"]), "database": "warehouse",
            "user": os.environ["MBT_PG_USER"], "password": os.environ["MBT_PG_PASSWORD"]}


def psql(*args: str) -> None:
    env = dict(os.environ, PGPASSWORD=os.environ["MBT_PG_PASSWORD"], PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", os.environ["MBT_PG_PORT"],
                    "-U", os.environ["MBT_PG_USER"], "-d", "warehouse", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def predictions_frame(n: int, run_id: str = "run_bench", seed: int = 7):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"CUST_{i:08d}" for i in range(n)],
        "prediction": rng.integers(0, 2, n),
        "prediction_probability": rng.random(n),
        "execution_date": pd.Timestamp("2026-11-29 07:00:00"),
        "model_run_id": "0123456789abcdef0123456789abcdef",
        "serving_run_id": run_id,
    })


def timed(fn, repeat: int = 3, before=None) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` runs (``before()`` runs untimed first)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, load average {load:.1f} at start"
