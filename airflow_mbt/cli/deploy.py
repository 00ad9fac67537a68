"""``mbt deploy``: publish the compiled manifests of one target (``target/*/manifest.json``) and
the project code each one names (``manifest.code``, re-hashed first: a tree changed since
``mbt compile`` is refused with exit 2; see ``airflow_mbt.manifests.releases``)."""

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


def _destination(args, project=None) -> tuple[str, str | None]:
    """(manifests URI, conn id): ``--to``/``--manifests`` and ``--conn-id``, else the target's
    ``manifests`` section."""
    dest = getattr(args, "to", None) if getattr(args, "command", "") == "deploy" else getattr(args, "manifests", None)
    conn_id = args.conn_id
    if not dest or not conn_id:
        if getattr(args, "target", None) is None:
            if dest:
                return dest, conn_id
            raise MBTInputError("no manifests location given", field="--target",
                                hint="pass --target T (its manifests.uri) or --manifests s3://bucket/prefix/")
        project = project or project_of(args)
        section = target_of(project, args).section.get("manifests") or {}
        dest = dest or section.get("uri")
        conn_id = conn_id or section.get("conn_id")
    if not dest:
        raise MBTInputError(f"target {args.target!r} has no manifests.uri", field="manifests.uri",
                            hint="add `manifests: {uri: s3://bucket/manifests/, conn_id: ...}` to the target "
                                 "or pass --to URI")
    return dest, conn_id


def _who() -> str | None:
    """Who deployed, for the history: CI's commit and user when set, else the local user."""
    import getpass
    import os

    commit = os.environ.get("CI_COMMIT_SHA") or os.environ.get("GITHUB_SHA")
    try:
        user = os.environ.get("CI_COMMIT_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):
        user = None
    return " ".join(x for x in (user, f"commit {commit[:12]}" if commit else None) if x) or None


def _short(content_hash: str | None) -> str:
    return (content_hash or "-").split(":", 1)[-1][:12]


def _print_diff(change: dict) -> None:
    for line in change.get("diff") or []:
        print(f"          {line}")


def cmd_deploy(args) -> int:
    project = project_of(args)
    manifests = collect_manifests(project, args.target, args.select)
    dest, conn_id = _destination(args, project)
    if args.force:
        print("warning: --force is no longer needed: a changed pipeline is deployed as a new release",
              file=sys.stderr)
    from airflow_mbt.manifests.releases import deploy_manifests

    changes = deploy_manifests(manifests, dest, conn_id=conn_id, dry_run=args.dry_run, by=_who(),
                               project_dir=project.root)
    failed = 0
    for change in changes:
        action = change.get("action", "?")
        line = f"{action:<9} {change.get('pipeline')}  {change.get('hash', '')}  -> {change.get('uri', dest)}"
        if change.get("previous_hash") and change["previous_hash"] != change.get("hash"):
            line += f"  (was {_short(change['previous_hash'])})"
        print(("(dry run) " if args.dry_run else "") + line)
        if change.get("code_uri"):
            print(f"          code -> {change['code_uri']}")
        if args.dry_run:
            _print_diff(change)
        if change.get("message"):
            print(f"          {change['message']}", file=sys.stderr)
        failed += action == "conflict"
    if failed:
        print(f"error: {failed} pipeline(s) not deployed (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_rollback(args) -> int:
    from airflow_mbt.manifests.releases import rollback

    dest, conn_id = _destination(args)
    change = rollback(dest, args.pipeline, to=args.to, conn_id=conn_id, dry_run=args.dry_run, by=_who())
    prefix = "(dry run) " if args.dry_run else ""
    if change["action"] == "unchanged":
        print(f"{prefix}unchanged {args.pipeline}: release {_short(change['hash'])} is already current")
        return 0
    print(f"{prefix}rollback  {args.pipeline}  release {_short(change['hash'])}"
          f"  (was {_short(change.get('previous_hash'))})  -> {change['uri']}")
    _print_diff(change)
    return 0


def cmd_undeploy(args) -> int:
    from airflow_mbt.manifests.releases import undeploy

    dest, conn_id = _destination(args)
    change = undeploy(dest, args.pipeline, conn_id=conn_id, dry_run=args.dry_run, by=_who())
    prefix = "(dry run) " if args.dry_run else ""
    if change["action"] == "absent":
        print(f"{prefix}absent    {args.pipeline}: not deployed at {change['uri']}")
        return 0
    print(f"{prefix}undeploy  {args.pipeline}  release {_short(change.get('previous_hash'))} removed from "
          f"{change['uri']}; the DAG leaves Airflow at the next DAG-file parse (`mbt rollback` re-deploys it)")
    return 0


def cmd_releases(args) -> int:
    import json

    from airflow_mbt.manifests.releases import releases

    dest, conn_id = _destination(args)
    info = releases(dest, args.pipeline, conn_id=conn_id)
    if args.json:
        print(json.dumps({k: v for k, v in info.items() if k != "short"}, indent=2, sort_keys=True))
        return 0
    if not info["events"]:
        raise MBTInputError(f"pipeline {args.pipeline!r} has no releases at {info['location']}", field="PIPELINE",
                            hint="check the name and the target; `mbt deploy --target T` publishes releases")
    print(f"{'#':>3}  {'when (UTC)':<25} {'action':<9} {'release':<12}  {'mbt':<8} {'code':<12}  by")
    for e in info["events"]:
        mark = "*" if e.get("content_hash") == info["current"] and e is _last_of(info, e) else " "
        print(f"{e.get('n', ''):>3}{mark} {str(e.get('at') or '?'):<25} {e.get('action', '?'):<9} "
              f"{_short(e.get('content_hash')) if e.get('content_hash') else '-':<12}  "
              f"{str(e.get('mbt_version') or '-'):<8} {_short(e.get('code_hash')) if e.get('code_hash') else '-':<12}  "
              f"{e.get('by') or ''}")
    print(f"current: {_short(info['current']) if info['current'] else 'none (undeployed)'}")
    return 0


def _last_of(info: dict, event: dict) -> dict | None:
    """The newest event of the current release (the one the ``*`` marks)."""
    for e in reversed(info["events"]):
        if e.get("content_hash") == info["current"]:
            return e
    return None
