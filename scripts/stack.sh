#!/usr/bin/env bash
# Local service stack for airflow-mbt, native processes on 127.0.0.1 (no Docker):
#   postgres  system PostgreSQL 15 on :5432, provisioned by infra/postgres/init.sql + seed.py
#   s3        SeaweedFS `weed mini` S3 on :8333 (buckets mbt-mlflow-artifacts, mbt-pipeline-artifacts)
#   mlflow    MLflow tracking server on :5000 (PostgreSQL backend, proxied S3 artifacts)
#   h2o       shared H2O cloud on :54321 (MBT_H2O_NODES=N: N JVMs with a flatfile, see stack/h2o.sh)
#
# Usage: scripts/stack.sh up|down|restart|status|logs [service...]
#   up      start the services (and their dependencies) not yet healthy; no args = all defaults.
#           Idempotent: each service is health-checked first; provisioning re-runs (cheap).
#   down    stop what this script started (never the system PostgreSQL) and wait for exit.
#   status  one line per service; exit 3 when any listed service is down.
#   logs    tail the service logs.
# Logs: .stack/logs/<svc>.log, pids: .stack/pids/<svc>.pid, tool venvs: .stack/venvs/.
#
# Services are modules: scripts/stack/<svc>.sh defines svc_<svc>_health (quiet, 0 = healthy),
# svc_<svc>_start (spawn with stack_spawn, do not wait), svc_<svc>_stop, svc_<svc>_url,
# optionally svc_<svc>_timeout (seconds), svc_<svc>_detail (extra text for `status`), svc_<svc>_provision (idempotent, runs after health on
# every `up`) and STACK_DEPS[<svc>]="deps...". A new module is picked up automatically; add it to
# STACK_DEFAULT in the module to include it in a bare `up`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${MBT_STACK_DIR:-$ROOT/.stack}
LOG_DIR=$STACK_DIR/logs
PID_DIR=$STACK_DIR/pids
mkdir -p "$LOG_DIR" "$PID_DIR"

# MBT_* variables already in the environment win over stack.env (e.g. MBT_H2O_PORT, MBT_STACK_DIR
# for a private cluster on spare ports, as tests/integration/test_h2o_cluster.py does).
_mbt_env=$(export -p | grep -E '^declare -x MBT_[A-Z0-9_]+=' || true)
set -a
# shellcheck source=stack.env
. "$ROOT/scripts/stack.env"
set +a
eval "$_mbt_env"
unset _mbt_env

declare -A STACK_DEPS=()
STACK_DEFAULT="postgres s3 mlflow h2o"
# shellcheck source=stack/lib.sh
. "$ROOT/scripts/stack/lib.sh"
for _mod in "$ROOT"/scripts/stack/*.sh; do
  [ "$(basename "$_mod")" = lib.sh ] && continue
  # shellcheck disable=SC1090
  . "$_mod"
done

known() { declare -F "svc_$1_health" >/dev/null; }

all_services() {
  declare -F | awk '{print $3}' | sed -n 's/^svc_\(.*\)_health$/\1/p' | tr '\n' ' '
}

# with_deps SVC...: the services plus their dependencies, dependencies first, no repeats
with_deps() {
  local out="" s
  _visit() {
    local d
    case " $out " in *" $1 "*) return ;; esac
    known "$1" || die "unknown service '$1' (known: $(all_services))"
    for d in ${STACK_DEPS[$1]:-}; do _visit "$d"; done
    out="$out $1"
  }
  for s in "$@"; do _visit "$s"; done
  echo "$out"
}

up_one() {
  local svc=$1 t0 timeout
  t0=$(now)
  if "svc_${svc}_health"; then
    say "$svc: already up ($("svc_${svc}_url"))"
  else
    timeout=30
    declare -F "svc_${svc}_timeout" >/dev/null && timeout=$("svc_${svc}_timeout")
    if alive "$svc"; then
      say "$svc: process $(pid_of "$svc") running, waiting for health (up to ${timeout}s)"
    else
      say "$svc: starting"
      "svc_${svc}_start"
    fi
    wait_healthy "$svc" "$timeout"
    say "$svc: healthy in $(elapsed "$t0")s ($("svc_${svc}_url"))"
  fi
  if declare -F "svc_${svc}_provision" >/dev/null; then
    local t1; t1=$(now)
    "svc_${svc}_provision"
    say "$svc: provisioned in $(elapsed "$t1")s"
  fi
}

cmd_up() {
  local t0 s list; t0=$(now)
  list=$(with_deps "$@") || exit 2
  for s in $list; do up_one "$s"; done
  say "stack up in $(elapsed "$t0")s: $*"
}

cmd_down() {
  local s list
  # reverse order: dependants first
  list=$(with_deps "$@") || exit 2
  list=$(echo "$list" | tr ' ' '\n' | grep -v '^$' | tac | tr '\n' ' ')
  for s in $list; do
    # only services named explicitly or in the default set are stopped, never a bare dependency
    case " $* " in *" $s "*) ;; *) continue ;; esac
    local t0; t0=$(now)
    "svc_${s}_stop"
    say "$s: down in $(elapsed "$t0")s"
  done
}

cmd_status() {
  local s rc=0 state pid
  for s in "$@"; do
    known "$s" || die "unknown service '$s' (known: $(all_services))"
    if "svc_${s}_health"; then state=up; else state=down; rc=3; fi
    pid=$(pid_of "$s"); alive "$s" || pid="-"
    local detail=""
    declare -F "svc_${s}_detail" >/dev/null && detail=" $("svc_${s}_detail")"
    printf '%-10s %-5s pid=%-8s %s%s  log=%s\n' "$s" "$state" "$pid" "$("svc_${s}_url")" "$detail" "$LOG_DIR/$s.log"
  done
  return $rc
}

cmd_logs() {
  local s
  for s in "$@"; do echo "==> $LOG_DIR/$s.log"; tail -n 40 "$LOG_DIR/$s.log" 2>/dev/null || true; done
}

main() {
  local cmd=${1:-}; shift || true
  # shellcheck disable=SC2086
  [ $# -gt 0 ] || set -- $STACK_DEFAULT
  case "$cmd" in
    up|down|restart)
      exec 9> "$STACK_DIR/stack.lock"
      flock -w 600 9 || die "another stack.sh holds $STACK_DIR/stack.lock for over 600s"
      case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        restart) cmd_down "$@"; cmd_up "$@" ;;
      esac ;;
    status) cmd_status "$@" ;;
    logs) cmd_logs "$@" ;;
    *) echo "usage: $0 up|down|restart|status|logs [service...]  (services: $(all_services))" >&2; exit 2 ;;
  esac
}

main "$@"
