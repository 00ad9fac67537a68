"""Code inside the version, on a local-folder manifests location: ``mbt deploy`` ships the code
archive ``<pipeline>/code/<hex>.tar.gz`` (deterministic, refused when the tree changed since
compile), and ``mbt step execute`` of a deployed release runs the released code even when the
project's ``lib/`` was edited since (a transform returning 1 released vs 2 edited); hostile or
tampered archives are integrity errors (exit 3)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from airflow_mbt.cli.main import main
from airflow_mbt.errors import IntegrityError
from airflow_mbt.manifest import Manifest
from airflow_mbt.manifests.code_archive import build_archive, code_key, read_archive
from airflow_mbt.scaffold.project_init import init_project

PIPELINE = "training_churn_model_v1"
RUN_ID = "run_20261126_000000_0123456789abcdef"
SPEC = "lib.features:mark"


def _transform(version: int) -> str:
    return f"def mark(df):\n    out = df.copy()\n    out['code_version'] = {version}\n    return out\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """An ``mbt init`` project whose training runs ``lib.features:mark`` (version 1), compiled."""
    root = init_project("proj", tmp_path_factory.mktemp("code_tpl"))
    base = root / "pipelines" / "_base_churn.yaml"
    base.write_text(base.read_text().replace("custom_transforms: []", f'custom_transforms: ["{SPEC}"]'))
    (root / "lib" / "features.py").write_text(_transform(1))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["compile", PIPELINE, "--target", "dev"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def project(template, tmp_path, monkeypatch):
    dest = tmp_path / "proj"
    shutil.copytree(template, dest)
    monkeypatch.chdir(dest)
    monkeypatch.setenv("MBT_CACHE_DIR", str(tmp_path / "cache"))
    return dest


def _compiled(project: Path) -> Manifest:
    return Manifest.read(project / "target" / PIPELINE / "manifest.json")


def _archive_path(store: Path, manifest: Manifest) -> Path:
    return store / code_key(PIPELINE, manifest.code_hash or "")


def _deploy(store: Path, *extra: str) -> int:
    return main(["deploy", "--target", "dev", "--to", str(store), *extra])


def _execute(store: Path, step: str) -> int:
    uri = f"file://{store}/{PIPELINE}/manifest.json"
    return main(["step", "execute", "--pipeline", PIPELINE, "--step", step, "--target", "dev",
                 "--run-id", RUN_ID, "--manifest", uri])


def _train_code_versions(project: Path) -> set[int]:
    import pandas as pd

    path = project / "local_artifacts" / PIPELINE / RUN_ID / "split_data" / "train_set.parquet"
    return set(pd.read_parquet(path)["code_version"].tolist())


def test_the_archive_is_deterministic_and_holds_exactly_the_files(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "b.py").write_text("B = 2\n")
    (tmp_path / "lib" / "a.py").write_text("A = 1\n")
    files = {"lib/b.py": "x", "lib/a.py": "y"}
    first = build_archive(tmp_path, files)
    os.utime(tmp_path / "lib" / "a.py", (1_000_000, 1_000_000))
    os.chmod(tmp_path / "lib" / "b.py", 0o755)
    assert build_archive(tmp_path, dict(reversed(list(files.items())))) == first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["lib/a.py", "lib/b.py"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.isreg()) for m in members} == \
            {(0, 0, 0, "", "", 0o644, True)}
        assert tar.extractfile("lib/b.py").read() == b"B = 2\n"
    (tmp_path / "lib" / "a.py").write_text("A = 3\n")
    assert build_archive(tmp_path, files) != first


def test_deploy_uploads_the_code_once_and_dry_run_writes_nothing(project, tmp_path, capsys):
    manifest = _compiled(project)
    assert manifest.code_hash and set(manifest.data["code"]["files"]) == {"lib/__init__.py", "lib/features.py"}
    assert _deploy(tmp_path / "dry", "--dry-run") == 0
    assert not (tmp_path / "dry").exists()
    store = tmp_path / "store"
    assert _deploy(store) == 0
    archive = _archive_path(store, manifest)
    assert str(archive) in capsys.readouterr().out
    files = read_archive(archive.read_bytes(), manifest.data["code"]["files"], str(archive))
    assert files["lib/features.py"] == _transform(1).encode()
    assert archive.read_bytes() == build_archive(project, manifest.data["code"]["files"])
    before = archive.stat().st_mtime_ns
    assert _deploy(store) == 0  # unchanged release: the archive is left as it is
    assert archive.stat().st_mtime_ns == before
    assert sorted(p.name for p in (store / PIPELINE / "code").iterdir()) == [archive.name]


@pytest.mark.parametrize("edit, how", [
    (lambda p: (p / "lib" / "features.py").write_text(_transform(2)), "lib/features.py changed"),
    (lambda p: (p / "lib" / "extra.py").write_text("X = 1\n"), "lib/extra.py is new"),
])
def test_a_tree_changed_since_compile_is_refused_with_exit_2(project, tmp_path, capsys, edit, how):
    edit(project)
    store = tmp_path / "store"
    assert _deploy(store) == 2
    err = capsys.readouterr().err
    assert f"{how} since {PIPELINE} was compiled" in err
    assert f"mbt compile {PIPELINE} --target dev" in err and "Traceback" not in err
    assert not store.exists()  # nothing published, not even the manifest


def test_a_step_runs_the_released_code_not_the_edited_lib(project, tmp_path, caplog):
    store = tmp_path / "store"
    assert _deploy(store) == 0
    (project / "lib" / "features.py").write_text(_transform(2))  # the image / project holds newer code
    manifest = _compiled(project)
    with caplog.at_level(logging.INFO, logger="airflow_mbt"):
        assert _execute(store, "load_data") == 0
        assert _execute(store, "split_data") == 0
    assert _train_code_versions(project) == {1}
    fetched = [r.getMessage() for r in caplog.records if "running the release's code" in r.getMessage()]
    assert fetched and manifest.code_hash in fetched[0] and str(_archive_path(store, manifest)) in fetched[0]
    cached = tmp_path / "cache" / "code" / manifest.code_hash.split(":")[1] / "lib" / "features.py"
    assert cached.read_text() == _transform(1)
    assert (project / "lib" / "features.py").read_text() == _transform(2)  # the project is untouched
    assert any("(cached in" in r.getMessage() for r in caplog.records)  # split_data reused the copy
    cached.write_text(_transform(3))  # a corrupted cache copy is fetched again, not run
    assert _execute(store, "split_data") == 0
    assert _train_code_versions(project) == {1} and cached.read_text() == _transform(1)


def test_an_unwritable_cache_falls_back_to_a_temp_folder(project, tmp_path, monkeypatch):
    store = tmp_path / "store"
    assert _deploy(store) == 0
    (project / "lib" / "features.py").write_text(_transform(2))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MBT_CACHE_DIR", str(blocker))  # <cache>/code cannot be created
    assert _execute(store, "load_data") == 0
    assert _execute(store, "split_data") == 0
    assert _train_code_versions(project) == {1}


def test_matching_local_code_fetches_nothing(project, tmp_path):
    store = tmp_path / "store"
    assert _deploy(store) == 0
    _archive_path(store, _compiled(project)).unlink()  # would be exit 3 if it were fetched
    assert _execute(store, "load_data") == 0
    assert _execute(store, "split_data") == 0
    assert _train_code_versions(project) == {1}
    assert not (tmp_path / "cache" / "code").exists()


def test_a_local_manifest_path_runs_the_projects_code_as_today(project, tmp_path):
    (project / "lib" / "features.py").write_text(_transform(2))
    path = str(project / "target" / PIPELINE / "manifest.json")
    for step in ("load_data", "split_data"):
        assert main(["step", "execute", "--pipeline", PIPELINE, "--step", step, "--target", "dev",
                     "--run-id", RUN_ID, "--manifest", path]) == 0
    assert _train_code_versions(project) == {2}


def _tar(body: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in body.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def test_a_tampered_archive_fails_the_step_with_exit_3(project, tmp_path, capsys):
    store = tmp_path / "store"
    assert _deploy(store) == 0
    (project / "lib" / "features.py").write_text(_transform(2))
    archive = _archive_path(store, _compiled(project))
    archive.write_bytes(_tar({"lib/__init__.py": (project / "lib" / "__init__.py").read_bytes(),
                                                      "lib/features.py": _transform(3).encode()}))
    assert _execute(store, "load_data") == 3
    err = capsys.readouterr().err
    assert "lib/features.py does not match its sha256 in the manifest" in err and str(archive) in err
    assert not (tmp_path / "cache" / "code").exists() or not any((tmp_path / "cache" / "code").iterdir())


def test_a_missing_archive_fails_the_step_with_exit_3_and_says_deploy(project, tmp_path, capsys):
    store = tmp_path / "store"
    assert _deploy(store) == 0
    (project / "lib" / "features.py").write_text(_transform(2))
    archive = _archive_path(store, _compiled(project))
    archive.unlink()
    assert _execute(store, "load_data") == 3
    err = capsys.readouterr().err
    assert f"is missing: {archive}" in err and "mbt deploy" in err


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("member", [
    _member("/etc/evil.py"),
    _member("../evil.py"),
    _member("lib/../../evil.py"),
    _member("lib/./features.py"),
    _member("lib/features.py", tarfile.SYMTYPE, "/etc/passwd"),
    _member("lib/features.py", tarfile.LNKTYPE, "lib/__init__.py"),
    _member("lib", tarfile.DIRTYPE),
    _member("lib/dev", tarfile.CHRTYPE),
], ids=["absolute", "dotdot", "inner-dotdot", "dot", "symlink", "hardlink", "directory", "device"])
def test_hostile_members_are_rejected(member):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(b"") if member.isreg() else None)
    with pytest.raises(IntegrityError, match="unsafe member"):
        read_archive(raw.getvalue(), {"lib/features.py": "0" * 64}, "mem://x")


def test_extra_or_missing_files_are_integrity_errors():
    ok = {"lib/a.py": b"A = 1\n"}
    import hashlib

    files = {"lib/a.py": hashlib.sha256(b"A = 1\n").hexdigest()}
    assert read_archive(_tar(ok), files, "mem://x") == ok
    with pytest.raises(IntegrityError, match=r"extra: \['lib/b.py'\]"):
        read_archive(_tar({**ok, "lib/b.py": b""}), files, "mem://x")
    with pytest.raises(IntegrityError, match=r"missing: \['lib/a.py'\]"):
        read_archive(_tar({}), files, "mem://x")
    with pytest.raises(IntegrityError, match="not a readable tar.gz"):
        read_archive(b"not a tar", files, "mem://x")
