"""The run context every step receives: the data interval rules (runtime/interval.py), the CLI
date options, the record in run_results.json, and run identity (64-bit ids, pipeline-namespaced
storage keys)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import pytest
from test_runtime_executor import make_manifest, training_steps

from airflow_mbt.cli.main import main
from airflow_mbt.runtime import artifacts
from airflow_mbt.runtime.artifact_registry import registry_key
from airflow_mbt.runtime.context import RunContext, TargetRuntime
from airflow_mbt.runtime.interval import align, interval_for, parse_datetime, resolve
from airflow_mbt.runtime.run_id import run_id_from_airflow
from airflow_mbt.runtime.runner import run_pipeline


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize("schedule, logical, start", [
    ("@daily", utc(2026, 11, 26), utc(2026, 11, 25)),
    ("@hourly", utc(2026, 11, 26, 5), utc(2026, 11, 26, 4)),
    ("@weekly", utc(2026, 11, 29), utc(2026, 11, 22)),
    ("@monthly", utc(2026, 3, 31), utc(2026, 2, 28)),
    ("@monthly", utc(2026, 1, 1), utc(2025, 12, 1)),
    ("0 3 * * *", utc(2026, 11, 26, 3), utc(2026, 11, 25, 3)),
    ("0 3 * * 1-5", utc(2026, 11, 30, 3), utc(2026, 11, 27, 3)),  # Monday -> the Friday before
])
def test_without_an_airflow_interval_it_is_the_cadence_period_ending_at_the_logical_date(schedule, logical, start):
    assert interval_for(logical, schedule, {}) == (start, logical)
    # CronTriggerTimetable hands over start == end: the same as no interval
    assert interval_for(logical, schedule, {}, (logical, logical)) == (start, logical)


def test_a_real_airflow_data_interval_is_kept():
    given = (utc(2026, 11, 20), utc(2026, 11, 26))
    assert interval_for(utc(2026, 11, 26), "@daily", {}, given) == given


@pytest.mark.parametrize("spec, start", [({"days": 2}, utc(2026, 11, 24)), ({"hours": 6}, utc(2026, 11, 25, 18)),
                                         ({"cadence": "weekly"}, utc(2026, 11, 19))])
def test_the_pipeline_override_wins(spec, start):
    config = {"deployment": {"cadence": "daily", "interval": spec}}
    given = (utc(2026, 11, 1), utc(2026, 11, 26))
    assert interval_for(utc(2026, 11, 26), "@daily", config, given) == (start, utc(2026, 11, 26))


def test_resolve_fills_the_run_context_and_keeps_a_run_without_a_date():
    manifest = make_manifest()
    run = resolve(RunContext(run_id="r", logical_date=datetime(2026, 11, 26)), manifest)  # naive = UTC
    assert (run.interval_start, run.interval_end, run.ds) == (utc(2026, 11, 25), utc(2026, 11, 26), "2026-11-26")
    assert run.template_values()["interval_start"] == utc(2026, 11, 25)
    bare = RunContext(run_id="r")
    assert resolve(bare, manifest) is bare


@pytest.mark.parametrize("schedule, moment, aligned", [
    ("@daily", utc(2026, 11, 26, 10, 32, 12), utc(2026, 11, 26)),
    ("@daily", utc(2026, 11, 26), utc(2026, 11, 26)),  # a fire time stays
    ("@hourly", utc(2026, 11, 26, 10, 59, 59), utc(2026, 11, 26, 10)),
    ("@monthly", utc(2026, 11, 26, 8), utc(2026, 11, 1)),
    ("0 3 * * *", utc(2026, 11, 26, 2, 59), utc(2026, 11, 25, 3)),
    ("0 3 * * *", utc(2026, 11, 26, 3, 0, 0, 500000), utc(2026, 11, 26, 3)),
])
def test_align_gives_the_latest_fire_time_at_or_before(schedule, moment, aligned):
    assert align(moment, schedule) == aligned


def test_a_manual_run_covers_the_period_of_its_day_and_others_are_taken_as_given():
    manifest = make_manifest()  # @daily
    noon = utc(2026, 11, 26, 12, 5)
    manual = resolve(RunContext(run_id="r", logical_date=noon, interval_start=noon, interval_end=noon,
                                run_type="manual"), manifest)
    assert (manual.logical_date, manual.ds) == (utc(2026, 11, 26), "2026-11-26")
    assert (manual.interval_start, manual.interval_end) == (utc(2026, 11, 25), utc(2026, 11, 26))
    # the scheduled run of that day gets the same logical date, hence the same output partition
    scheduled = resolve(RunContext(run_id="s", logical_date=utc(2026, 11, 26), run_type="scheduled"), manifest)
    assert scheduled.logical_date == manual.logical_date
    # `mbt run --logical-date` (no run type) and backfills are not moved
    assert resolve(RunContext(run_id="l", logical_date=noon), manifest).logical_date == noon
    assert resolve(RunContext(run_id="b", logical_date=noon, run_type="backfill"), manifest).logical_date == noon


@pytest.mark.parametrize("text, expected", [("2026-11-26", utc(2026, 11, 26)),
                                            ("2026-11-26T03:00:00Z", utc(2026, 11, 26, 3)),
                                            ("2026-11-26T04:00:00+01:00", utc(2026, 11, 26, 3))])
def test_dates_parse_to_utc(text, expected):
    assert parse_datetime(text, "--logical-date") == expected


@pytest.mark.parametrize("argv", [
    ["run", "--select", "x", "--logical-date", "26/11/2026"],
    ["step", "execute", "--pipeline", "p", "--step", "load_data", "--target", "dev", "--run-id", "r",
     "--logical-date", "2026-13-01"],
])
def test_a_bad_logical_date_exits_2_with_one_message(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--logical-date: invalid date {argv[-1]!r}" in err and "hint: use YYYY-MM-DD" in err
    assert "Traceback" not in err


def test_run_results_and_every_step_carry_the_run_context(tmp_path, monkeypatch):
    (tmp_path / "sample_data").mkdir()
    (tmp_path / "sample_data" / "customers.csv").write_text("customer_id,tenure,churned\nC1,1,0\nC2,2,1\nC3,3,0\n"
                                                            "C4,4,1\nC5,5,0\n")
    seen: list[RunContext] = []
    def recording(step_run):
        def run(ctx, inputs):
            seen.append(ctx.run)
            return step_run(ctx, inputs)
        return run

    for mod in training_steps([]).values():
        mod.run = recording(mod.run)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    manifest = make_manifest()
    run = RunContext(run_id="run_20261126_000000_0123456789abcdef", logical_date=utc(2026, 11, 26),
                     run_type="local")
    results = run_pipeline(manifest, TargetRuntime.from_manifest(manifest, tmp_path), run=run)
    assert results["status"] == "success"
    written = json.loads((tmp_path / "target" / "training_demo" / "run_results.json").read_text())
    assert written["run"] == {"run_id": run.run_id, "try_number": 1, "logical_date": "2026-11-26T00:00:00+00:00",
                              "ds": "2026-11-26", "interval_start": "2026-11-25T00:00:00+00:00",
                              "interval_end": "2026-11-26T00:00:00+00:00", "dag_id": None, "airflow_run_id": None,
                              "run_type": "local"}
    assert len(seen) == 5 and {(r.interval_start, r.interval_end) for r in seen} == {(utc(2026, 11, 25),
                                                                                     utc(2026, 11, 26))}
    assert (tmp_path / "local_artifacts" / "training_demo" / run.run_id / "load_data" / "raw_data.parquet").is_file()


def test_300_pipelines_on_one_logical_date_get_distinct_ids_and_prefixes():
    when = utc(2026, 11, 26)
    pipelines = [f"pipeline_{i:03d}" for i in range(300)]
    ids = {p: run_id_from_airflow(f"mbt_{p}", "scheduled__2026-11-26T00:00:00+00:00", when) for p in pipelines}
    assert len(set(ids.values())) == 300
    assert all(rid.startswith("run_20261126_000000_") and len(rid) == len("run_20261126_000000_") + 16
               for rid in ids.values())
    keys = {artifacts.artifact_key(rid, "load_data", "raw_data", "table", p) for p, rid in ids.items()}
    registries = {registry_key(rid, p) for p, rid in ids.items()}
    assert len(keys) == len(registries) == 300
    assert artifacts.artifact_key(ids["pipeline_007"], "load_data", "raw_data", "table", "pipeline_007") == \
        f"pipeline_007/{ids['pipeline_007']}/load_data/raw_data.parquet"
    # even an equal run id cannot share a key across pipelines
    assert registry_key("run_x", "a") != registry_key("run_x", "b")


def test_the_operator_builds_the_run_context_from_the_task_context():
    from airflow.models.dagrun import DagRun

    from airflow_mbt.operators.step import run_context_from_airflow

    when = utc(2026, 11, 26)
    dag_run = DagRun(dag_id="mbt_serving", run_id="scheduled__2026-11-26T00:00:00+00:00", logical_date=when,
                     run_after=when, data_interval=(when, when), run_type="scheduled")

    class TI:
        try_number = 3

    context = {"dag_run": dag_run, "ti": TI(), "logical_date": when, "data_interval_start": when,
               "data_interval_end": when}
    run = run_context_from_airflow(context, "run_x")
    assert (run.dag_id, run.airflow_run_id, run.run_type, run.try_number) == \
        ("mbt_serving", dag_run.run_id, "scheduled", 3)
    # CronTriggerTimetable's empty interval: the invocation path completes it from the cadence
    resolved = resolve(run, make_manifest())
    assert (resolved.interval_start, resolved.interval_end) == (utc(2026, 11, 25), when)
    manual = DagRun(dag_id="mbt_serving", run_id="manual__x", logical_date=None, run_after=when, run_type="manual")
    assert run_context_from_airflow({"dag_run": manual, "ti": TI()}, "run_y").logical_date == when


def test_on_kill_raises_step_terminated_only_while_a_step_runs_in_this_thread():
    import signal
    import threading

    from airflow_mbt.errors import StepTerminated
    from airflow_mbt.operators.step import MBTStepOperator

    op = MBTStepOperator(pipeline="p", step="load_data", manifest_uri="/m.json", manifest_hash="sha256:" + "0" * 64,
                         target="dev")
    op.on_kill()  # no step running: nothing to stop
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())  # what the task SDK installs
    try:
        op._running_in = threading.get_ident()
        with pytest.raises(StepTerminated):
            signal.raise_signal(signal.SIGTERM)
    finally:
        op._running_in = None
        signal.signal(signal.SIGTERM, previous)
