"""Screenshots of the local Airflow and MLflow UIs, for people (the browser tests use the same
login). Pages are saved under test-artifacts/screenshots/ and their paths printed.

    .venv/bin/python tests/e2e/screenshot.py                 # Airflow DAG list + MLflow home
    .venv/bin/python tests/e2e/screenshot.py URL [URL ...]   # any pages of the two UIs
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from pathlib import Path

from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).parent))

from airflow_api import ADMIN, AIRFLOW_URL
from browser import open_page, screenshot, wait_for_js
from stack_clients import MLFLOW_URI

OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def fill_login_form(page: Page, username: str, password: str) -> None:
    """Type the credentials into the Airflow login form (simple auth manager) and submit it."""
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("input[name=password]").press("Enter")


def airflow_login(page: Page, next_path: str = "/dags") -> None:
    """Sign in through the Airflow login form and land on ``next_path``."""
    page.goto(f"{AIRFLOW_URL}{next_path}")
    page.locator("input[name=username]").wait_for(timeout=60_000)
    fill_login_form(page, *ADMIN)
    path_only = next_path.split("?", 1)[0]
    wait_for_js(page, f"location.pathname.startsWith({path_only!r})", what=f"{next_path} after login")


def capture(urls: list[str], settle_s: float = 3.0) -> list[Path]:
    shots = []
    with open_page() as page:
        logged_in = False
        for url in urls:
            if url.startswith(AIRFLOW_URL) and not logged_in:
                parts = urllib.parse.urlsplit(url)
                airflow_login(page, parts.path + (f"?{parts.query}" if parts.query else ""))
                logged_in = True
            else:
                page.goto(url)
            page.wait_for_load_state("load")
            # The UIs poll forever (no "networkidle"); give the single-page app time to render.
            page.wait_for_timeout(settle_s * 1000)
            name = re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1]).strip("_")
            shots.append(screenshot(page, OUT / f"{name}.png", height=1400))
    return shots


def main(argv: list[str]) -> int:
    for shot in capture(argv or [f"{AIRFLOW_URL}/dags", MLFLOW_URI]):
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
