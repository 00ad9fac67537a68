"""The ONE step-invocation path. ``mbt run`` (each step), ``mbt step execute``, the pod entry point
(which is ``mbt step execute``) and ``MBTStepOperator.execute`` are thin adapters over it; they
differ only in how they obtain the manifest source, the run id and the run context.

``invoke`` does, in order:

1. fetch and verify the manifest (``ManifestSource``: a local path or an ``s3://`` URI, the
   connection id, the expected content hash) — ``load_manifest``;
2. check that it is the pipeline and target the caller expects — ``check_identity``;
3. open the target runtime as a context manager (unless the caller shares one across steps);
   for a manifest fetched from a URI (``s3://``, ``file://``: a deployed release) whose ``code``
   hash differs from the project's code, the release's code archive is fetched, verified and
   extracted (``manifests.code_archive.released_code_dir``) and becomes the runtime's
   ``code_dir``, so the step imports the code of its release, not the image's ``lib/``; relative
   data paths still resolve against ``project_dir``. A manifest read from a local path (``mbt run``,
   ``target/``) runs the project's code as it is;
4. complete the ``RunContext``'s data interval for this pipeline (``runtime.interval.resolve``:
   ``deployment.interval``, else Airflow's data interval, else the cadence period ending at the
   logical date) and run the step through ``executor.execute_step`` with it;
5. on failure, attach the step to the error ONCE (``attach_step``: the message starts with
   ``step 'x' failed:``; a non-mbt exception is wrapped in ``StepFailedError``, the original kept
   as ``__cause__``) and re-raise; callers classify it with ``errors.classify``.

``sigterm_raises`` turns SIGTERM into ``StepTerminated`` for the processes mbt owns (the CLI and
pods), so a terminated step unwinds: temp folders removed, open transactions rolled back,
``run_results.json`` written with status ``terminated``, exit code 143.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from airflow_mbt.errors import MBTError, MBTInputError, StepFailedError, StepTerminated, describe
from airflow_mbt.manifest import Manifest
from airflow_mbt.runtime.context import RunContext, TargetRuntime
from airflow_mbt.runtime.executor import execute_step
from airflow_mbt.runtime.interval import resolve as resolve_interval
from airflow_mbt.runtime.run_results import StepResult

log = logging.getLogger("airflow_mbt")


@dataclass(frozen=True)
class ManifestSource:
    """Where the manifest of a step comes from: a local path or a URI (``s3://…``), the
    connection to read it with, and the content hash it must have (``None``: any)."""

    location: str
    conn_id: str | None = None
    expected_hash: str | None = None


def load_manifest(source: ManifestSource) -> Manifest:
    """Fetch (URI) or read (path) and verify the manifest; a hash mismatch is an input error."""
    if "://" in source.location:
        from airflow_mbt.manifests import fetch_manifest

        fetched: Manifest = fetch_manifest(source.location, conn_id=source.conn_id,
                                           expected_hash=source.expected_hash)
        return fetched
    manifest = Manifest.read(Path(source.location))
    if source.expected_hash and manifest.content_hash != source.expected_hash:
        raise MBTInputError(f"manifest has content hash {manifest.content_hash}, expected {source.expected_hash}",
                            file=source.location, field="--manifest-hash",
                            hint="recompile, or pass the hash of this manifest")
    return manifest


def check_identity(manifest: Manifest, pipeline: str, target: str, *, fields: tuple[str, str] = ("pipeline",
                                                                                               "target")) -> None:
    """The manifest must be for ``pipeline`` compiled for ``target``."""
    if manifest.name != pipeline:
        raise MBTInputError(f"the manifest is for pipeline {manifest.name!r}, not {pipeline!r}", field=fields[0],
                            hint="pass the manifest of that pipeline")
    if manifest.target_name != target:
        raise MBTInputError(f"the manifest was compiled for target {manifest.target_name!r}, not {target!r}",
                            field=fields[1], hint=f"mbt compile {pipeline} --target {target}")


def attach_step(exc: BaseException, step: str) -> BaseException:
    """``exc`` with the step named once in its message; MBTErrors keep their type (exit codes)."""
    if getattr(exc, "step", None):  # already attached
        return exc
    if isinstance(exc, MBTError):
        exc.args = (f"step {step!r} failed: {describe(exc)}",)
        exc.step = step
        return exc
    if isinstance(exc, SystemExit):  # user code (a custom transform) called sys.exit: never a success
        err = MBTInputError(f"step {step!r} failed: its code called sys.exit({exc.code!r})",
                            hint="custom transforms must return a DataFrame; raise an exception to fail")
        err.step = step
        return err
    if isinstance(exc, Exception):
        wrapped = StepFailedError(f"step {step!r} failed: {describe(exc).removeprefix('unexpected ')}")
        wrapped.step = step
        wrapped.__cause__ = exc
        return wrapped
    return exc  # KeyboardInterrupt, StepTerminated, SystemExit: classified as they are


def released_code(manifest: Manifest, source: ManifestSource | None, project_dir: Path | None) -> Path | None:
    """The folder of the release's code when ``source`` is a URI and the project's code differs
    (see the module docstring, step 3), else ``None``."""
    if source is None or "://" not in source.location or not manifest.code_hash:
        return None
    from airflow_mbt.manifests.code_archive import released_code_dir

    return released_code_dir(manifest, source.location, source.conn_id,
                             Path(project_dir or Path.cwd()).resolve())


def invoke(manifest: Manifest, step: str, run: RunContext, *, project_dir: Path | None = None,
           runtime: TargetRuntime | None = None, work_dir: Path | None = None,
           source: ManifestSource | None = None) -> StepResult:
    """Run ``step`` of ``manifest`` for ``run``. With ``runtime`` given the caller owns (and
    closes) it; otherwise one is opened for this step and closed after it, importing the
    release's code when ``source`` says where the manifest came from (step 3)."""
    try:
        run = resolve_interval(run, manifest)
        if runtime is not None:
            return execute_step(manifest, step, run.run_id, runtime, try_number=run.try_number,
                                work_dir=work_dir, run=run)
        code_dir = released_code(manifest, source, project_dir)
        with TargetRuntime.from_manifest(manifest, project_dir, code_dir=code_dir) as own:
            return execute_step(manifest, step, run.run_id, own, try_number=run.try_number,
                                work_dir=work_dir, run=run)
    except BaseException as exc:
        attached = attach_step(exc, step)
        if attached is exc:
            raise
        raise attached from exc


def invoke_from_source(source: ManifestSource, *, pipeline: str, target: str, step: str, run: RunContext,
                       project_dir: Path | None = None) -> tuple[Manifest, StepResult]:
    """Steps 1-5 for a caller that has a manifest source (``mbt step execute``, the operator)."""
    manifest = load_manifest(source)
    check_identity(manifest, pipeline, target)
    return manifest, invoke(manifest, step, run, project_dir=project_dir, source=source)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, the first SIGTERM raises ``StepTerminated`` in the main thread (no-op in
    other threads). Later ones are logged and ignored, so they cannot break the unwinding (a
    rollback, a temp folder removal) the first one started; the orchestrator's SIGKILL remains."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def _handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            log.warning("SIGTERM again while stopping; still cleaning up")
            return
        fired = True
        log.warning("SIGTERM: stopping the step (rolling back, removing temp folders)")
        raise StepTerminated(signum)

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
