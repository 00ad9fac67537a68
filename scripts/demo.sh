#!/usr/bin/env bash
# The local demo on embedded defaults (dev target: local files, local artifact store, a local
# MLflow store and a local H2O JVM with a bounded heap). No services needed.
#
#   bash scripts/demo.sh [DIR]      # DIR defaults to ./demo-project (must not exist yet)
# Env: MBT_DEMO_RUNTIME_SECS (AutoML time budget, default 30), MBT_DEMO_FRAMEWORK (h2o_automl|sklearn)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${1:-demo-project}
SECS=${MBT_DEMO_RUNTIME_SECS:-30}
FRAMEWORK=${MBT_DEMO_FRAMEWORK:-h2o_automl}
bash scripts/bootstrap.sh
export PATH="$ROOT/.venv/bin:$PATH"
if [ -e "$DIR" ]; then
  echo "demo: $DIR already exists; remove it or pass another folder: bash scripts/demo.sh /tmp/my-demo" >&2
  exit 2
fi
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
parent=$(dirname "$DIR"); name=$(basename "$DIR")
mkdir -p "$parent"
step "mbt init $name"
(cd "$parent" && mbt init "$name")
cd "$parent/$name"
if [ "$FRAMEWORK" = sklearn ]; then
  python - <<'PY'
import re, pathlib
p = pathlib.Path("pipelines/training_churn_model_v1.yaml")
t = p.read_text()
t = re.sub(r"framework: h2o_automl", "framework: sklearn", t, count=1)
p.write_text(t)
PY
fi
step "mbt validate"
mbt validate training_churn_model_v1
step "mbt compile training_churn_model_v1 --target dev"
mbt compile training_churn_model_v1 --target dev --vars "max_runtime_secs=$SECS"
step "mbt run --select training_churn_model_v1 --target dev"
mbt run --select training_churn_model_v1 --target dev --vars "max_runtime_secs=$SECS"
RUN=$(python -c "import json;print(json.load(open('target/training_churn_model_v1/run_results.json'))['mlflow_run_id'])")
step "serving: churn_model@champion (MLflow run $RUN was registered; promote made it champion)"
mbt compile serving_churn_model_v1 --target dev
mbt run --select serving_churn_model_v1 --target dev
step "done"
echo "project:      $(pwd)"
echo "predictions:  $(pwd)/predictions.csv ($(($(wc -l < predictions.csv) - 1)) rows)"
echo "artifacts:    $(pwd)/local_artifacts/"
echo "MLflow UI:    cd $(pwd) && $ROOT/.venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --port 5001   (then open http://127.0.0.1:5001)"
