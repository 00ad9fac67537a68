"""airflow_mbt._fs, the one atomic-write helper: a failed or killed write leaves the old file
intact, a failed write leaves no temp file, and every writer of the package goes through it."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mbt import _fs
from airflow_mbt._fs import (
    atomic_copy,
    atomic_target,
    atomic_write_bytes,
    atomic_write_text,
    is_temp_name,
)
from airflow_mbt.manifest import Manifest
from airflow_mbt.plugins.storage.local import LocalStorage

PACKAGE = Path(_fs.__file__).resolve().parent


def test_write_creates_folders_and_replaces_the_content(tmp_path):
    target = tmp_path / "a" / "b" / "manifest.json"
    assert atomic_write_text(target, "first €") == target
    assert target.read_text(encoding="utf-8") == "first €"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["manifest.json"]


def test_a_failing_block_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_target(target) as tmp:
        assert tmp.parent == target.parent and is_temp_name(tmp.name) and not tmp.name.endswith(".json")
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failing_copy_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old model")
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing-source", target)
    assert target.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path):
    target = tmp_path / "new.csv"
    with pytest.raises(ValueError), atomic_target(target) as tmp:
        tmp.write_text("a,b\n")
        raise ValueError("bad row")
    assert os.listdir(tmp_path) == []


def test_a_writer_killed_mid_write_leaves_the_old_file_intact(tmp_path):
    """SIGKILL cannot be cleaned up after: the target is intact and the leftover is a temp name
    that listings skip."""
    target = tmp_path / "k" / "blob"
    storage = LocalStorage({"base_path": str(tmp_path)})
    storage.put("k/blob", b"old")
    script = (
        "import os, signal, sys\n"
        "from airflow_mbt._fs import atomic_target\n"
        "with atomic_target(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'partial new content')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, timeout=120,
                          check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert target.read_bytes() == b"old"
    leftovers = [n for n in os.listdir(target.parent) if n != "blob"]
    assert len(leftovers) == 1 and is_temp_name(leftovers[0])
    assert storage.list("k/") == ["k/blob"]


def test_manifest_write_goes_through_the_helper(tmp_path):
    manifest = Manifest.build({"pipeline": {"name": "p", "kind": "training"}, "schedule": "@daily",
                               "target": {"name": "dev"}, "config": {}, "steps": []})
    path = tmp_path / "target" / "p" / "manifest.json"
    assert manifest.write(path) == path
    assert path.read_text(encoding="utf-8") == manifest.to_json()
    assert os.listdir(path.parent) == ["manifest.json"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_helper_is_at_the_bottom_of_the_import_graph():
    # only the bottom-most module (error types, which import nothing above constants)
    assert {m for m in _imports(PACKAGE / "_fs.py") if m.split(".")[0] == "airflow_mbt"} <= {"airflow_mbt.errors"}


def test_no_module_hand_rolls_a_temp_file_rename():
    """``os.replace``/``.replace(path)`` renames live in _fs.py only."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_fs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("replace", "rename") and len(node.args) == 1 \
                    and not isinstance(node.args[0], ast.Constant) \
                    and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "dataclasses"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "replace" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id == "os":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
