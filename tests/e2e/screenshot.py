"""Screenshots of the local Airflow and MLflow UIs, for people (the browser tests use the same
login). Pages are saved under test-artifacts/screenshots/ and their paths printed.

    .venv/bin/python tests/e2e/screenshot.py                 # Airflow DAG list + MLflow home
    .venv/bin/python tests/e2e/screenshot.py URL [URL ...]   # any pages of the two UIs
"""

from __future__ import annotations

import re
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from airflow_api import ADMIN, AIRFLOW_URL  # noqa: E402
from chromium import Browser  # noqa: E402
from stack_clients import MLFLOW_URI  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def airflow_login(browser: Browser, next_path: str = "/dags") -> None:
    """Sign in through the Airflow login form (simple auth manager) and land on ``next_path``."""
    browser.navigate(f"{AIRFLOW_URL}{next_path}")
    browser.wait_for("document.querySelector('input[name=username]') !== null", what="the login form")
    browser.type_into("input[name=username]", ADMIN[0])
    browser.type_into("input[name=password]", ADMIN[1])
    browser.press_enter()
    path_only = next_path.split("?", 1)[0]
    browser.wait_for(f"location.pathname.startsWith({path_only!r})", what=f"{next_path} after login")


def capture(urls: list[str], settle: float = 3.0) -> list[Path]:
    shots = []
    with Browser() as b:
        logged_in = False
        for url in urls:
            if url.startswith(AIRFLOW_URL) and not logged_in:
                parts = urllib.parse.urlsplit(url)
                airflow_login(b, parts.path + (f"?{parts.query}" if parts.query else ""))
                logged_in = True
            else:
                b.navigate(url)
            time.sleep(settle)  # single-page apps keep rendering after the load event
            name = re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1]).strip("_")
            shots.append(b.screenshot(OUT / f"{name}.png", height=1400))
    return shots


def main(argv: list[str]) -> int:
    for shot in capture(argv or [f"{AIRFLOW_URL}/dags", MLFLOW_URI]):
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
