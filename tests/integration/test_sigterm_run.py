"""SIGTERM to ``mbt run`` in the middle of a step (a custom transform that blocks): exit 143
within 10 s, ``run_results.json`` with status ``terminated`` (the step ``terminated``, later ones
``skipped``, the run context recorded), no ``mbt-*`` temp folder left; a rerun succeeds."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from sigterm_helpers import sigterm_when
from test_local_workflow import MBT, TRAINING, edit_yaml, init_project, use_sklearn

pytestmark = pytest.mark.services

SLOW = '''
import os
import pathlib
import time


def wait(df):
    """Blocks until the marker file says go (the test's rerun), so SIGTERM lands inside a step."""
    marker = pathlib.Path(os.environ["MBT_TEST_MARKER"])
    if marker.read_text() != "go":
        marker.write_text("inside")
        time.sleep(600)
    return df
'''


def test_sigterm_during_mbt_run_records_terminated_and_a_rerun_succeeds(tmp_path):
    project = init_project(tmp_path / "p")
    (project / "lib").mkdir(exist_ok=True)
    (project / "lib" / "slow.py").write_text(SLOW)

    def change(doc: dict) -> None:
        use_sklearn(doc)
        doc["training"].setdefault("preprocessing", {})["custom_transforms"] = ["lib.slow:wait"]
    edit_yaml(project / "pipelines" / f"{TRAINING}.yaml", change)
    marker = tmp_path / "marker"
    marker.write_text("")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "MBT_TEST_MARKER": str(marker)}
    argv = [str(MBT), "run", "--select", TRAINING, "--target", "dev", "--logical-date", "2026-11-26"]

    proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err, stopped_in = sigterm_when(proc, lambda: marker.read_text() == "inside")
    assert proc.returncode == 143, (out, err)
    assert stopped_in < 10, f"stopped {stopped_in:.1f}s after SIGTERM"
    assert "terminated by signal 15" in err and "Traceback" not in err
    results = json.loads((project / "target" / TRAINING / "run_results.json").read_text())
    assert results["status"] == "terminated"
    statuses = [s["status"] for s in results["steps"]]
    stopped = statuses.index("terminated")  # the step running the custom transform
    assert statuses[:stopped] == ["success"] * stopped and len(statuses) == stopped + 1, results["steps"]
    assert results["run"]["logical_date"] == "2026-11-26T00:00:00+00:00"
    assert results["run"]["interval_start"] == "2026-10-26T00:00:00+00:00"  # cadence: monthly
    assert not [p.name for p in temp.iterdir() if p.name.startswith("mbt-")]

    marker.write_text("go")
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((project / "target" / TRAINING / "run_results.json").read_text())["status"] == "success"
    assert not [p.name for p in temp.iterdir() if p.name.startswith("mbt-")]
