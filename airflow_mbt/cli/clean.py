"""``mbt clean [--keep N] [--dry-run]``: prune what local runs leave in the project.

Contract:
- ``local_artifacts/`` (the dev target's local storage ``base_path``; default
  ``./local_artifacts``): per pipeline folder, the ``N`` most recent run folders are kept (newest
  by modification time; default 5); older run folders are removed. ``--keep 0`` removes all.
- ``target/``: the folders of pipelines that no longer exist in ``pipelines/`` (stale manifests
  and run results) are removed; current pipelines' folders are kept.
- Only folders inside the project are ever removed; symlinks are not followed (a symlinked run
  folder is unlinked, its target untouched). ``--dry-run`` prints the same list, removes nothing.
Prints one line per removed folder and a total; exit 0.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from airflow_mbt.errors import MBTInputError


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def _artifacts_dir(project, args) -> Path:
    """The local storage folder of the chosen (or default) target, else ``./local_artifacts``."""
    default = project.root / "local_artifacts"
    try:
        from airflow_mbt.project.profiles import resolve_target

        target = resolve_target(project, getattr(args, "target", None), getattr(args, "profile", None), {})
    except MBTInputError:
        if getattr(args, "target", None):
            raise
        return default
    storage = target.section.get("storage") or {}
    if storage.get("type") != "local":
        return default
    raw = (storage.get("config") or {}).get("base_path", "./local_artifacts")
    path = Path(raw)
    return path if path.is_absolute() else project.root / path


def stale(project, artifacts: Path, keep: int) -> list[Path]:
    """The folders ``mbt clean --keep keep`` removes (see the module docstring)."""
    out: list[Path] = []
    if artifacts.is_dir() and not artifacts.is_symlink():
        for pipeline in sorted(p for p in artifacts.iterdir() if p.is_dir() and not p.is_symlink()):
            runs = sorted((r for r in pipeline.iterdir() if r.is_dir()), key=lambda r: r.lstat().st_mtime,
                          reverse=True)
            out += runs[keep:]
    target = project.root / "target"
    names = set(project.pipeline_names(include_bases=True))
    if target.is_dir() and not target.is_symlink():
        out += sorted(p for p in target.iterdir() if p.is_dir() and p.name not in names)
    root = project.root.resolve()
    return [p for p in out if p.parent.resolve().is_relative_to(root)]


def cmd_clean(args) -> int:
    from airflow_mbt.cli.context import project_of

    keep = args.keep
    if keep < 0:
        raise MBTInputError(f"--keep must be 0 or more, got {keep}", field="--keep", hint="e.g. --keep 5")
    project = project_of(args)
    artifacts = _artifacts_dir(project, args)
    doomed = stale(project, artifacts, keep)
    total = 0
    verb = "would remove" if args.dry_run else "removed"
    for path in doomed:
        size = _size(path)
        total += size
        if not args.dry_run:
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path)
        print(f"{verb} {project.relative(path)} ({size / 1e6:.1f} MB)")
    print(f"{verb} {len(doomed)} folder(s), {total / 1e6:.1f} MB; kept the {keep} newest run(s) per pipeline "
          f"in {project.relative(artifacts)}", file=sys.stdout)
    return 0
