#!/usr/bin/env bash
# Create (or refresh) the project virtualenv in .venv from the locked requirements.
# Idempotent: a second run only re-installs the project itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${MBT_PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! command -v uv >/dev/null 2>&1; then
  echo "[bootstrap] installing uv (package installer) with pip"
  "$PY" -m pip install -q uv
fi
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  uv venv -q -p "$PY" .venv
fi
stamp=.venv/.lock-sha
want=$(sha256sum requirements/lock.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing locked requirements (requirements/lock.txt)"
  VIRTUAL_ENV="$ROOT/.venv" uv pip install -q -r requirements/lock.txt
  echo "$want" > "$stamp"
fi
VIRTUAL_ENV="$ROOT/.venv" uv pip install -q --no-deps -e .
# Bytecode, once per lock: where PYTHONDONTWRITEBYTECODE=1 is set (as on these machines) Python
# never caches compiled modules, and uv installs none, so every process - each Airflow task, each
# mbt command, each test subprocess - compiled scikit-learn, MLflow, Airflow ... from source again
# (about 9 s of a 15 s import of sklearn + MLflow + pandas + pyarrow). compileall writes them anyway.
bytecode=.venv/.bytecode-sha
if [ "$(cat "$bytecode" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] compiling the installed packages to bytecode (once per lock, about a minute)"
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  .venv/bin/python -m compileall -q -j 0 "$site" > .venv/compileall.log 2>&1 || true  # a few test files of packages do not compile
  echo "$want" > "$bytecode"
fi
echo "[bootstrap] ready: $ROOT/.venv ($(.venv/bin/python --version))"
