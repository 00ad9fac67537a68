#!/usr/bin/env bash
# Local Airflow 3 servers for the mbt stack (api-server, scheduler, dag-processor, triggerer): up | down | status.
#
# Runs from the project venv (.venv) on the stack's PostgreSQL (airflow_db), LocalExecutor,
# AIRFLOW_HOME=.stack/airflow, logs in .stack/logs/airflow-<component>.log, pid files in
# .stack/pids/airflow-<component>.pid. Call it after `scripts/stack.sh up`: the mbt_* connections
# come from the AIRFLOW_CONN_* variables in scripts/stack.env and are handed to the servers as
# environment (never stored or typed by hand). UI/REST login: admin / admin (simple auth manager).
# Idempotent: `up` starts only what is not running; `down` stops everything and waits.
#
# A second, private instance (for a developer's branch, beside the shared one):
#   MBT_AIRFLOW_INSTANCE=NAME AIRFLOW_PORT=8091 scripts/airflow.sh up
# runs with AIRFLOW_HOME=.stack/airflow-NAME, database airflow_db_NAME (created when missing),
# manifests under s3://mbt-pipeline-artifacts/manifests-NAME/, this checkout's dags/ and package
# (PYTHONPATH), and pid/log names airflow-NAME-<component>. The e2e tests reach it through
# MBT_AIRFLOW_URL=http://127.0.0.1:8091.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${MBT_VENV:-$ROOT/.venv}
STACK_DIR=$ROOT/.stack
LOG_DIR=$STACK_DIR/logs
PID_DIR=$STACK_DIR/pids
# Process spawning / stopping with pid files and log tails are shared with scripts/stack.sh.
# shellcheck source=scripts/stack/lib.sh
. "$ROOT/scripts/stack/lib.sh"
say() { echo "[airflow] $*"; }
die() { echo "[airflow] ERROR: $*" >&2; exit 1; }

INSTANCE=${MBT_AIRFLOW_INSTANCE:-}
[[ -z "$INSTANCE" || "$INSTANCE" =~ ^[a-z0-9_]+$ ]] || die "MBT_AIRFLOW_INSTANCE must match [a-z0-9_]+"
P=airflow${INSTANCE:+-$INSTANCE}   # pid and log name prefix
DB=airflow_db${INSTANCE:+_$INSTANCE}
export AIRFLOW_HOME=$STACK_DIR/$P
PORT=${AIRFLOW_PORT:-8080}
if [ -n "$INSTANCE" ]; then
  [ "$PORT" != 8080 ] || die "a private instance needs its own AIRFLOW_PORT (8080 is the shared one)"
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
  export MBT_MANIFESTS_URI=${MBT_MANIFESTS_URI:-s3://mbt-pipeline-artifacts/manifests-$INSTANCE/}
fi
URL=http://127.0.0.1:$PORT
UP_TIMEOUT=${AIRFLOW_UP_TIMEOUT:-180}
COMPONENTS=(api-server scheduler dag-processor triggerer)  # triggerer: deferrable operators

load_env() {
  # Connections and S3 keys of the local stack (written by scripts/stack.sh).
  local envfile=${MBT_STACK_ENV:-$ROOT/scripts/stack.env}
  [ -f "$envfile" ] || die "$envfile not found: run scripts/stack.sh up first"
  set -a
  # shellcheck disable=SC1090
  . "$envfile"
  set +a
  local c
  for c in AIRFLOW_CONN_MBT_WAREHOUSE AIRFLOW_CONN_MBT_S3 AIRFLOW_CONN_MBT_MLFLOW AIRFLOW_CONN_MBT_H2O; do
    [ -n "${!c:-}" ] || die "$c is not set by $envfile (scripts/stack.sh up writes it)"
  done

  mkdir -p "$AIRFLOW_HOME" "$LOG_DIR" "$PID_DIR"
  # Per-installation secrets, generated once, shared by all three servers (tokens signed by the
  # scheduler must validate in the api-server). Kept out of git under .stack/.
  local secrets=$AIRFLOW_HOME/secrets.env
  if [ ! -s "$secrets" ]; then
    (umask 077; "$VENV/bin/python" - > "$secrets" <<'EOF'
import base64, secrets
print("AIRFLOW__API_AUTH__JWT_SECRET=" + secrets.token_urlsafe(48))
print("AIRFLOW__API__SECRET_KEY=" + secrets.token_urlsafe(32))
print("AIRFLOW__CORE__FERNET_KEY=" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
EOF
    )
  fi
  set -a
  # shellcheck disable=SC1090
  . "$secrets"
  set +a
  # Known admin login for the UI, the REST API and the tests.
  local pwfile=$AIRFLOW_HOME/simple_auth_manager_passwords.json
  echo '{"admin": "admin"}' > "$pwfile"

  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-postgresql+psycopg2://airflow_user:airflow_password@127.0.0.1:5432/$DB}
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__CORE__PARALLELISM=4
  export AIRFLOW__CORE__DAGS_FOLDER=${MBT_AIRFLOW_DAGS_FOLDER:-$ROOT/dags}
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$pwfile
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$URL/execution/
  export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT=$PORT
  export AIRFLOW__API__BASE_URL=$URL
  # The loader DAG file never changes while manifests come and go in S3: re-parse it often.
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
  export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=10
  export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1
  # A pipeline whose manifest is removed leaves the DAG list ~10 s after the next parse.
  export AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD=10
  export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT=120
  export MBT_MANIFESTS_URI=${MBT_MANIFESTS_URI:-s3://mbt-pipeline-artifacts/manifests/}
  export AIRFLOW__MBT__MANIFESTS_URI=$MBT_MANIFESTS_URI
  # Manifest cache: ask S3 at most every 5 s, so a fresh `mbt deploy` shows up within seconds.
  export AIRFLOW__MBT__CACHE_TTL_SECONDS=${AIRFLOW__MBT__CACHE_TTL_SECONDS:-5}
}

ensure_db() {
  # The metadata database belongs to this stack (lib.sh stack_id): one made by another stack is
  # dropped and recreated empty; a private instance's is created when missing. A database named by
  # the caller (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) is left exactly as it is.
  [ "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" = "postgresql+psycopg2://airflow_user:airflow_password@127.0.0.1:5432/$DB" ] \
    || return 0
  pg_drop_foreign_db "$DB"
  pg_db_exists "$DB" || pg_admin_psql -d postgres -c "CREATE DATABASE $DB OWNER airflow_user" \
    || die "cannot create database $DB"
  pg_claim_db "$DB"
}

check_db() {
  "$VENV/bin/python" - <<'EOF' || die "cannot reach $DB on 127.0.0.1:5432 as airflow_user: run scripts/stack.sh up first"
import os, sys
import psycopg2
url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
try:
    psycopg2.connect(url, connect_timeout=5).close()
except Exception as exc:
    print(f"[airflow] PostgreSQL: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(1)
EOF
}

start() {
  local comp=$1
  shift
  if alive "$P-$comp"; then
    say "$comp already running (pid $(pid_of "$P-$comp"))"
    return
  fi
  # Own process group (setsid), so stopping it also stops its workers.
  stack_spawn "$P-$comp" "$VENV/bin/airflow" "$comp" "$@"
  say "$comp started (pid $(pid_of "$P-$comp"), log $LOG_DIR/$P-$comp.log)"
}

health_json() {
  "$VENV/bin/python" - "$URL/api/v2/monitor/health" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(json.dumps(json.load(r)))
except Exception:
    sys.exit(1)
EOF
}

wait_healthy() {
  local deadline=$((SECONDS + UP_TIMEOUT)) h comp bad
  while :; do
    for comp in "${COMPONENTS[@]}"; do
      if ! alive "$P-$comp"; then
        echo "[airflow] ERROR: $comp exited during start-up; log: $LOG_DIR/$P-$comp.log" >&2
        log_tail "$P-$comp" 40
        exit 1
      fi
    done
    if h=$(health_json); then
      bad=$(echo "$h" | "$VENV/bin/python" -c '
import json, sys
h = json.load(sys.stdin)
names = {"metadatabase": "metadatabase", "scheduler": "scheduler", "dag_processor": "dag-processor",
         "triggerer": "triggerer"}
print(" ".join(v for k, v in names.items() if (h.get(k) or {}).get("status") != "healthy"))')
      if [ -z "$bad" ]; then
        say "healthy: $URL (login admin/admin)"
        return 0
      fi
    else
      bad=api-server
    fi
    if [ $SECONDS -ge $deadline ]; then
      for comp in $bad; do
        [ "$comp" = metadatabase ] && comp=api-server
        echo "[airflow] $comp log ($LOG_DIR/$P-$comp.log):" >&2
        log_tail "$P-$comp" 40
      done
      die "not healthy after ${UP_TIMEOUT}s: $bad (health: $URL/api/v2/monitor/health)"
    fi
    sleep 2
  done
}

up() {
  [ -x "$VENV/bin/airflow" ] || die "$VENV/bin/airflow missing: run scripts/bootstrap.sh"
  load_env
  ensure_db
  check_db
  if ! alive $P-api-server && port_open "$PORT"; then
    die "port $PORT is taken by a process this script did not start"
  fi
  # Servers started with another configuration (this script, stack.env or the venv changed) are
  # restarted, so `up` always leaves Airflow running as configured here.
  local want have
  want=$( (env | grep -E '^(AIRFLOW__|AIRFLOW_CONN_|MBT_MANIFESTS_URI=)' | sort; cat "$ROOT/scripts/airflow.sh"; readlink -f "$VENV/bin/airflow") \
          | sha256sum | cut -d' ' -f1)
  have=$(cat "$PID_DIR/$P.config-sha" 2>/dev/null || true)
  if [ "$want" != "$have" ] && { alive $P-api-server || alive $P-scheduler || alive $P-dag-processor \
                                 || alive $P-triggerer; }; then
    say "configuration changed since the servers started: restarting them"
    down
  fi
  say "migrating the metadata database ($DB)"
  "$VENV/bin/airflow" db migrate >> "$LOG_DIR/$P-migrate.log" 2>&1 \
    || { log_tail $P-migrate 40; die "airflow db migrate failed (log: $LOG_DIR/$P-migrate.log)"; }
  start api-server --host 127.0.0.1 --port "$PORT" --workers 1
  # --skip-serve-logs: the log server binds every interface; task logs are local files here.
  start scheduler --skip-serve-logs
  start dag-processor
  start triggerer --skip-serve-logs
  echo "$want" > "$PID_DIR/$P.config-sha"
  wait_healthy
}

down() {
  local comp
  for comp in triggerer dag-processor scheduler api-server; do
    if alive "$P-$comp"; then
      stack_kill "$P-$comp" 30
      say "$comp stopped"
    fi
    rm -f "$PID_DIR/$P-$comp.pid"
  done
}

status() {
  local comp rc=0 h
  for comp in "${COMPONENTS[@]}"; do
    if alive "$P-$comp"; then
      echo "$comp: running (pid $(pid_of "$P-$comp"))"
    else
      echo "$comp: stopped"
      rc=1
    fi
  done
  if h=$(health_json); then
    echo "health: $h"
  else
    echo "health: $URL/api/v2/monitor/health not answering"
    rc=1
  fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
