"""Headless Chromium for the browser checks, driven by Playwright for Python.

Contract:
- ``open_page()`` launches Debian's Chromium (``/usr/bin/chromium``, installed by
  ``scripts/browser.sh``; no test installs anything and Playwright never downloads a browser of
  its own) with a fresh profile and yields one Playwright ``Page`` (1600x1000 viewport).
  A missing binary is a test failure that names the script to run, never a skip.
- ``wait_for_texts(page, needles)`` waits until the rendered page text (``innerText`` of
  ``<body>``) contains every needle and returns that text; on timeout it raises
  ``BrowserCheckError`` quoting what the page did show.
- ``screenshot(page, path, height=...)`` saves a full-page PNG; ``height`` renders a taller
  viewport first, because single-page apps scroll inner panes a full-page capture does not extend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("MBT_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1600, "height": 1000}
DEFAULT_TIMEOUT_S = 30.0


class BrowserCheckError(AssertionError):
    """A page condition was not met in time (the message quotes the page text)."""


@contextlib.contextmanager
def open_page(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Page]:
    """One headless Chromium with a fresh profile and one page; closed on exit."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserCheckError(f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (as root) "
                                "to install Debian's chromium package")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
                                     timeout=timeout_s * 1000)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            yield page
        finally:
            browser.close()


def page_text(page: Page) -> str:
    """The visible text of the page ('' while it is between documents)."""
    try:
        return page.inner_text("body", timeout=5000)
    except PlaywrightError:
        return ""


def wait_for_js(page: Page, condition: str, *, what: str, timeout_s: float = 60) -> None:
    """Wait until the JavaScript expression ``condition`` is truthy; fail with the page text."""
    try:
        page.wait_for_function(condition, timeout=timeout_s * 1000)
    except PlaywrightError:
        raise BrowserCheckError(f"timed out after {timeout_s}s waiting for {what}; page {page.url!r} "
                                f"shows:\n{page_text(page)[:2000]}") from None


def wait_for_texts(page: Page, needles: list[str], *, timeout_s: float = 60) -> str:
    """Wait until the rendered page text contains every needle; return that text."""
    try:
        page.wait_for_function(
            "needles => !!document.body && needles.every(n => document.body.innerText.includes(n))",
            arg=list(needles), timeout=timeout_s * 1000)
    except PlaywrightError:
        text = page_text(page)
        missing = [n for n in needles if n not in text]
        raise BrowserCheckError(f"timed out after {timeout_s}s waiting for page text {missing}; page "
                                f"{page.url!r} shows:\n{text[:2000]}") from None
    return page_text(page)


def _next_frames(page: Page) -> None:
    """Return after two animation frames: the app has re-laid out after a viewport change."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def screenshot(page: Page, path: Path, *, height: int | None = None) -> Path:
    """Save a full-page PNG of ``page`` at ``path`` (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if height:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        _next_frames(page)
    try:
        page.screenshot(path=str(path), full_page=True, timeout=60_000)
    finally:
        if height:
            page.set_viewport_size(VIEWPORT)
    return path
