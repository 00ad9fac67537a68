"""The project code of a release, shipped next to it: a content-addressed ``tar.gz``.

Layout (under a manifests location, see ``backends``)::

    <pipeline>/code/<code-hash-hex>.tar.gz   exactly the files of ``manifest.code.files``

Contract:

* ``build_archive(root, files)``: deterministic bytes for the same code (entries sorted, regular
  files only, mtime 0, uid/gid 0, no owner names, mode 0644, gzip header without name or time).
* ``check_tree(manifest, root)``: the project's code must still be what was compiled (same
  ``project_code`` hash); otherwise an ``MBTInputError`` (exit 2) names the first differing file
  and hints to re-run ``mbt compile``. ``mbt deploy`` calls it before writing anything.
* ``publish_code(location, manifest, root)``: writes the archive once (``If-None-Match: *``); an
  existing object of that key is the same content (content-addressed), so a lost race is fine.
* ``released_code_dir(manifest, manifest_uri, conn_id, project_dir)``: what a step imports its
  code from. ``None`` when the manifest has no code or the project's code has the same hash;
  otherwise the archive is fetched from the folder the manifest was read from, every member is
  checked (regular files with relative paths only: no absolute path, no ``..``, no link, device
  or directory entry - else ``IntegrityError``), every file's sha256 must equal
  ``manifest.code.files`` and the set of files must be the same (else ``IntegrityError``, exit 3),
  and it is extracted into ``<cache_dir>/code/<hex>/`` (reused when its files still verify;
  written to a temp folder and renamed, so a reader never sees half a tree). A missing archive is
  an ``IntegrityError`` naming the URI with the hint to ``mbt deploy`` again. A cache folder that
  cannot be written (a read-only home in a pod) falls back to a private temp folder.

Only the stdlib (``tarfile``, ``gzip``); the location's storage client is built lazily.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mbt._fs import publish_dir
from airflow_mbt.errors import IntegrityError, MBTInputError, RegistryConflictError
from airflow_mbt.manifests.backends import hash_hex

if TYPE_CHECKING:  # pragma: no cover
    from airflow_mbt.manifest import Manifest
    from airflow_mbt.manifests.backends import ManifestLocation

log = logging.getLogger("airflow_mbt.manifests.code_archive")

CODE_DIR = "code"
SUFFIX = ".tar.gz"
_MODE = 0o644


def code_key(pipeline: str, code_hash: str) -> str:
    """``<pipeline>/code/<hex>.tar.gz`` (relative to the manifests location)."""
    return f"{pipeline}/{CODE_DIR}/{hash_hex(code_hash)}{SUFFIX}"


def manifest_code(manifest: Manifest) -> tuple[str, dict[str, str]] | None:
    """``(code hash, {relpath: sha256})`` compiled into ``manifest``, ``None`` without code."""
    code = manifest.data.get("code")
    if not isinstance(code, Mapping) or not isinstance(code.get("hash"), str):
        return None
    files = code.get("files")
    return code["hash"], {str(k): str(v) for k, v in (files if isinstance(files, Mapping) else {}).items()}


def build_archive(root: Path, files: Mapping[str, str]) -> bytes:
    """A deterministic ``tar.gz`` of ``files`` (relative POSIX paths) read under ``root``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            data = (Path(root) / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(data), 0, _MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def check_tree(manifest: Manifest, root: Path) -> None:
    """The project's code under ``root`` must be the code compiled into ``manifest``."""
    from airflow_mbt.project.code import project_code

    compiled = manifest_code(manifest)
    if compiled is None:
        return
    current = project_code(Path(root), manifest.config)
    if current is not None and current["hash"] == compiled[0]:
        return
    now: dict[str, str] = dict(current["files"]) if current else {}
    was = compiled[1]
    differing = sorted(rel for rel in set(now) | set(was) if now.get(rel) != was.get(rel))
    rel = differing[0] if differing else sorted(was)[0] if was else "lib/"
    how = "is new" if rel not in was else "is gone" if rel not in now else "changed"
    raise MBTInputError(f"{rel} {how} since {manifest.name} was compiled: the release would not ship the code "
                        "its manifest names", file=str(Path(root) / rel),
                        hint=f"re-run `mbt compile {manifest.name} --target {manifest.target_name}`, then deploy")


def publish_code(location: ManifestLocation, manifest: Manifest, root: Path) -> str | None:
    """Write the code archive of ``manifest`` once; returns its URI (``None`` without code)."""
    compiled = manifest_code(manifest)
    if compiled is None:
        return None
    key = code_key(manifest.name, compiled[0])
    try:
        location.put_if_absent(key, build_archive(root, compiled[1]))
    except RegistryConflictError:
        pass  # content-addressed: the existing archive holds the same files
    return location.uri(key)


def _safe_name(member: tarfile.TarInfo, uri: str) -> str:
    name = member.name
    if (not member.isreg() or not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(p in ("", ".", "..") for p in name.split("/"))):
        raise IntegrityError(f"code archive {uri} has an unsafe member {name!r} "
                             f"({'not a regular file' if not member.isreg() else 'path leaves the folder'})")
    return name


def read_archive(data: bytes, files: Mapping[str, str], uri: str) -> dict[str, bytes]:
    """The verified ``{relpath: bytes}`` of an archive: safe members, exactly ``files``, every
    sha256 equal; anything else is an ``IntegrityError``."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = _safe_name(member, uri)
                if name in out:
                    raise IntegrityError(f"code archive {uri} holds {name!r} twice")
                handle = tar.extractfile(member)
                out[name] = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntegrityError(f"code archive {uri} is not a readable tar.gz ({exc})") from None
    if set(out) != set(files):
        extra, missing = sorted(set(out) - set(files)), sorted(set(files) - set(out))
        raise IntegrityError(f"code archive {uri} does not hold the release's files "
                             f"(extra: {extra or '-'}, missing: {missing or '-'})")
    for rel, body in sorted(out.items()):
        if hashlib.sha256(body).hexdigest() != files[rel]:
            raise IntegrityError(f"code archive {uri}: {rel} does not match its sha256 in the manifest "
                                 "(tampered or corrupt)")
    return out


def _verified(folder: Path, files: Mapping[str, str]) -> bool:
    try:
        return all(hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
                   for rel, digest in files.items())
    except OSError:
        return False


def _extract(files: dict[str, bytes], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, body in files.items():
            target = tmp.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        if dest.exists():  # a stale copy that failed verification
            shutil.rmtree(dest, ignore_errors=True)
        publish_dir(tmp, dest)  # False: another process put a copy there meanwhile; it verifies below
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cache_root() -> Path:
    from airflow_mbt.settings import cache_dir

    return cache_dir() / CODE_DIR


def released_code_dir(manifest: Manifest, manifest_uri: str, conn_id: str | None,
                      project_dir: Path) -> Path | None:
    """The folder to import the release's code from (see the module docstring)."""
    from airflow_mbt.project.code import project_code

    compiled = manifest_code(manifest)
    if compiled is None:
        return None
    code_hash, files = compiled
    local = project_code(Path(project_dir), manifest.config)
    if local is not None and local["hash"] == code_hash:
        return None
    dest = _cache_root() / hash_hex(code_hash)
    if dest.is_dir() and _verified(dest, files):
        log.info("mbt: running the release's code %s (cached in %s)", code_hash, dest)
        return dest
    from airflow_mbt.manifests.backends import location_for
    from airflow_mbt.manifests.store import split_manifest_uri

    parent, _leaf = split_manifest_uri(manifest_uri)
    location = location_for(parent, conn_id)
    key = f"{CODE_DIR}/{hash_hex(code_hash)}{SUFFIX}"
    uri = location.uri(key)
    try:
        data = location.read(key)
    finally:
        location.close()
    if data is None:
        raise IntegrityError(f"the code archive of release {manifest.content_hash} is missing: {uri}\n"
                             f"  hint: deploy the pipeline again with `mbt deploy` (it ships the code {code_hash})")
    verified = read_archive(data, files, uri)
    try:
        _extract(verified, dest)
    except OSError as exc:  # a read-only cache folder (a pod's home): a private temp folder does
        log.warning("mbt: cannot write the code cache %s (%s); using a temp folder", dest, exc)
        dest = Path(tempfile.mkdtemp(prefix="mbt-code-")) / hash_hex(code_hash)
        _extract(verified, dest)
    if not _verified(dest, files):
        raise IntegrityError(f"the extracted code of {uri} in {dest} does not verify\n"
                             f"  hint: remove {dest} and run the step again")
    log.info("mbt: running the release's code %s fetched from %s (the project's code differs)", code_hash, uri)
    return dest

