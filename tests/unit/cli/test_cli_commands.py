"""The ``mbt`` executable, run as a subprocess: outputs, files and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MBT = Path(sys.executable).with_name("mbt")
TRAIN = "training_churn_model_v1"
SERVE = "serving_churn_model_v1"


def mbt(*args, cwd=None, check_rc=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    proc = subprocess.run([str(MBT), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    parent = tmp_path_factory.mktemp("cli")
    mbt("init", "demo-project", cwd=parent, check_rc=0)
    # these tests use the run-id flow of serving (the scaffold follows the registry alias)
    serving = parent / "demo-project" / "pipelines" / f"{SERVE}.yaml"
    text = serving.read_text().replace("    model_name: churn_model\n", "").replace("    alias: champion\n", "")
    text = text.replace("  on_model_change: true", "  on_model_change: false")
    serving.write_text(text.replace('# run_id: "<run_id_from_mlflow>"', 'run_id: "<run_id_from_mlflow>"'))
    return parent / "demo-project"


def test_version_and_help():
    assert mbt("--version", check_rc=0).stdout.strip() == "mbt 0.1.0"
    out = mbt("--help", check_rc=0).stdout
    for command in ("init", "validate", "compile", "run", "step", "deploy", "rollback", "undeploy", "releases"):
        assert command in out
    assert "examples:" in out
    for command in (["init"], ["validate"], ["compile"], ["run"], ["step", "execute"], ["deploy"], ["rollback"],
                    ["undeploy"], ["releases"]):
        text = mbt(*command, "--help", check_rc=0).stdout
        assert "examples:" in text and "mbt " + command[0] in text


def test_no_command_prints_help_and_exits_2():
    proc = mbt()
    assert proc.returncode == 2 and "usage: mbt" in proc.stdout


def test_init_refuses_existing_folder(project):
    proc = mbt("init", project.name, cwd=project.parent, check_rc=2)
    assert "already exists" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_reports_each_pipeline(project):
    proc = mbt("validate", TRAIN, cwd=project / "pipelines", check_rc=0)  # found by walking up
    assert proc.stdout.strip() == f"Pipeline '{TRAIN}' is valid."
    # serving on the run-id flow, still the placeholder: an error when named, a skip when validating all
    proc = mbt("validate", TRAIN, SERVE, cwd=project, check_rc=2)
    assert f"Pipeline '{TRAIN}' is valid." in proc.stdout
    assert f"error: pipelines/{SERVE}.yaml:" in proc.stderr and "paste the run id" in proc.stderr
    assert "1 of 2 pipelines have errors" in proc.stderr
    proc = mbt("validate", cwd=project, check_rc=0)
    assert proc.stdout.strip() == f"Pipeline '{TRAIN}' is valid."
    assert f"warning: skipping '{SERVE}', not ready: pipelines/{SERVE}.yaml:" in proc.stderr
    proc = mbt("compile", "--target", "prod", cwd=project, check_rc=0)
    assert proc.stdout.strip() == f"Manifest saved to target/{TRAIN}/manifest.json"
    assert not (project / "target" / SERVE).exists()


def test_compile_writes_manifest(project):
    proc = mbt("--project-dir", project, "compile", TRAIN, "--target", "dev", "--vars", "max_runtime_secs=45",
               check_rc=0)
    assert proc.stdout.strip() == f"Manifest saved to target/{TRAIN}/manifest.json"
    data = json.loads((project / "target" / TRAIN / "manifest.json").read_text())
    assert data["config"]["training"]["model_training"]["config"]["max_runtime_secs"] == 45
    assert [s["name"] for s in data["steps"]] == ["load_data", "split_data", "train_model", "evaluate", "log_run",
                                                  "promote"]
    first = (project / "target" / TRAIN / "manifest.json").read_bytes()
    mbt("compile", TRAIN, "--target", "dev", "--vars", "{max_runtime_secs: 45}", "--project-dir", project, check_rc=0)
    assert (project / "target" / TRAIN / "manifest.json").read_bytes() == first


def test_compile_unknown_target_is_input_error(project):
    proc = mbt("compile", TRAIN, "--target", "staging", cwd=project, check_rc=2)
    assert proc.stderr.startswith("error: profiles.yaml:") and "unknown target 'staging'" in proc.stderr


def test_step_execute_checks_the_manifest(project):
    mbt("compile", TRAIN, "--target", "dev", cwd=project, check_rc=0)
    base = ["step", "execute", "--pipeline", TRAIN, "--step", "load_data", "--run-id", "run_20260101_000000_ab12"]
    proc = mbt(*base, "--target", "prod", cwd=project, check_rc=2)
    assert "compiled for target 'dev', not 'prod'" in proc.stderr
    proc = mbt(*base, "--target", "dev", "--manifest-hash", "sha256:" + "0" * 64, cwd=project, check_rc=2)
    assert "--manifest-hash" in proc.stderr
    manifest = project / "target" / TRAIN / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"seed": 42', '"seed": 43', 1))
    proc = mbt(*base, "--target", "dev", cwd=project, check_rc=2)
    assert "content_hash does not match" in proc.stderr


def test_step_execute_runs_one_step(project):
    mbt("compile", TRAIN, "--target", "dev", cwd=project, check_rc=0)
    proc = mbt("step", "execute", "--pipeline", TRAIN, "--step", "load_data", "--target", "dev",
               "--run-id", "run_20260101_000000_cd34", cwd=project, check_rc=0)
    assert "Step 'load_data'" in proc.stdout and "raw_data:" in proc.stdout
    assert (project / "local_artifacts" / TRAIN / "run_20260101_000000_cd34" / "load_data").is_dir()
    results = json.loads((project / "target" / TRAIN / "run_results.json").read_text())
    assert (results["status"], results["run_id"], [s["name"] for s in results["steps"]]) == \
        ("success", "run_20260101_000000_cd34", ["load_data"])
    assert results["steps"][0]["outputs"]["raw_data"] and results["run"]["interval_end"]
    # a failing step still leaves its run_results.json, with the reason
    proc = mbt("step", "execute", "--pipeline", TRAIN, "--step", "split_data", "--target", "dev",
               "--run-id", "run_20260101_000000_ef56", cwd=project)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    results = json.loads((project / "target" / TRAIN / "run_results.json").read_text())
    assert (results["status"], results["run_id"]) == ("failed", "run_20260101_000000_ef56")
    assert results["steps"][0]["status"] == "failed" and "raw_data" in results["steps"][0]["error"]


def test_step_execute_writes_the_xcom_file_only_for_a_successful_step(project, tmp_path):
    """``--xcom-file`` / env ``MBT_XCOM_FILE`` (what the Kubernetes operator's pods read back): the
    result the in-process operator returns as XCom, written only when the step succeeded."""
    mbt("compile", TRAIN, "--target", "dev", cwd=project, check_rc=0)
    xcom = tmp_path / "xcom" / "return.json"
    mbt("step", "execute", "--pipeline", TRAIN, "--step", "load_data", "--target", "dev",
        "--run-id", "run_20260101_000000_0a0a", "--xcom-file", xcom, cwd=project, check_rc=0)
    value = json.loads(xcom.read_text())
    step = json.loads((project / "target" / TRAIN / "run_results.json").read_text())["steps"][0]
    assert (value["name"], value["status"], value["run_id"]) == ("load_data", "success", "run_20260101_000000_0a0a")
    assert value["outputs"] == step["outputs"] and value["outputs"]["raw_data"]
    assert [p.name for p in xcom.parent.iterdir()] == ["return.json"]  # no temp file left
    # a failing step (no raw_data in this run) leaves no file, not even the previous one
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    proc = subprocess.run([str(MBT), "step", "execute", "--pipeline", TRAIN, "--step", "split_data", "--target",
                           "dev", "--run-id", "run_20260101_000000_0b0b"], cwd=project, capture_output=True,
                          text=True, env={**env, "MBT_XCOM_FILE": str(xcom)}, timeout=600)
    assert proc.returncode != 0 and not xcom.exists()


def test_deploy_dry_run_and_publish(project, tmp_path):
    mbt("compile", TRAIN, "--target", "prod", cwd=project, check_rc=0)
    store = tmp_path / "store"
    proc = mbt("deploy", "--target", "prod", "--to", store, "--dry-run", cwd=project, check_rc=0)
    assert proc.stdout.startswith("(dry run) create") and TRAIN in proc.stdout
    assert not store.exists()
    proc = mbt("deploy", "--target", "prod", "--to", store, cwd=project, check_rc=0)
    assert (store / TRAIN / "manifest.json").is_file()
    again = mbt("deploy", "--target", "prod", "--to", store, cwd=project, check_rc=0)
    assert "unchanged" in again.stdout and "warning" not in again.stderr
    source = project / "pipelines" / f"{TRAIN}.yaml"
    original = source.read_text()
    source.write_text(original + "# edited after compiling\n")
    stale = mbt("deploy", "--target", "prod", "--to", store, "--dry-run", cwd=project, check_rc=0)
    assert "was compiled from an older pipelines/" in stale.stderr
    source.write_text(original)
    mbt("compile", TRAIN, "--target", "prod", "--vars", "max_runtime_secs=99", cwd=project, check_rc=0)
    proc = mbt("deploy", "--target", "prod", "--to", store, cwd=project, check_rc=0)  # a new release, no --force
    assert proc.stdout.startswith("update") and TRAIN in proc.stdout


def test_release_flow_comment_lib_rollback_undeploy(tmp_path):
    mbt("init", "rel-project", cwd=tmp_path, check_rc=0)
    project, store = tmp_path / "rel-project", tmp_path / "store"

    def deploy(*extra):
        mbt("compile", TRAIN, "--target", "prod", cwd=project, check_rc=0)
        return mbt("deploy", "--target", "prod", "--to", store, *extra, cwd=project, check_rc=0).stdout

    assert deploy().startswith("create")
    source = project / "pipelines" / f"{TRAIN}.yaml"
    source.write_text("# a comment changes the YAML text, not the release\n" + source.read_text())
    assert deploy().startswith("unchanged")
    features = project / "lib" / "features.py"
    features.write_text(features.read_text() + "\n\ndef double(df):\n    return df\n")
    dry = deploy("--dry-run")
    assert dry.startswith("(dry run) update") and "~ code.files.lib/features.py" in dry
    assert deploy().startswith("update")
    listing = mbt("releases", TRAIN, "--manifests", store, check_rc=0).stdout
    assert [line.split()[1] for line in listing.splitlines()[1:3]] != [] and listing.count(" deploy ") == 2
    history = json.loads(mbt("releases", TRAIN, "--manifests", store, "--json", check_rc=0).stdout)
    first, second = (e["content_hash"] for e in history["events"])
    assert history["current"] == second and first != second
    out = mbt("rollback", TRAIN, "--manifests", store, check_rc=0).stdout
    assert out.startswith("rollback") and first.split(":")[1][:12] in out
    assert json.loads((store / TRAIN / "manifest.json").read_text())["content_hash"] == first
    assert "unchanged" in mbt("rollback", TRAIN, "--manifests", store, "--to", "1", check_rc=0).stdout
    mbt("rollback", TRAIN, "--manifests", store, "--to", second.split(":")[1][:10], check_rc=0)
    assert json.loads((store / TRAIN / "manifest.json").read_text())["content_hash"] == second
    bad = mbt("rollback", TRAIN, "--manifests", store, "--to", "99", check_rc=2)
    assert "--to" in bad.stderr and "Traceback" not in bad.stderr
    assert mbt("undeploy", TRAIN, "--manifests", store, check_rc=0).stdout.startswith("undeploy")
    assert not (store / TRAIN / "manifest.json").exists()
    assert (store / TRAIN / f"{second.split(':')[1]}.json").is_file()  # releases stay
    history = json.loads(mbt("releases", TRAIN, "--manifests", store, "--json", check_rc=0).stdout)
    assert history["current"] is None
    assert [e["action"] for e in history["events"]] == ["deploy", "deploy", "rollback", "rollback", "undeploy"]
    assert "absent" in mbt("undeploy", TRAIN, "--manifests", store, check_rc=0).stdout
    mbt("rollback", TRAIN, "--manifests", store, "--to", "1", check_rc=0)  # re-deploys after an undeploy
    assert json.loads((store / TRAIN / "manifest.json").read_text())["content_hash"] == first


def test_tampered_manifest_is_an_input_error_naming_the_field(project):
    # valid JSON with a good hash but a step without inputs/outputs: exit 2, no traceback
    from airflow_mbt.manifest import canonical_json, compute_hash

    mbt("compile", TRAIN, "--target", "dev", cwd=project, check_rc=0)
    good = json.loads((project / "target" / TRAIN / "manifest.json").read_text())
    good["pipeline"]["name"] = "broken"
    good["steps"] = [{"name": "load_data"}]
    good["content_hash"] = compute_hash(good)  # re-hashed, as a tamperer would
    (project / "target" / "broken").mkdir(parents=True, exist_ok=True)
    (project / "target" / "broken" / "manifest.json").write_text(canonical_json(good))
    proc = mbt("step", "execute", "--pipeline", "broken", "--step", "load_data", "--target", good["target"]["name"],
               "--run-id", "run_20260101_000000_ef56", cwd=project, check_rc=2)
    assert "steps[0]: step is missing inputs, outputs, depends_on" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 2


def test_unexpected_errors_need_verbose_for_a_traceback(project, monkeypatch, capsys):
    # a bug inside a step (a KeyError from code, not from input): exit 1, traceback only with -v
    import sys
    import types

    from airflow_mbt.cli.main import main

    def broken(ctx, inputs):
        return {}["no such key"]

    module = types.ModuleType("airflow_mbt.steps.load_data")
    module.run = broken
    monkeypatch.setitem(sys.modules, "airflow_mbt.steps.load_data", module)
    monkeypatch.chdir(project)
    assert main(["compile", TRAIN, "--target", "dev"]) == 0
    args = ["step", "execute", "--pipeline", TRAIN, "--step", "load_data", "--target", "dev",
            "--run-id", "run_20260101_000000_ef56"]
    assert main(args) == 1
    quiet = capsys.readouterr().err
    assert "unexpected KeyError in step 'load_data'" in quiet and "Traceback" not in quiet and "-v" in quiet
    assert main(["-v", *args]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_help_lists_every_exit_code():
    out = mbt("--help", check_rc=0).stdout
    for code in (0, 1, 2, 3, 130, 143):
        assert f"\n  {code:<4} " in out, code


def test_run_input_failure_in_a_step_exits_2(tmp_path):
    mbt("init", "failing", cwd=tmp_path, check_rc=0)
    project = tmp_path / "failing"
    (project / "lib" / "features.py").write_text("def explode(df):\n    raise ValueError('boom in transform')\n")
    base = project / "pipelines" / "_base_churn.yaml"
    base.write_text(base.read_text().replace("custom_transforms: []", 'custom_transforms: ["lib.features:explode"]'))
    proc = mbt("run", "--select", TRAIN, "--target", "dev", cwd=project, check_rc=2)
    assert "Run id: run_" in proc.stdout and "[1/6] load_data ... ok (" in proc.stdout  # 6: with promote
    assert "[3/6] train_model ... skipped" in proc.stdout
    assert "step 'split_data' failed" in proc.stderr and "boom in transform" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((project / "target" / TRAIN / "run_results.json").read_text())["status"] == "failed"


def test_run_validation_criteria_failure_exits_3_no_retry(tmp_path):
    mbt("init", "strict", cwd=tmp_path, check_rc=0)
    project = tmp_path / "strict"
    (project / "pipelines" / f"{TRAIN}.yaml").write_text(
        "base_pipeline: _base_churn\n"
        f"project: {{name: {TRAIN}}}\n"
        "deployment: {cadence: daily}\n"
        "training:\n"
        "  model_training: {framework: sklearn, config: {model: RandomForestClassifier, n_estimators: 5}}\n"
        "  evaluation: {validation_criteria: ['roc_auc >= 0.999']}\n")
    proc = mbt("run", "--select", TRAIN, "--target", "dev", cwd=project, check_rc=3)
    assert "[4/5] evaluate ... FAILED" in proc.stdout and "[5/5] log_run ... skipped" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "step 'evaluate' failed" in errors[0] and "roc_auc" in errors[0]
    assert "Traceback" not in proc.stderr
