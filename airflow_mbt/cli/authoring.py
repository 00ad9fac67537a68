"""``mbt init``, ``mbt validate`` and ``mbt compile``."""

from __future__ import annotations

import errno
import os
import sys

from airflow_mbt.cli.context import names_of, project_of, target_of, vars_of
from airflow_mbt.errors import MBTInputError


def cmd_init(args) -> int:
    from airflow_mbt.scaffold.project_init import init_project

    dest = init_project(args.name, args.dir, getattr(args, "framework", "h2o"))
    print(f"Created project {args.name!r} in {dest}")
    print(f"Next:\n  cd {dest}\n  mbt validate training_churn_model_v1\n"
          "  mbt run --select training_churn_model_v1 --target dev")
    return 0


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _each(names, action, explicit: bool = True) -> int:
    """Run ``action(name)`` for every pipeline; report input errors and go on; exit 2 if any failed.

    Without explicit names (all pipelines), a serving pipeline whose run id is still the example
    placeholder is skipped with a warning: a fresh project passes CI before its first model exists.
    """
    from airflow_mbt.pipeline.semantics import RunIdPlaceholderError

    failed = 0
    for name in names:
        try:
            action(name)
        except RunIdPlaceholderError as err:
            if explicit:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
            else:
                print(f"warning: skipping {name!r}, not ready: {err}", file=sys.stderr)
        except MBTInputError as err:
            failed += 1
            print(f"error: {err}", file=sys.stderr)
    if failed and len(names) > 1:
        print(f"{failed} of {len(names)} pipelines have errors", file=sys.stderr)
    return 2 if failed else 0


def _local_data_dir(project, target):
    connector = target.section["data_connector"]
    if connector.get("type") != "local_file":
        return None
    data_path = (connector.get("config") or {}).get("data_path")
    if not isinstance(data_path, str):
        return None
    from pathlib import Path

    path = Path(data_path)
    return path if path.is_absolute() else project.root / path


def cmd_validate(args) -> int:
    from airflow_mbt.pipeline.validation import check_data_columns, validate_pipeline

    project = project_of(args)
    variables = vars_of(args)
    target = target_of(project, args, variables)
    data_dir = _local_data_dir(project, target)
    names = names_of(project, args.names)

    from airflow_mbt.pipeline.sql_check import dialect_of

    dialect = dialect_of(target.section) if target is not None else None

    def one(name):
        pipeline = validate_pipeline(project, name, variables, dialect=dialect)
        for warning in pipeline.warnings:
            _warn(warning)
        if data_dir is not None:
            check_data_columns(pipeline, data_dir)
        for note in _data_notes(pipeline, project, target, data_dir):
            print(f"note: {note}", file=sys.stderr)
        print(f"Pipeline '{name}' is valid.")

    return _each(names, one, explicit=bool(args.names))


def _data_notes(pipeline, project, target, data_dir) -> list[str]:
    """Label values of the sample data, and whether a serving model's run exists (``data_check``)."""
    from airflow_mbt.pipeline import data_check

    if pipeline.kind == "serving":
        return data_check.check_model_run(pipeline, target.section, project.root) if target is not None else []
    table = (pipeline.config["training"].get("data_source") or {}).get("label_table")
    if data_dir is None or not table:
        return []
    stem = table.rsplit(".", 1)[-1]
    csv_path = data_dir / f"{stem}.csv"
    if (data_dir / f"{stem}.parquet").exists() or not csv_path.is_file():
        return []
    return data_check.check_labels(pipeline, csv_path)


_INPUT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                 errno.ENAMETOOLONG}


def write_manifest(project, name: str, manifest) -> None:
    """Write ``target/<name>/manifest.json``; what the user can fix (a file where a folder should
    be, no permission, a read-only disk, an oversized manifest) is an input error naming the path."""
    from airflow_mbt.project.limits import MAX_MANIFEST_BYTES

    path = project.manifest_path(name)
    shown = project.relative(path)
    size = len(manifest.to_json().encode("utf-8"))
    if size > MAX_MANIFEST_BYTES:
        raise MBTInputError(f"the compiled manifest is {size} bytes, over the limit of {MAX_MANIFEST_BYTES}",
                            file=manifest.data["pipeline"]["source_file"], line=1, col=1,
                            hint="the pipeline holds too much data (long lists or text); keep data in tables")
    for folder in (path.parent.parent, path.parent):
        if folder.exists() and not folder.is_dir():
            raise MBTInputError(f"{project.relative(folder)} is a file, but mbt writes manifests into a folder there",
                                file=project.relative(folder), hint=f"move the file away; mbt creates {shown}")
    if path.is_dir():
        raise MBTInputError(f"{shown} is a folder, not a file", file=shown, hint="remove the folder and compile again")
    try:
        manifest.write(path)
    except OSError as exc:
        if exc.errno not in _INPUT_ERRNOS:
            raise
        raise MBTInputError(f"cannot write {shown} ({os.strerror(exc.errno)})", file=shown,
                            hint="make target/ writable by this user (or remove a read-only target/ folder)") from None


def compile_one(project, name: str, target, variables: dict):
    """Compile and write ``target/<name>/manifest.json``; returns the manifest.

    Secrets that the target needs (local executor) must be set here: the steps read them."""
    from airflow_mbt.pipeline.compiler import compile_pipeline
    from airflow_mbt.project.profiles import require_secrets

    manifest = compile_pipeline(project, name, target, variables, warn=_warn)
    framework = manifest.data["config"]["training"]["model_training"].get("framework")
    require_secrets(target, skip=("manifests",) + (() if framework == "h2o_automl" else ("h2o",)))
    write_manifest(project, name, manifest)
    return manifest


def _pinned_image(target, image: str | None):
    """``--image`` into the kubernetes target; a warning when its image is not pinned."""
    import dataclasses

    from airflow_mbt.project.images import is_pinned, with_image

    if image:
        target = dataclasses.replace(target, section=with_image(target.section, image))
    executor = target.section.get("executor") or {}
    ref = (executor.get("config") or {}).get("image")
    if executor.get("type") == "kubernetes" and isinstance(ref, str) and not is_pinned(ref):
        print(f"warning: target {target.name!r} runs image {ref!r}, which is not pinned; pass "
              f"--image REGISTRY/NAME@sha256:<digest> (or a commit tag), or set MBT_RUNNER_IMAGE", file=sys.stderr)
    return target


def cmd_compile(args) -> int:
    project = project_of(args)
    variables = vars_of(args)
    target = target_of(project, args, variables)
    target = _pinned_image(target, getattr(args, "image", None))

    def one(name):
        compile_one(project, name, target, variables)
        print(f"Manifest saved to {project.relative(project.manifest_path(name))}")

    return _each(names_of(project, args.names), one, explicit=bool(args.names))
