"""A 2-node H2O cloud started by the stack module (``MBT_H2O_NODES=2 scripts/stack.sh up h2o``) on
spare ports, and ``mbt run`` of the demo training pipeline (h2o_automl, small budget) on it through
the CLI: the hook reports cloud size 2; without -v no H2O banner, warning or progress bar appears
between the progress lines, with -v H2O's own output does (marker ``h2o``).

Ports 24401-24406 (node 0 on 24401, node 1 on 24403, the second 1-node cloud on 24405; H2O also
takes port+1), never the stack's 54321. They lie below Linux's ephemeral range (32768-60999): in
that range a client socket of an earlier test (TIME_WAIT included) can hold a node's port, and
the node then dies with "required ports ... are not available" (seen on 54403 in a CI run).
Each node gets a 1 GiB heap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_mbt.hooks.h2o import H2OHook

pytestmark = pytest.mark.h2o

ROOT = Path(__file__).resolve().parents[2]
MBT = Path(sys.executable).parent / "mbt"
PORT = 24401
TRAINING = "training_churn_model_v1"
BUDGET = {"max_runtime_secs": 240, "max_models": 2, "seed": 42, "nfolds": 2, "sort_metric": "AUC",
          "exclude_algos": ["DeepLearning"]}
# what H2O prints when nobody asks it to be quiet (issue 8 point 7)
NOISE = ["Your H2O cluster version", "H2ODependencyWarning", "Dropping bad and constant columns",
         "Connecting to H2O server", "H2O_cluster_", "progress: |", "Closing connection"]


def stack(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MBT_STACK_DIR": str(tmp), "MBT_H2O_PORT": str(PORT), "MBT_H2O_NODES": "2",
           "MBT_H2O_XMX": "1g"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "stack.sh"), *args, "h2o"], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """(url, stack dir) of a 2-node cloud that the stack module starts and stops."""
    tmp = tmp_path_factory.mktemp("h2o-cloud")
    up = stack(tmp, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"http://127.0.0.1:{PORT}", tmp
    finally:
        down = stack(tmp, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not list((tmp / "pids").glob("h2o*.pid")), "every node's pid file is gone after down"


def test_status_and_hook_report_the_cloud_size(cloud, monkeypatch):
    url, tmp = cloud
    status = stack(tmp, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "cloud_size=2/2" in status.stdout
    assert len((tmp / "h2o" / "flatfile.txt").read_text().split()) == 2
    monkeypatch.setenv("AIRFLOW_CONN_MBT_H2O_CLOUD", json.dumps({"conn_type": "h2o", "host": "127.0.0.1",
                                                                  "port": PORT, "schema": "http"}))
    ok, message = H2OHook("mbt_h2o_cloud").test_connection()
    assert ok, message
    assert f"at {url}/3/Cloud: cloud mbt-shared, cloud_size 2, healthy" in message


def _project(parent: Path, url: str) -> Path:
    subprocess.run([str(MBT), "init", "demo"], cwd=parent, check=True, capture_output=True, timeout=300)
    project = parent / "demo"
    profiles = yaml.safe_load((project / "profiles.yaml").read_text())
    profiles["demo"]["outputs"]["dev"]["h2o"] = {"url": url}
    (project / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    pipeline = project / "pipelines" / f"{TRAINING}.yaml"
    doc = yaml.safe_load(pipeline.read_text())
    doc["training"]["model_training"]["config"] = BUDGET
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


def _run(project: Path, *flags: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(MBT), *flags, "run", "--select", TRAINING, "--target", "dev"], cwd=project,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def test_demo_pipeline_trains_on_the_cloud_quietly_and_verbosely_with_v(cloud, tmp_path):
    project = _project(tmp_path, cloud[0])
    quiet = _run(project)
    results = json.loads((project / "target" / TRAINING / "run_results.json").read_text())
    assert [s["status"] for s in results["steps"]] == ["success"] * 6  # ... log_run, promote
    out = quiet.stdout + quiet.stderr
    assert "[3/6] train_model ... ok" in out
    found = [s for s in NOISE if s in out]
    assert not found, f"H2O output leaked into mbt run: {found}\n{out}"
    verbose = _run(project, "-v")
    chatter = verbose.stdout + verbose.stderr
    assert any(s in chatter for s in ("H2O_cluster_total_nodes", "Connecting to H2O server", "progress: |")), chatter
    assert "H2O_cluster_total_nodes:    2" in chatter, chatter  # the status table of the 2-node cloud



def _cloud(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{url}/3/Cloud", timeout=30) as response:
        return json.loads(response.read())


def test_one_node_clouds_of_the_same_name_never_merge(tmp_path):
    """Two 1-node clouds named ``mbt-shared`` on this machine (the stack's own, and one that a
    benchmark or a second stack starts on spare ports) stay apart: every node gets a flatfile, so
    neither finds the other by multicast. Without it the second joined the stack's cloud, which
    then counted 2 nodes and lost its health when the second stopped."""
    env = {**os.environ, "MBT_STACK_DIR": str(tmp_path), "MBT_H2O_PORT": "24405", "MBT_H2O_NODES": "1",
           "MBT_H2O_XMX": "1g"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts" / "stack.sh"), *args, "h2o"], env=env,
                              capture_output=True, text=True, timeout=300)

    stack_url = f"http://127.0.0.1:{os.environ.get('MBT_H2O_PORT', '54321')}"
    assert _cloud(stack_url)["cloud_size"] == 1, "the stack's own cloud should be one node to begin with"
    up = run("up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        for url in ("http://127.0.0.1:24405", stack_url):
            body = _cloud(url)
            assert (body["cloud_name"], body["cloud_size"]) == ("mbt-shared", 1), url
    finally:
        down = run("down")
        assert down.returncode == 0, down.stdout + down.stderr
