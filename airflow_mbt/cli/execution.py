"""``mbt run`` (compile, then every step in this process) and ``mbt step execute`` (one step)."""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_mbt.cli.context import project_of, target_of, vars_of
from airflow_mbt.errors import MBTInputError


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
    uri = manifest.target.get("mlflow", {}).get("tracking_uri")
    if isinstance(uri, str) and uri.startswith(("sqlite:", "file:", "./", "/")):
        return f"mlflow ui --backend-store-uri {uri}  (run in {project.root})"
    if isinstance(uri, str) and uri.startswith("http"):
        return uri
    conn = manifest.target.get("mlflow", {}).get("conn_id")
    return f"the MLflow server of connection {conn!r}" if conn else None


def _predictions_hint(manifest, runtime, project) -> str | None:
    output = (manifest.config.get("serving") or {}).get("output") or {}
    if output.get("destination") == "local_file":
        return str(project.root / output.get("path", "predictions.csv"))
    if output.get("destination") == "database":
        connector = manifest.target["data_connector"]
        if connector.get("type") == "local_file":
            return str(runtime.connector().table_file(output.get("table")))
        return f"table {output.get('table')} ({connector.get('type')} data connector)"
    return None


def _summary(manifest, runtime, project, results: dict) -> None:
    run_id = results["run_id"]
    print(f"Completed {manifest.name} in {results.get('seconds', 0):.1f}s (run id {run_id})")
    try:
        print(f"  artifacts:     {runtime.storage().uri(run_id)}")
    except Exception:  # noqa: BLE001 - the summary must not fail a successful run
        pass
    if results.get("mlflow_run_id"):
        print(f"  MLflow run:    {results['mlflow_run_id']}")
    hint = _mlflow_hint(manifest, project)
    if hint and manifest.kind == "training":
        print(f"  MLflow UI:     {hint}")
    predictions = _predictions_hint(manifest, runtime, project)
    if predictions and manifest.kind == "serving":
        print(f"  predictions:   {predictions}")
    print(f"  run results:   {project.relative(project.root / 'target' / manifest.name / 'run_results.json')}")


def cmd_run(args) -> int:
    from airflow_mbt.cli.authoring import compile_one

    project = project_of(args)
    variables = vars_of(args)
    target = target_of(project, args, variables)
    manifest = compile_one(project, args.select, target, variables)
    print(f"Manifest saved to {project.relative(project.manifest_path(args.select))}")

    from airflow_mbt.runtime.context import TargetRuntime
    from airflow_mbt.runtime.run_id import new_run_id, validate_run_id
    from airflow_mbt.runtime.runner import run_pipeline

    run_id = validate_run_id(args.run_id, "--run-id") if args.run_id else new_run_id()
    print(f"Run id: {run_id}  (pipeline {manifest.name}, target {manifest.target_name})", flush=True)
    runtime = TargetRuntime.from_manifest(manifest, project_dir=project.root)
    try:
        results = run_pipeline(manifest, runtime, run_id=run_id, progress=Progress())
    except BaseException:
        print(f"Run {run_id} failed; step results in "
              f"{project.relative(project.root / 'target' / manifest.name / 'run_results.json')}", file=sys.stderr)
        raise
    _summary(manifest, runtime, project, results)
    return 0


def _load_manifest(args, project):
    from airflow_mbt.manifest import Manifest

    if args.manifest and "://" in args.manifest:
        from airflow_mbt.manifests import fetch_manifest

        return fetch_manifest(args.manifest, conn_id=args.manifest_conn_id, expected_hash=args.manifest_hash)
    if args.manifest:
        path = Path(args.manifest)
    elif project is not None:
        path = project.manifest_path(args.pipeline)
    else:
        path = Path("target") / args.pipeline / "manifest.json"
    manifest = Manifest.read(path)
    if args.manifest_hash and manifest.content_hash != args.manifest_hash:
        raise MBTInputError(f"manifest has content hash {manifest.content_hash}, expected {args.manifest_hash}",
                            file=str(path), field="--manifest-hash", hint="recompile or pass the matching hash")
    return manifest


def cmd_step_execute(args) -> int:
    project = None
    try:
        project = project_of(args)
    except MBTInputError:
        if getattr(args, "project_dir", None):
            raise  # an explicit --project-dir must exist; otherwise run from the current folder
    manifest = _load_manifest(args, project)
    if manifest.name != args.pipeline:
        raise MBTInputError(f"the manifest is for pipeline {manifest.name!r}, not {args.pipeline!r}",
                            field="--pipeline")
    if manifest.target_name != args.target:
        raise MBTInputError(f"the manifest was compiled for target {manifest.target_name!r}, not {args.target!r}",
                            field="--target", hint=f"mbt compile {args.pipeline} --target {args.target}")
    if args.try_number < 1:
        raise MBTInputError("must be 1 or more", field="--try-number")

    from airflow_mbt.runtime.context import TargetRuntime
    from airflow_mbt.runtime.executor import execute_step

    runtime = TargetRuntime.from_manifest(manifest, project_dir=project.root if project else Path.cwd())
    try:
        result = execute_step(manifest, args.step, args.run_id, runtime, try_number=args.try_number)
    except Exception as exc:
        from airflow_mbt.errors import MBTError

        exc.step = getattr(exc, "step", None) or args.step
        if isinstance(exc, MBTError) and not str(exc).startswith("step "):
            exc.args = (f"step {args.step!r} failed: {exc}",)  # what the CLI prints
        raise
    finally:
        runtime.close()
    print(f"Step {args.step!r} of {manifest.name} ok ({result.get('seconds', 0):.1f}s, run id {args.run_id})")
    for name, uri in sorted((result.get("outputs") or {}).items()):
        print(f"  {name}: {uri}")
    return 0
