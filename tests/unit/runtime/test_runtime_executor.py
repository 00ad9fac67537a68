"""execute_step and run_pipeline over LocalStorage with small stand-in step modules.

The stand-ins replace ``airflow_mbt.steps.<name>`` (the built-in steps are tested on their own
and in tests/integration/test_local_workflow.py); storage, registry and files are all real.
"""

import json
import logging
import sys
import threading
import types

import pandas as pd
import pytest

from airflow_mbt.errors import MBTError, MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime.artifacts import ArtifactError
from airflow_mbt.runtime.context import TargetRuntime
from airflow_mbt.runtime.executor import execute_step
from airflow_mbt.runtime.artifact_registry import ArtifactNotFoundError, ArtifactRegistry
from airflow_mbt.runtime.runner import StepFailedError, run_pipeline
from airflow_mbt.step_specs import STEPS_BY_KIND, dependencies

RUN = "run_20260101_000000_abcd"


def make_manifest(kind="training"):
    specs = STEPS_BY_KIND[kind]
    deps = dependencies(specs)
    steps = [{"name": s.name, "inputs": list(s.inputs), "outputs": [{"name": n, "kind": k} for n, k in s.outputs],
              "depends_on": deps[s.name], "resources": {}} for s in specs]
    return Manifest.build({
        "pipeline": {"name": f"{kind}_demo", "kind": kind},
        "schedule": "@daily",
        "target": {"name": "dev", "storage": {"type": "local", "config": {"base_path": "./local_artifacts"}},
                   "data_connector": {"type": "local_file", "config": {"data_path": "./sample_data"}}},
        "config": {"training": {"data_source": {"label_table": "customers"}}},
        "steps": steps,
    })


def _module(name, fn):
    mod = types.ModuleType(f"airflow_mbt.steps.{name}")
    mod.run = fn
    return mod


def training_steps(calls):
    def load_data(ctx, inputs):
        calls.append(("load_data", ctx.try_number, ctx.work_dir))
        return {"raw_data": ctx.connector().read_table(ctx.config["training"]["data_source"]["label_table"])}

    def split_data(ctx, inputs):
        raw = inputs["raw_data"]
        return {"train_set": raw.iloc[:3], "test_set": raw.iloc[3:]}

    def train_model(ctx, inputs):
        model_dir = ctx.step_dir / "model"
        model_dir.mkdir()
        (model_dir / "mbt_model.json").write_text(json.dumps({"rows": len(inputs["train_set"])}))
        return {"model": model_dir, "preprocessor": {"version": 1, "output_columns": ["x"]}}

    def evaluate(ctx, inputs):
        rows = json.loads((inputs["model"] / "mbt_model.json").read_text())["rows"]
        plots = ctx.step_dir / "plots"
        plots.mkdir()
        return {"metrics": {"roc_auc": 0.8, "rows": rows, "test": len(inputs["test_set"])}, "plots": plots}

    def log_run(ctx, inputs):
        return {"mlflow_run": {"run_id": "abc123", "experiment_id": "1"}}

    return {f.__name__: _module(f.__name__, f) for f in (load_data, split_data, train_model, evaluate, log_run)}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "sample_data").mkdir()
    pd.DataFrame({"customer_id": [f"C{i}" for i in range(5)], "tenure": range(5),
                  "churned": [0, 1, 0, 1, 0]}).to_csv(tmp_path / "sample_data" / "customers.csv", index=False)
    return tmp_path


@pytest.fixture
def steps(monkeypatch):
    calls = []
    for mod in training_steps(calls).values():
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return calls


def _runtime(manifest, project):
    return TargetRuntime.from_manifest(manifest, project)


def test_execute_step_stores_outputs_and_records_them(project, steps, caplog):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    with caplog.at_level(logging.INFO, logger="airflow_mbt"):
        result = execute_step(manifest, "load_data", RUN, rt, try_number=2)
    assert f"mbt step training_demo.load_data run_id={RUN} try=2 target=dev" in caplog.text
    expected = project / "local_artifacts" / "training_demo" / RUN / "load_data" / "raw_data.parquet"
    assert result.status == "success" and result.name == "load_data" and result.run_id == RUN
    assert result.outputs == {"raw_data": str(expected)} and expected.is_file()
    assert result.to_xcom() == {"step": "load_data", "name": "load_data", "status": "success",
                                "seconds": result.seconds, "outputs": result.outputs, "run_id": RUN,
                                "peak_rss_mib": result.peak_rss_mib}
    # the process's own peak, in MiB: at least what it holds now, at most its peak after the step
    import resource
    assert result.peak_rss_mib is not None
    assert 1 < result.peak_rss_mib <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 0.1
    assert f"ok in {result.seconds:.1f}s, peak RSS {result.peak_rss_mib:.0f} MiB" in caplog.text
    assert pd.read_parquet(expected)["customer_id"].tolist() == [f"C{i}" for i in range(5)]
    entry = ArtifactRegistry(rt.storage(), RUN, pipeline=manifest.name).lookup("raw_data")
    assert entry["key"] == f"training_demo/{RUN}/load_data/raw_data.parquet" and entry["kind"] == "table"
    assert not steps[0][2].exists()  # its own temp work dir is removed


def test_steps_chain_through_the_registry_and_dirs_round_trip(project, steps):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    for name in ("load_data", "split_data", "train_model", "evaluate"):
        execute_step(manifest, name, RUN, rt)
    metrics = json.loads((project / "local_artifacts" / "training_demo" / RUN / "evaluate" / "metrics.json").read_text())
    assert metrics == {"roc_auc": 0.8, "rows": 3, "test": 2}
    assert (project / "local_artifacts" / "training_demo" / RUN / "train_model" / "model.tar").is_file()


def test_missing_input_names_the_producing_step(project, steps):
    manifest = make_manifest()
    with pytest.raises(ArtifactNotFoundError, match=r"artifact 'train_set' not found for run .*did step 'split_data' run\?"):
        execute_step(manifest, "train_model", RUN, _runtime(manifest, project))


def test_tampered_input_fails_verification(project, steps):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    execute_step(manifest, "load_data", RUN, rt)
    path = project / "local_artifacts" / "training_demo" / RUN / "load_data" / "raw_data.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"'raw_data' at .*raw_data.parquet failed verification"):
        execute_step(manifest, "split_data", RUN, rt)


def test_retry_overwrites_outputs(project, steps):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    execute_step(manifest, "load_data", RUN, rt)
    first = ArtifactRegistry(rt.storage(), RUN, pipeline=manifest.name).lookup("raw_data")
    pd.DataFrame({"customer_id": ["Z"], "tenure": [9], "churned": [1]}).to_csv(
        project / "sample_data" / "customers.csv", index=False)
    execute_step(manifest, "load_data", RUN, rt, try_number=2)
    second = ArtifactRegistry(rt.storage(), RUN, pipeline=manifest.name).lookup("raw_data")
    assert second["uri"] == first["uri"] and second["sha256"] != first["sha256"]
    assert pd.read_parquet(second["uri"])["customer_id"].tolist() == ["Z"]


def test_given_work_dir_is_used_and_kept(project, steps, tmp_path):
    manifest = make_manifest()
    work = tmp_path / "work"
    execute_step(manifest, "load_data", RUN, _runtime(manifest, project), work_dir=work)
    assert steps[0][2] == work and work.is_dir() and list(work.iterdir()) == []


@pytest.mark.parametrize("bad_output,error,match", [
    ({}, MBTError, "did not return its declared outputs: train_set, test_set"),
    ({"train_set": {"not": "a frame"}, "test_set": pd.DataFrame()}, ArtifactError, "must be a pandas DataFrame"),
    (None, MBTError, "expected a dict"),
])
def test_bad_step_outputs(project, steps, monkeypatch, bad_output, error, match):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    execute_step(manifest, "load_data", RUN, rt)
    monkeypatch.setitem(sys.modules, "airflow_mbt.steps.split_data",
                        _module("split_data", lambda ctx, inputs: bad_output))
    with pytest.raises(error, match=match):
        execute_step(manifest, "split_data", RUN, rt)
    assert "train_set" not in ArtifactRegistry(rt.storage(), RUN, pipeline=manifest.name).load()


@pytest.mark.parametrize("step,run_id,match", [
    ("nope", RUN, "has no step 'nope'"),
    ("../x", RUN, "invalid step name"),
    ("load_data", "../escape", "invalid run id"),
])
def test_bad_arguments_are_input_errors(project, steps, step, run_id, match):
    manifest = make_manifest()
    with pytest.raises(MBTInputError, match=match):
        execute_step(manifest, step, run_id, _runtime(manifest, project))


def test_independent_serving_steps_record_concurrently(project, monkeypatch):
    manifest = make_manifest("serving")

    def load_model(ctx, inputs):
        d = ctx.step_dir / "model"
        d.mkdir()
        return {"model": d, "preprocessor": {"version": 1}, "model_ref": {"run_id": "r1"}}

    def load_scoring_data(ctx, inputs):
        return {"scoring_data": pd.DataFrame({"customer_id": ["N1"]})}

    for f in (load_model, load_scoring_data):
        monkeypatch.setitem(sys.modules, f"airflow_mbt.steps.{f.__name__}", _module(f.__name__, f))
    for rep in range(10):
        run_id = f"{RUN}_{rep}"
        errors = []

        def go(name, run_id=run_id, errors=errors):
            try:
                execute_step(manifest, name, run_id, _runtime(manifest, project))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(n,)) for n in ("load_model", "load_scoring_data")]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == []
        reg = ArtifactRegistry(_runtime(manifest, project).storage(), run_id, pipeline=manifest.name).load()
        assert sorted(reg) == ["model", "model_ref", "preprocessor", "scoring_data"]


def test_run_pipeline_success_results_and_progress(project, steps):
    manifest = make_manifest()
    rt = _runtime(manifest, project)
    rt.storage()
    events = []
    results = run_pipeline(manifest, rt, progress=events.append)
    run_id = results["run_id"]
    path = project / "target" / "training_demo" / "run_results.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == results
    assert results["status"] == "success" and results["mlflow_run_id"] == "abc123" and results["target"] == "dev"
    assert [s["name"] for s in results["steps"]] == ["load_data", "split_data", "train_model", "evaluate", "log_run"]
    assert {s["status"] for s in results["steps"]} == {"success"}
    assert [(e["event"], e["index"], e["step"]) for e in events[:2]] == [("start", 1, "load_data"), ("end", 1, "load_data")]
    assert len(events) == 10 and all(e["total"] == 5 and e["run_id"] == run_id for e in events)
    assert rt._cache == {}  # runtime closed at the end
    for step in ("load_data", "split_data", "train_model", "evaluate", "log_run"):
        assert (project / "local_artifacts" / manifest.name / run_id / step).is_dir()


def test_run_pipeline_failure_skips_rest_writes_results_and_reraises(project, steps, monkeypatch):
    def broken(ctx, inputs):
        raise KeyError("churned")

    monkeypatch.setitem(sys.modules, "airflow_mbt.steps.train_model", _module("train_model", broken))
    manifest = make_manifest()
    events = []
    with pytest.raises(StepFailedError, match="step 'train_model' failed: KeyError: 'churned'") as err:
        run_pipeline(manifest, _runtime(manifest, project), run_id=RUN, progress=events.append)
    assert isinstance(err.value.__cause__, KeyError) and err.value.step == "train_model"
    results = json.loads((project / "target" / "training_demo" / "run_results.json").read_text())
    assert results["status"] == "failed" and results["run_id"] == RUN and results["mlflow_run_id"] is None
    assert [(s["name"], s["status"]) for s in results["steps"]] == [
        ("load_data", "success"), ("split_data", "success"), ("train_model", "failed"),
        ("evaluate", "skipped"), ("log_run", "skipped")]
    assert results["steps"][2]["error"] == "KeyError: 'churned'"
    assert [e["status"] for e in events if e["event"] == "end"] == ["success", "success", "failed", "skipped", "skipped"]


def test_run_pipeline_keeps_input_error_type(project, steps, monkeypatch):
    def bad_input(ctx, inputs):
        raise MBTInputError("column 'churned' missing", field="training.schema.target.label_column")

    monkeypatch.setitem(sys.modules, "airflow_mbt.steps.load_data", _module("load_data", bad_input))
    manifest = make_manifest()
    results_path = project / "elsewhere" / "results.json"
    with pytest.raises(MBTInputError) as err:
        run_pipeline(manifest, _runtime(manifest, project), results_path=results_path)
    assert str(err.value).startswith("step 'load_data' failed: training.schema.target.label_column: column")
    assert json.loads(results_path.read_text())["status"] == "failed"
