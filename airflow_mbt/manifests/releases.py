"""Releases of a pipeline on a manifests location: deploy, roll back, undeploy, history.

Layout per pipeline (see ``backends``)::

    <pipeline>/<content-hash-hex>.json   a release: immutable, written once (If-None-Match: *)
    <pipeline>/manifest.json             the ``current`` pointer: a copy of the current release,
                                         moved with compare-and-swap (If-Match: <ETag>)
    <pipeline>/releases.json             the history: every deploy / rollback / undeploy event
    <pipeline>/code/<code-hash-hex>.tar.gz   the project code of a release (``manifest.code``):
                                         content-addressed, written once (``code_archive``)

The pointer is a copy rather than a reference so that a DAG loader of the previous layout (and
of this one) reads it as it always did, and manifests published before releases existed keep
loading: a location without ``releases.json`` is adopted by the first ``mbt deploy`` (its current
manifest becomes event 1, ``adopt``).

* ``deploy_manifests``: a manifest whose ``release_hash`` equals the current one's is
  ``unchanged`` (a comment-only YAML change publishes nothing); any other is published and made
  current (``create`` / ``update``) - never refused. ``dry_run`` returns the same changes with a
  field-level ``diff`` and writes nothing. With ``project_dir`` (``mbt deploy`` passes the
  project) the code of each manifest that has ``code`` is shipped too: the project's files are
  re-hashed first and a tree changed since ``mbt compile`` is refused (``MBTInputError``, exit 2,
  naming the file) before anything is written; then the archive ``<pipeline>/code/<hex>.tar.gz``
  is written once (deterministic bytes, ``If-None-Match: *``; an existing one is the same code)
  before the release, so a published release never lacks its code. A task whose image holds
  other code runs the archived code (``code_archive.released_code_dir``).
* ``rollback``: ``current`` := an earlier release (default: the one before the current one).
* ``undeploy``: deletes ``current`` (the loader lists no DAG for the pipeline, so its schedule
  stops); releases and history stay, so ``rollback`` re-deploys it.
* ``history``: the events, oldest first.

Compare-and-swap: the pointer and the history are written with S3 conditional writes
(``If-Match`` / ``If-None-Match``), which SeaweedFS and AWS S3 honour (checked by
``tests/integration/test_s3_storage.py``); a local folder uses a lock file. A deploy that loses a
race on the pointer is reported ``conflict`` (exit 1, run it again); the history is re-read and
re-appended until it wins. Deleting the pointer (undeploy) is not conditional (S3 has no
conditional DELETE on every store): a deploy racing an undeploy may win.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_mbt.errors import MBTInputError, RegistryConflictError
from airflow_mbt.manifest import Manifest, release_body
from airflow_mbt.manifests import code_archive
from airflow_mbt.manifests.backends import (
    ManifestLocation,
    current_key,
    hash_hex,
    location_for,
    pinned_key,
)

log = logging.getLogger("airflow_mbt.manifests.releases")

HISTORY = "releases.json"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HISTORY_ATTEMPTS = 5
_DIFF_LINES = 40


def history_key(pipeline: str) -> str:
    return f"{pipeline}/{HISTORY}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise MBTInputError(f"pipeline name {name!r} cannot be used as a storage key",
                            field="project.name", hint="use letters, digits, '_', '.' and '-'")
    return name


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _image(manifest: Manifest) -> str | None:
    image = manifest.target.executor.config.get("image")
    return image if isinstance(image, str) else None


def event(action: str, manifest: Manifest | None, **extra: Any) -> dict[str, Any]:
    """One history entry (``n`` is set when it is appended)."""
    out: dict[str, Any] = {"action": action, "at": _now()}
    if manifest is not None:
        out.update(content_hash=manifest.content_hash, release_hash=manifest.release_hash,
                   mbt_version=manifest.mbt_version or None, image=_image(manifest), code_hash=manifest.code_hash)
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _parse(data: bytes | None, source: str) -> Manifest | None:
    if data is None:
        return None
    try:
        return Manifest.from_json(data, source=source)
    except MBTInputError as exc:
        log.warning("mbt: unreadable current manifest %s: %s", source, exc)
        return None


def history(location: ManifestLocation, pipeline: str) -> tuple[list[dict[str, Any]], str | None]:
    """The events of ``pipeline`` (oldest first) and the version of ``releases.json``."""
    got = location.get(history_key(check_name(pipeline)))
    if got is None:
        return [], None
    try:
        doc = json.loads(got[0])
        events = doc["events"]
        if not isinstance(events, list):
            raise TypeError("events is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise MBTInputError(f"release history is not readable ({exc})", file=location.uri(history_key(pipeline)),
                            hint="restore it from the bucket's versions, or delete it to start a new history") from None
    return [e for e in events if isinstance(e, dict)], got[1]


def append(location: ManifestLocation, pipeline: str, new: list[dict[str, Any]],
           adopt: Manifest | None = None) -> list[dict[str, Any]]:
    """Append ``new`` events to the history with compare-and-swap (re-read on a lost race).
    ``adopt``: the current manifest of a location without history, recorded first."""
    key = history_key(pipeline)
    for _attempt in range(_HISTORY_ATTEMPTS):
        events, version = history(location, pipeline)
        if not events and adopt is not None:
            events = [event("adopt", adopt, n=1)]
        for item in new:
            events.append({**item, "n": (events[-1].get("n", len(events)) + 1) if events else 1})
        data = json.dumps({"pipeline": pipeline, "events": events}, indent=1, sort_keys=True).encode()
        try:
            if version is None:
                location.put_if_absent(key, data)
            else:
                location.put_if_match(key, data, version)
            return events
        except RegistryConflictError:
            continue
    raise RegistryConflictError(f"{location.uri(key)} kept changing; run the command again")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flatten(value[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def release_diff(old: Manifest | None, new: Manifest) -> list[str]:
    """What changes between two releases, one line per field: ``~ a.b: old -> new``, ``+``, ``-``."""
    before = _flatten(release_body(old.data)) if old is not None else {}
    after = _flatten(release_body(new.data))
    lines = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            lines.append(f"+ {key}: {_short(after[key])}")
        elif key not in after:
            lines.append(f"- {key}: {_short(before[key])}")
        elif before[key] != after[key]:
            lines.append(f"~ {key}: {_short(before[key])} -> {_short(after[key])}")
    if len(lines) > _DIFF_LINES:
        lines = lines[:_DIFF_LINES] + [f"... {len(lines) - _DIFF_LINES} more"]
    return lines


def _publish(location: ManifestLocation, manifest: Manifest, existing: tuple[bytes, str] | None) -> None:
    """Write the immutable release, then move ``current`` (compare-and-swap)."""
    data = manifest.to_json().encode("utf-8")
    try:
        location.put_if_absent(pinned_key(manifest.name, manifest.content_hash), data)
    except RegistryConflictError:
        pass  # content-addressed: the existing release holds the same bytes
    cur = current_key(manifest.name)
    if existing is None:
        location.put_if_absent(cur, data)
    else:
        location.put_if_match(cur, data, existing[1])


def deploy_manifests(manifests: Iterable[Manifest], dest_uri: str, *, conn_id: str | None = None,
                     dry_run: bool = False, by: str | None = None,
                     project_dir: Path | None = None) -> list[dict[str, Any]]:
    """Publish each manifest as a release and make it current; one change per manifest:
    ``{"pipeline", "action": "create"|"update"|"unchanged"|"conflict", "hash", "release",
    "uri", "pinned_uri", "code_uri"?, "previous_hash"?, "diff": [...], "message"?}``.
    ``project_dir``: ship each manifest's code from there (see the module docstring)."""
    manifests = list(manifests)
    if project_dir is not None:
        for manifest in manifests:
            code_archive.check_tree(manifest, project_dir)
    location = location_for(dest_uri, conn_id)
    changes: list[dict[str, Any]] = []
    for manifest in manifests:
        name = check_name(manifest.name)
        cur = current_key(name)
        existing = location.get(cur)
        previous = _parse(existing[0] if existing else None, location.uri(cur))
        change: dict[str, Any] = {"pipeline": name, "hash": manifest.content_hash, "release": manifest.release_hash,
                                  "uri": location.uri(cur),
                                  "pinned_uri": location.uri(pinned_key(name, manifest.content_hash))}
        if previous is not None:
            change["previous_hash"] = previous.content_hash
        compiled = code_archive.manifest_code(manifest)
        if project_dir is not None and compiled is not None:
            change["code_uri"] = location.uri(code_archive.code_key(name, compiled[0]))
            if not dry_run:  # also for an unchanged release: heals one deployed before code shipped
                code_archive.publish_code(location, manifest, project_dir)
        if previous is not None and previous.release_hash == manifest.release_hash:
            change.update(action="unchanged", diff=[])
        else:
            change.update(action="create" if existing is None else "update", diff=release_diff(previous, manifest))
        if not dry_run and change["action"] != "unchanged":
            try:
                _publish(location, manifest, existing)
            except RegistryConflictError:
                change["action"] = "conflict"
                change["message"] = (f"{location.uri(cur)} was changed by another deploy meanwhile; "
                                     "run `mbt deploy` again")
            else:
                append(location, name, [event("deploy", manifest, previous=change.get("previous_hash"), by=by)],
                       adopt=previous)
            log.info("mbt: %s %s -> %s", change["action"], name, change["uri"])
        changes.append(change)
    return changes


def _resolve(events: list[dict[str, Any]], to: str, pipeline: str) -> str:
    """``to`` (event number ``N`` / ``#N``, or a prefix of a content or release hash) -> content hash."""
    wanted = to.strip().lstrip("#")
    if wanted.isdigit():
        for e in events:
            if str(e.get("n")) == wanted and e.get("content_hash"):
                return str(e["content_hash"])
        raise MBTInputError(f"pipeline {pipeline!r} has no release event #{wanted}", field="--to",
                            hint=f"see `mbt releases {pipeline}`")
    prefix = wanted.split(":", 1)[-1].lower()
    found = {str(e["content_hash"]) for e in events if e.get("content_hash") and prefix and any(
        str(e.get(k) or "").split(":", 1)[-1].startswith(prefix) for k in ("content_hash", "release_hash"))}
    if len(found) != 1:
        what = "matches no" if not found else "is ambiguous among the"
        raise MBTInputError(f"{to!r} {what} releases of {pipeline!r}",
                            field="--to", hint=f"use an event number or a longer hash from `mbt releases {pipeline}`")
    return found.pop()


def _previous_release(events: list[dict[str, Any]], current: str | None) -> str | None:
    for e in reversed(events):
        h = e.get("content_hash")
        if e.get("action") in ("adopt", "deploy", "rollback") and h and h != current:
            return str(h)
    return None


def rollback(dest_uri: str, pipeline: str, *, to: str | None = None, conn_id: str | None = None,
             dry_run: bool = False, by: str | None = None) -> dict[str, Any]:
    """Make an earlier release current (default: the one before the current one)."""
    location = location_for(dest_uri, conn_id)
    cur = current_key(check_name(pipeline))
    existing = location.get(cur)
    current = _parse(existing[0] if existing else None, location.uri(cur))
    events, _ = history(location, pipeline)
    if not events and current is None:
        raise MBTInputError(f"pipeline {pipeline!r} was never deployed to {location.label}", field="PIPELINE",
                            hint="check the name and the target (`mbt releases PIPELINE --target T`)")
    wanted = (_resolve(events, to, pipeline) if to
              else _previous_release(events, current.content_hash if current else None))
    if wanted is None:
        raise MBTInputError(f"pipeline {pipeline!r} has no earlier release to roll back to", field="--to",
                            hint=f"see `mbt releases {pipeline}`")
    data = location.read(pinned_key(pipeline, wanted))
    if data is None:
        raise MBTInputError(f"release {wanted} of {pipeline!r} is missing from {location.label}", field="--to",
                            hint="it was deleted by retention; deploy that commit again with `mbt deploy`")
    target = Manifest.from_json(data, source=location.uri(pinned_key(pipeline, wanted)))
    change: dict[str, Any] = {"pipeline": pipeline, "action": "rollback", "hash": wanted, "uri": location.uri(cur),
                              "previous_hash": current.content_hash if current else None,
                              "diff": release_diff(current, target)}
    if current is not None and current.content_hash == wanted:
        change["action"] = "unchanged"
        return change
    if not dry_run:
        _publish(location, target, existing)
        append(location, pipeline, [event("rollback", target, previous=change["previous_hash"], by=by)],
               adopt=current)
    return change


def undeploy(dest_uri: str, pipeline: str, *, conn_id: str | None = None, dry_run: bool = False,
             by: str | None = None) -> dict[str, Any]:
    """Remove ``current``: the DAG leaves Airflow at the loader's next listing."""
    location = location_for(dest_uri, conn_id)
    cur = current_key(check_name(pipeline))
    existing = location.get(cur)
    if existing is None:
        return {"pipeline": pipeline, "action": "absent", "uri": location.uri(cur)}
    current = _parse(existing[0], location.uri(cur))
    change = {"pipeline": pipeline, "action": "undeploy", "uri": location.uri(cur),
              "previous_hash": current.content_hash if current else None}
    if not dry_run:
        append(location, pipeline, [event("undeploy", None, previous=change["previous_hash"], by=by)], adopt=current)
        location.delete(cur)
    return change


def current_hash(location: ManifestLocation, pipeline: str) -> str | None:
    got = location.get(current_key(pipeline))
    manifest = _parse(got[0] if got else None, location.uri(current_key(pipeline)))
    return manifest.content_hash if manifest else None


def releases(dest_uri: str, pipeline: str, *, conn_id: str | None = None) -> dict[str, Any]:
    """``{"pipeline", "current": content hash | None, "events": [...]}`` (history oldest first;
    a pipeline deployed before releases existed shows its current manifest as ``adopt``)."""
    location = location_for(dest_uri, conn_id)
    events, _ = history(location, check_name(pipeline))
    got = location.get(current_key(pipeline))
    current = _parse(got[0] if got else None, location.uri(current_key(pipeline)))
    if not events and current is not None:
        events = [{**event("adopt", current, n=1), "at": None}]
    return {"pipeline": pipeline, "current": current.content_hash if current else None, "events": events,
            "location": location.label, "short": {e["content_hash"]: hash_hex(e["content_hash"])[:12]
                                                  for e in events if e.get("content_hash")}}
