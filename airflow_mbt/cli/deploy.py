"""``mbt deploy``: publish the compiled manifests of one target (``target/*/manifest.json``)."""

from __future__ import annotations

import sys

from airflow_mbt.cli.context import project_of, target_of
from airflow_mbt.errors import MBTInputError


def collect_manifests(project, target: str, select: list[str]):
    """Manifests compiled for ``target``; ``select`` limits to these pipeline names."""
    from airflow_mbt.manifest import Manifest

    found = {}
    for path in sorted((project.root / "target").glob("*/manifest.json")):
        manifest = Manifest.read(path)
        if manifest.target_name == target:
            found[manifest.name] = manifest
            source = project.root / manifest.pipeline.source_file
            if source.is_file() and source.read_text(encoding="utf-8") != manifest.pipeline.source_yaml:
                print(f"warning: {project.relative(path)} was compiled from an older "
                      f"{manifest.pipeline.source_file}; run `mbt compile {manifest.name} --target {target}`",
                      file=sys.stderr)
    missing = [n for n in select if n not in found]
    if missing:
        raise MBTInputError(f"no manifest compiled for target {target!r}: {', '.join(missing)}", field="--select",
                            hint=f"mbt compile {' '.join(missing)} --target {target}")
    chosen = [found[n] for n in (select or sorted(found))]
    if not chosen:
        raise MBTInputError(f"no manifests compiled for target {target!r} in target/", field="--target",
                            hint=f"mbt compile --target {target}")
    return chosen


def cmd_deploy(args) -> int:
    project = project_of(args)
    manifests = collect_manifests(project, args.target, args.select)
    dest, conn_id = args.to, args.conn_id
    if not dest or not conn_id:
        section = target_of(project, args).section.get("manifests") or {}
        dest = dest or section.get("uri")
        conn_id = conn_id or section.get("conn_id")
    if not dest:
        raise MBTInputError(f"target {args.target!r} has no manifests.uri", field="manifests.uri",
                            hint="add `manifests: {uri: s3://bucket/manifests/, conn_id: ...}` to the target "
                                 "or pass --to URI")
    from airflow_mbt.manifests import publish_manifests

    changes = publish_manifests(manifests, dest, conn_id=conn_id, force=args.force, dry_run=args.dry_run)
    refused = 0
    for change in changes:
        action = change.get("action", "?")
        line = f"{action:<9} {change.get('pipeline')}  {change.get('hash', '')}  -> {change.get('uri', dest)}"
        print(("(dry run) " if args.dry_run else "") + line)
        if change.get("message"):
            print(f"          {change['message']}", file=sys.stderr if action == "refused" else sys.stdout)
        refused += action == "refused"
    if refused:
        print(f"error: {refused} pipeline(s) not deployed (see above)", file=sys.stderr)
        return 1
    return 0
