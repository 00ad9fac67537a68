# shellcheck shell=bash
# Stack service "mlflow": MLflow tracking server in its own venv (.stack/venvs/mlflow: mlflow pinned
# to requirements/lock.txt, psycopg2-binary, boto3). Backend store mlflow_db on PostgreSQL
# (postgresql+psycopg2 - plain postgresql:// maps to psycopg 3 under SQLAlchemy 2.1 and fails).
# Artifacts are PROXIED: --artifacts-destination s3://mbt-mlflow-artifacts/, so clients only need
# the tracking URI (no S3 keys); the server alone talks to SeaweedFS. One worker, no job runner.

STACK_DEPS[mlflow]="postgres s3"

svc_mlflow_url() { echo "$MBT_MLFLOW_URI"; }

svc_mlflow_health() { [ "$(http_get "http://127.0.0.1:$MBT_MLFLOW_PORT/health")" = OK ]; }

svc_mlflow_timeout() { echo 120; }

svc_mlflow_start() {
  local ver; ver=$(locked_version mlflow)
  [ -n "$ver" ] || die "mlflow: no mlflow==X pin in requirements/lock.txt"
  ensure_tool_venv mlflow "mlflow==$ver" psycopg2-binary boto3
  if port_open "$MBT_MLFLOW_PORT"; then
    die "mlflow: port $MBT_MLFLOW_PORT is taken by a process that does not answer /health like MLflow"
  fi
  stack_spawn mlflow env \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    MLFLOW_S3_ENDPOINT_URL="$MBT_S3_ENDPOINT_URL" \
    AWS_ACCESS_KEY_ID="$MBT_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$MBT_S3_SECRET_KEY" \
    AWS_DEFAULT_REGION="$MBT_S3_REGION" \
    MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://mlflow_user:mlflow_password@127.0.0.1:$MBT_PG_PORT/mlflow_db" \
    "$STACK_DIR/venvs/mlflow/bin/mlflow" server \
    --artifacts-destination "s3://mbt-mlflow-artifacts/" \
    --host 127.0.0.1 --port "$MBT_MLFLOW_PORT" --workers 1
}

svc_mlflow_stop() { stack_kill mlflow 30; }
