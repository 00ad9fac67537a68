"""A throwaway virtualenv for a comparison tool, cached under ``.stack/bench-venvs/<name>/``.

``bench_venv(name, requirements)`` returns the venv's python. The first call creates it with
``python -m venv`` in a temp folder beside the cache and ``pip install``s the requirements,
constrained to the versions of this project's venv (so e.g. apache-airflow is exactly ours and
pip does not backtrack), then renames it into place; later calls reuse it. It prints one note
when it installs. Delete the folder to rebuild it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".stack" / "bench-venvs"


def _constraints(path: Path) -> None:
    """``name==version`` of every distribution in the project venv except our own package
    (the project venv is made by uv and has no pip to ``freeze`` with)."""
    from importlib.metadata import distributions

    pins = {d.metadata["Name"].lower(): d.version for d in distributions() if d.metadata["Name"]}
    pins.pop("airflow-mbt", None)
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))


def bench_venv(name: str, requirements: list[str]) -> Path:
    python = CACHE / name / "bin" / "python"
    if python.is_file():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"note: installing {' '.join(requirements)} into a benchmark venv {CACHE / name} "
          "(once; a few minutes, reused by later runs)", flush=True)
    build = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    try:
        venv = build / name
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
        constraints = build / "constraints.txt"
        _constraints(constraints)
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "-c", str(constraints), *requirements],
                              capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode:
            raise SystemExit(f"pip install {' '.join(requirements)} failed:\n{proc.stderr[-3000:]}")
        venv.rename(CACHE / name)  # a venv works from its folder: `bin/python` finds its site-packages
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return python
