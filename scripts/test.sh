#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs everything, starts the services the
# tests need, then runs the tiers in order: unit (fast, no services) -> integration (real
# PostgreSQL, SeaweedFS S3, MLflow server, H2O server) -> e2e (live Airflow 3 + Debian's
# Chromium, installed by scripts/browser.sh).
#
#   bash scripts/test.sh            # all tiers
#   bash scripts/test.sh unit       # one tier (unit | integration | e2e), extra args go to pytest
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
tiers=(unit integration e2e)
if [ $# -gt 0 ] && [[ " ${tiers[*]} " == *" $1 "* ]]; then tiers=("$1"); shift; fi

bash scripts/bootstrap.sh || { echo "bootstrap failed" >&2; exit 1; }
PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"
mkdir -p test-artifacts
rc=0
declare -A took

need_stack() {
  bash scripts/stack.sh up || { echo "the local service stack did not come up (see .stack/logs/)" >&2; return 1; }
}
need_airflow() {
  need_stack && bash scripts/airflow.sh up || { echo "Airflow did not come up (see .stack/logs/)" >&2; return 1; }
}
need_browser() {
  bash scripts/browser.sh || { echo "Chromium for the browser checks is missing (scripts/browser.sh)" >&2; return 1; }
}

for tier in "${tiers[@]}"; do
  start=$(date +%s)
  echo "================ tier: $tier ================"
  case "$tier" in
    unit)
      # hygiene first: lint (incl. the TID253 heavy-import ban) and strict typing of the core layers
      echo "---- ruff check"; "$ROOT/.venv/bin/ruff" check . || rc=1
      echo "---- mypy --strict (pyproject [tool.mypy] files)"; "$ROOT/.venv/bin/mypy" || rc=1
      ;;
    integration) need_stack || { rc=1; continue; } ;;
    e2e) need_browser && need_airflow || { rc=1; continue; } ;;
  esac
  parallel=()
  [ "$tier" = unit ] && parallel=(-n auto)  # the unit tier is service-free: one worker per core (pytest-xdist)
  "$PY" -m pytest "tests/$tier" -p no:cacheprovider --junitxml="test-artifacts/junit-$tier.xml" "${parallel[@]}" "$@"
  code=$?
  # exit code 5 = no tests collected: a tier with no tests is a failure, not a pass
  [ $code -ne 0 ] && rc=1
  took[$tier]=$(( $(date +%s) - start ))
done

echo "================ summary ================"
for tier in "${tiers[@]}"; do echo "tier $tier: ${took[$tier]:-not run}s"; done
"$PY" - "${tiers[@]}" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
from pathlib import Path
p = f = s = 0
for tier in sys.argv[1:]:
    path = Path(f"test-artifacts/junit-{tier}.xml")
    if not path.exists():
        f += 1
        print(f"tier {tier}: no results (counted as 1 failure)")
        continue
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    for su in suites:
        tests, fail = int(su.get("tests", 0)), int(su.get("failures", 0)) + int(su.get("errors", 0))
        skip = int(su.get("skipped", 0))
        p += tests - fail - skip; f += fail; s += skip
print(f"all tiers: {p} passed, {f} failed, {s} skipped")
PYEOF
exit $rc
