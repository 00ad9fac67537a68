"""A small client for the Airflow 3 REST API (``/api/v2``) used by the end-to-end tests.

Logs in with the simple auth manager (``POST /auth/token``), and offers the few calls the spec
workflow needs: wait for a DAG to appear, unpause, trigger, wait for a DAG run to finish, read
task instances, XComs and task logs. Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

# MBT_AIRFLOW_URL points the tests at a private instance (scripts/airflow.sh, MBT_AIRFLOW_INSTANCE).
AIRFLOW_URL = os.environ.get("MBT_AIRFLOW_URL", "http://127.0.0.1:8080")
ADMIN = ("admin", "admin")
TERMINAL = {"success", "failed"}


class AirflowAPIError(RuntimeError):
    """A REST call failed or a wait ran out of time."""


class AirflowAPI:
    def __init__(self, base_url: str = AIRFLOW_URL, username: str = ADMIN[0],
                 password: str = ADMIN[1], timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._credentials = (username, password)
        self._token: str | None = None

    # -- transport -------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            user, pw = self._credentials
            body = self._raw("POST", "/auth/token", {"username": user, "password": pw}, auth=False)
            self._token = body["access_token"]
        return self._token

    def _raw(self, method: str, path: str, body=None, *, auth: bool = True, params=None):
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:1000]
            raise AirflowAPIError(f"{method} {path} -> HTTP {err.code}: {detail}") from None
        except OSError as err:
            raise AirflowAPIError(f"{method} {path}: {err}") from None
        if "json" in ctype:
            return json.loads(raw or b"null")
        return raw.decode(errors="replace")

    def get(self, path: str, **params):
        return self._raw("GET", path, params=params or None)

    def try_get(self, path: str, **params):
        """GET that returns None on 404."""
        try:
            return self.get(path, **params)
        except AirflowAPIError as err:
            if "HTTP 404" in str(err):
                return None
            raise

    # -- DAGs ------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._raw("GET", "/api/v2/monitor/health", auth=False)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Poll ``GET /api/v2/dags/<id>`` until the DAG is known (parsed by the dag-processor)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dag = self.try_get(f"/api/v2/dags/{dag_id}")
            if dag is not None:
                return dag
            time.sleep(3)
        errors = self.get("/api/v2/importErrors")
        raise AirflowAPIError(f"DAG {dag_id!r} did not appear within {timeout}s; import errors: "
                              f"{json.dumps(errors.get('import_errors', []))[:3000]}")

    def dag_details(self, dag_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/details")

    def delete_dag(self, dag_id: str) -> None:
        """Delete a DAG's metadata and history (the DAG file may bring it back)."""
        self._raw("DELETE", f"/api/v2/dags/{dag_id}")

    def retire_dag(self, dag_id: str) -> None:
        """A test's teardown: mark the DAG's unfinished runs failed, then delete the DAG (if any)."""
        if self.try_get(f"/api/v2/dags/{dag_id}") is None:
            return
        for run in self.dag_runs(dag_id):
            if run["state"] not in ("success", "failed"):
                self.set_run_state(dag_id, run["dag_run_id"], "failed")
        self.delete_dag(dag_id)

    def forget_mbt_dags(self) -> list[str]:
        """Delete every mbt DAG's metadata and run history (tag ``mbt``): the metadata database
        outlives the stack's S3 between sessions, and a DAG run left from an earlier session
        (same dag_id and logical date, its XCom pins a release that S3 no longer holds) must not
        meet a new test. The loader brings each DAG back at its next parse if its manifest exists."""
        gone = []
        for dag in self.get("/api/v2/dags", limit=1000, tags="mbt")["dags"]:
            name = dag["dag_id"]
            for run in self.dag_runs(name):
                if run["state"] not in TERMINAL:
                    self.set_run_state(name, run["dag_run_id"], "failed")
            self.delete_dag(name)
            gone.append(name)
        return gone

    def unpause(self, dag_id: str) -> dict:
        return self._raw("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        body = {"logical_date": None, "conf": conf or {}}
        return self._raw("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        return self._raw("PATCH", path, {"state": state})

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def wait_for_end(self, dag_id: str, run_id: str, timeout: float = 480,
                     fail_on_retry: bool = True) -> tuple[dict, list]:
        """Poll a DAG run until it is success or failed, the deadline passes or (with
        ``fail_on_retry``) a task of any run of the DAG waits for a retry - a run queued behind
        another waits for it (max_active_runs). Returns (run, [(run id, task id) retrying])."""
        deadline = time.monotonic() + timeout
        run = self.dag_run(dag_id, run_id)
        retrying: list = []
        while run["state"] not in TERMINAL and time.monotonic() < deadline and not retrying:
            time.sleep(5)
            run = self.dag_run(dag_id, run_id)
            if fail_on_retry:
                retrying = [(ti["dag_run_id"], ti["task_id"]) for ti in self.get(
                    f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", state="up_for_retry")["task_instances"]]
        return run, retrying

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 480) -> dict:
        """Wait for a DAG run to succeed; raise with the task states and the logs of the tasks
        that did not succeed otherwise. In these tests a retry means a broken step: it fails the
        wait at once."""
        run, retrying = self.wait_for_end(dag_id, run_id, timeout)
        if run["state"] != "success":
            why = (f"has tasks waiting for a retry ({', '.join(map('/'.join, retrying))})" if retrying
                   else "did not finish" if run["state"] not in TERMINAL else f"ended {run['state']}")
            details = "\n".join(f"{dag_id}/{r}:\n{self.describe_tasks(dag_id, r)}"
                                 for r in sorted({run_id, *(r for r, _ in retrying)}))
            raise AirflowAPIError(f"DAG run {dag_id}/{run_id} {why} (waited up to {timeout}s)\n{details}")
        return run

    # -- tasks -----------------------------------------------------------------------------
    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return self.get(path)["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
                f"/taskInstances/{task_id}/logs/{try_number}")
        body = self._raw("GET", path, params={"full_content": "true"})
        if isinstance(body, dict):
            content = body.get("content")
            if isinstance(content, list):
                return "\n".join(map(_log_line, content))
            return str(content)
        return str(body)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
                f"/taskInstances/{task_id}/xcomEntries/{key}")
        return self.get(path, deserialize="true")["value"]

    def describe_tasks(self, dag_id: str, run_id: str, log_chars: int = 6000) -> str:
        """Task states, and the log tail of every task that did not succeed."""
        lines = []
        try:
            tis = self.task_instances(dag_id, run_id)
        except AirflowAPIError as err:
            return f"(task instances unavailable: {err})"
        for ti in tis:
            lines.append(f"  {ti['task_id']}: {ti['state']} (try {ti.get('try_number')})")
        for ti in tis:
            if ti["state"] not in ("success", None, "scheduled", "queued") and ti.get("try_number"):
                try:
                    log = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"])
                except AirflowAPIError as err:
                    log = f"(log unavailable: {err})"
                lines.append(f"---- log of {ti['task_id']} try {ti['try_number']} ----\n"
                             f"{log[-log_chars:]}")
        return "\n".join(lines)


def _log_line(entry) -> str:
    """One structured task-log entry as text, with the exception (type, message, last frames)."""
    if not isinstance(entry, dict):
        return str(entry)
    line = str(entry.get("event", ""))
    for err in entry.get("error_detail") or []:
        frames = " <- ".join(f"{f.get('filename')}:{f.get('lineno')}" for f in reversed(err.get("frames", [])[-4:]))
        line += f"\n  {err.get('exc_type')}: {err.get('exc_value')}\n  at {frames}"
    return line
