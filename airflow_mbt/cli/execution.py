"""``mbt run`` (compile, then every step in this process) and ``mbt step execute`` (one step)."""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_mbt.cli.context import project_of, target_of, vars_of
from airflow_mbt.constants import PipelineKind
from airflow_mbt.errors import MBTInputError


RUN_TYPE_LOCAL = "local"  # run_type of a run started by hand from the CLI (not by Airflow)


def _date_arg(value, field: str, now: bool = False):
    """A CLI date option as a UTC datetime; ``now`` (UTC) when absent and ``now`` is set."""
    from datetime import datetime, timezone

    from airflow_mbt.runtime.interval import parse_datetime

    if value in (None, ""):
        return datetime.now(timezone.utc).replace(microsecond=0) if now else None
    return parse_datetime(value, field)


class Progress:
    """Prints ``[1/5] load_data ... ok (0.4s)`` lines from runner events.

    On a terminal the step name shows while the step runs; elsewhere (logs, CI) each line is
    written whole when the step ends, so output that libraries print meanwhile cannot split it.
    """

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.live = bool(getattr(self.out, "isatty", lambda: False)())

    def __call__(self, event: dict) -> None:
        head = f"[{event.get('index')}/{event.get('total')}] {event.get('step')} ..."
        if event.get("event") == "start":
            if self.live:
                print(head, end=" ", file=self.out, flush=True)
            return
        status, seconds = event.get("status"), event.get("seconds") or 0
        outcome = "skipped" if status == "skipped" else \
            f"{'ok' if status == 'success' else 'FAILED'} ({seconds:.1f}s)"
        if self.live and status != "skipped":
            print(outcome, file=self.out, flush=True)
        else:
            print(f"{head} {outcome}", file=self.out, flush=True)


def _mlflow_hint(manifest, project) -> str | None:
    uri = manifest.target.mlflow.get("tracking_uri")
    if isinstance(uri, str) and uri.startswith(("sqlite:", "file:", "./", "/")):
        return f"mlflow ui --backend-store-uri {uri}  (run in {project.root})"
    if isinstance(uri, str) and uri.startswith("http"):
        return uri
    conn = manifest.target.mlflow.get("conn_id")
    return f"the MLflow server of connection {conn!r}" if conn else None


def _predictions_hint(manifest, runtime, project) -> str | None:
    output = (manifest.config.get("serving") or {}).get("output") or {}
    if output.get("destination") == "local_file":
        return str(project.root / output.get("path", "predictions.csv"))
    if output.get("destination") == "database":
        connector = manifest.target.data_connector.type
        if connector == "local_file":
            return str(runtime.connector().table_file(output.get("table")))
        return f"table {output.get('table')} ({connector} data connector)"
    return None


def _summary(manifest, runtime, project, results: dict) -> None:
    from airflow_mbt.runtime.artifacts import run_prefix

    run_id = results["run_id"]
    print(f"Completed {manifest.name} in {results.get('seconds', 0):.1f}s (run id {run_id})")
    try:
        print(f"  artifacts:     {runtime.storage().uri(run_prefix(run_id, manifest.name))}")
    except Exception:  # noqa: BLE001 - the summary must not fail a successful run
        pass
    if results.get("mlflow_run_id"):
        print(f"  MLflow run:    {results['mlflow_run_id']}")
    hint = _mlflow_hint(manifest, project)
    if hint and manifest.kind == PipelineKind.TRAINING:
        print(f"  MLflow UI:     {hint}")
    for line in _lifecycle_lines(results):
        print(line)
    predictions = _predictions_hint(manifest, runtime, project)
    if predictions and manifest.kind == PipelineKind.SERVING:
        print(f"  predictions:   {predictions}")
    print(f"  run results:   {_results_path(project, manifest)}")


def _lifecycle_lines(results: dict) -> list[str]:
    """The registry outcome of a run: the promotion decision, or the model version served."""
    steps = {s["name"]: s.get("summary") or {} for s in results.get("steps") or []}
    promotion = steps.get("apply_promotion") or steps.get("promote")
    lines = []
    if promotion:
        where = f"{promotion['model_name']}@{promotion['alias']}"
        mine = promotion["challenger"]["version"]
        if promotion["decision"] == "awaiting_approval":
            lines.append(f"  registry:      version {mine} AWAITING APPROVAL: {where} not moved "
                         f"({promotion['reason']}); approve it in Airflow, or set the alias in MLflow")
        else:
            lines.append(f"  registry:      version {mine} {promotion['decision'].replace('_', ' ')} "
                         f"as {where} ({promotion['reason']})")
    served = steps.get("load_model")
    if served and served.get("model_name"):
        lines.append(f"  model:         {served['model_name']}@{served['alias']} = version {served['version']} "
                     f"(MLflow run {served['run_id']})")
    return lines


def _results_path(project, manifest) -> str:
    return project.relative(project.root / "target" / manifest.name / "run_results.json")


def cmd_run(args) -> int:
    from airflow_mbt.cli.authoring import compile_one

    logical_date = _date_arg(args.logical_date, "--logical-date", now=True)  # bad input first, before compiling
    project = project_of(args)
    variables = vars_of(args)
    target = target_of(project, args, variables)
    manifest = compile_one(project, args.select, target, variables)
    print(f"Manifest saved to {project.relative(project.manifest_path(args.select))}")

    from airflow_mbt.runtime.context import RunContext, TargetRuntime
    from airflow_mbt.runtime.invocation import sigterm_raises
    from airflow_mbt.runtime.run_id import new_run_id, validate_run_id
    from airflow_mbt.runtime.runner import run_pipeline

    run_id = validate_run_id(args.run_id, "--run-id") if args.run_id else new_run_id()
    run = RunContext(run_id=run_id, logical_date=logical_date, run_type=RUN_TYPE_LOCAL)
    print(f"Run id: {run_id}  (pipeline {manifest.name}, target {manifest.target_name}, "
          f"logical date {run.logical_date.isoformat() if run.logical_date else '-'})", flush=True)
    runtime = TargetRuntime.from_manifest(manifest, project_dir=project.root)
    try:
        with sigterm_raises():
            results = run_pipeline(manifest, runtime, run=run, progress=Progress(), parallel=args.parallel)
    except BaseException:
        print(f"Run {run_id} failed; step results in {_results_path(project, manifest)}", file=sys.stderr)
        raise
    _summary(manifest, runtime, project, results)
    return 0


def _manifest_source(args, project):
    from airflow_mbt.runtime.invocation import ManifestSource

    if args.manifest:
        location = args.manifest
    elif project is not None:
        location = str(project.manifest_path(args.pipeline))
    else:
        location = str(Path("target") / args.pipeline / "manifest.json")
    return ManifestSource(location, conn_id=args.manifest_conn_id, expected_hash=args.manifest_hash)


def cmd_step_execute(args) -> int:
    project = None
    try:
        project = project_of(args)
    except MBTInputError:
        if getattr(args, "project_dir", None):
            raise  # an explicit --project-dir must exist; otherwise run from the current folder
    if args.try_number < 1:
        raise MBTInputError("must be 1 or more", field="--try-number", hint="Airflow's try numbers start at 1")

    from airflow_mbt.runtime.context import RunContext
    from airflow_mbt.runtime.invocation import invoke_from_source, sigterm_raises
    from airflow_mbt.runtime.run_id import validate_run_id

    run = RunContext(run_id=validate_run_id(args.run_id, "--run-id"), try_number=args.try_number,
                     logical_date=_date_arg(args.logical_date, "--logical-date", now=True),
                     interval_start=_date_arg(args.interval_start, "--interval-start"),
                     interval_end=_date_arg(args.interval_end, "--interval-end"),
                     run_type=args.run_type or RUN_TYPE_LOCAL, dag_id=args.dag_id or None,
                     airflow_run_id=args.airflow_run_id or None, partition=args.partition)
    import time

    from airflow_mbt.runtime import run_results
    from airflow_mbt.runtime.interval import resolve
    from airflow_mbt.runtime.runner import failed_step_result, finish

    root = project.root if project else Path.cwd()
    path = run_results.default_path(root, args.pipeline)
    xcom_file = _xcom_file(args)
    if xcom_file is not None:
        xcom_file.unlink(missing_ok=True)  # the file exists afterwards only if THIS step succeeded
    results = run_results.RunResults(pipeline=args.pipeline, run_id=run.run_id, target=args.target,
                                     run=run.to_json())
    started = time.monotonic()
    try:
        with sigterm_raises():
            manifest, result = invoke_from_source(_manifest_source(args, project), pipeline=args.pipeline,
                                                  target=args.target, step=args.step, run=run, project_dir=root)
    except BaseException as exc:
        # one step's run_results.json (status failed / terminated), then the error as usual
        results.steps.append(failed_step_result(args.step, exc, time.monotonic() - started, run.run_id))
        finish(results, exc, complete=False, started=started)
        _write_results(results, path)
        raise
    results.run = resolve(run, manifest).to_json()
    results.steps.append(result)
    finish(results, None, complete=True, started=started)
    _write_results(results, path)
    if xcom_file is not None:
        _write_xcom(result, xcom_file)
    print(f"Step {args.step!r} of {manifest.name} ok ({result.seconds:.1f}s, run id {args.run_id})")
    for name, uri in sorted(result.outputs.items()):
        print(f"  {name}: {uri}")
    print(f"  run results: {path}")
    return 0


def _xcom_file(args) -> Path | None:
    """Where ``--xcom-file`` (or env ``MBT_XCOM_FILE``) asks for the step's XCom value, if anywhere."""
    import os

    from airflow_mbt.constants import XCOM_FILE_ENV

    value = getattr(args, "xcom_file", None) or os.environ.get(XCOM_FILE_ENV)
    return Path(value) if value else None


def _write_xcom(result, path: Path) -> None:
    """The step result as the in-process operator returns it (``StepResult.to_xcom()``, every
    registered secret redacted), written atomically. Unlike run_results.json this is not best
    effort: the pod operator pushes it as the task's XCom (the approval form, the asset event)."""
    import json

    from airflow_mbt._fs import atomic_write_text
    from airflow_mbt.errors import InfraError
    from airflow_mbt.redaction import redact_obj

    try:
        atomic_write_text(path, json.dumps(redact_obj(result.to_xcom()), sort_keys=True, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise InfraError("XCom file", f"cannot write {path}: {exc.strerror or exc}") from None


def _write_results(results, path: Path) -> None:
    """Best effort: a results file that cannot be written must not hide the step's own outcome."""
    import logging

    try:
        results.write(path)
    except OSError as exc:
        logging.getLogger("airflow_mbt").warning("could not write %s: %s", path, exc)
