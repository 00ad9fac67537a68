"""Headless Chromium driven over the DevTools protocol (CDP) for the browser checks.

A minimal client on ``websocket-client``: start Chromium with ``--remote-debugging-port``, open a
page target, send CDP commands and wait for their replies, read the page text and save PNG
screenshots. ``ensure_chromium()`` installs Debian's ``chromium`` package when it is missing.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
]


def ensure_chromium(timeout: float = 900) -> str:
    """Return the Chromium binary, installing Debian's package (as root) when it is missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CDPError(RuntimeError):
    """A CDP command failed or a page condition was not met in time."""


class Browser:
    """One headless Chromium process with a fresh profile, and one page driven over CDP."""

    def __init__(self, binary: str | None = None, timeout: float = 30):
        self.binary = binary or ensure_chromium()
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="mbt-chromium-")
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Browser":
        import websocket  # websocket-client

        self.proc = subprocess.Popen(
            [self.binary, *HEADLESS_FLAGS, f"--user-data-dir={self.profile}",
             f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        page_ws = None
        while time.monotonic() < deadline and page_ws is None:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited ({self.proc.returncode}): "
                               f"{self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    page_ws = pages[0]["webSocketDebuggerUrl"]
            except OSError:
                time.sleep(0.2)
        if page_ws is None:
            self.close()
            raise CDPError(f"chromium DevTools endpoint did not answer within {self.timeout}s")
        self.ws = websocket.create_connection(page_ws, timeout=self.timeout, suppress_origin=True)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol --------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """Send one CDP command and return its result (events in between are dropped)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise CDPError(f"{method}: no reply within {timeout or self.timeout}s")

    def evaluate(self, expression: str):
        """Evaluate JavaScript in the page and return its value (promises are awaited)."""
        res = self.send("Runtime.evaluate",
                        {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise CDPError(f"JS error in {expression[:80]!r}: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    # -- page helpers ----------------------------------------------------------------------
    def navigate(self, url: str) -> None:
        res = self.send("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise CDPError(f"navigating to {url}: {res['errorText']}")
        self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    def wait_for(self, js_condition: str, *, what: str, timeout: float = 60) -> None:
        """Poll a JavaScript condition until it is truthy; fail with the page text otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(js_condition):
                    return
            except CDPError:
                pass  # page in the middle of a navigation
            time.sleep(0.5)
        raise CDPError(f"timed out after {timeout}s waiting for {what}; page {self.url()!r} shows:\n"
                       f"{(self.text() or '')[:2000]}")

    def wait_for_texts(self, needles: list[str], *, timeout: float = 60) -> str:
        """Wait until the visible page text contains every needle; return that text."""
        cond = " && ".join(f"document.body && document.body.innerText.includes({json.dumps(n)})"
                           for n in needles)
        self.wait_for(cond, what=f"page text to contain {needles}", timeout=timeout)
        return self.text()

    def text(self) -> str:
        try:
            return self.evaluate("document.body ? document.body.innerText : ''") or ""
        except CDPError:
            return ""

    def url(self) -> str:
        try:
            return self.evaluate("location.href") or ""
        except CDPError:
            return ""

    def type_into(self, selector: str, value: str) -> None:
        """Focus an input and type text the way a user would (React sees real input events)."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.focus(); e.select && e.select(); return true; }})()")
        if not found:
            raise CDPError(f"no element {selector!r} on {self.url()}")
        self.send("Input.insertText", {"text": value})

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13, "text": "\r"})

    def screenshot(self, path: Path, *, height: int | None = None) -> Path:
        """Save a PNG of the page. ``height`` renders a taller viewport first: single-page apps
        scroll inner panes, which a full-page capture does not extend."""
        if height:
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": 1600, "height": height, "deviceScaleFactor": 1, "mobile": False})
            time.sleep(1.5)  # let the app re-layout
        try:
            data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             timeout=60)["data"]
        finally:
            if height:
                self.send("Emulation.clearDeviceMetricsOverride")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
