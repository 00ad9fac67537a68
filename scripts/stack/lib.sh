# shellcheck shell=bash
# Shared helpers of scripts/stack.sh: process spawning with pid files, health waiting with
# timeouts, private tool venvs. Sourced, never executed. Expects ROOT, STACK_DIR, LOG_DIR,
# PID_DIR to be set by scripts/stack.sh.

say() { echo "[stack] $*"; }
die() { echo "[stack] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# log_tail NAME [N]: the last N lines of .stack/logs/NAME.log, indented (for failure messages)
log_tail() {
  local f="$LOG_DIR/$1.log"
  [ -f "$f" ] && tail -n "${2:-25}" "$f" | sed 's/^/    | /' >&2 || true
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# http_get URL: body of a GET (2 s timeout); fails on HTTP errors
http_get() { curl -sf --max-time 2 "$1"; }

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# stack_spawn NAME CMD...: start CMD detached (own session, stdin /dev/null), output appended to
# .stack/logs/NAME.log, pid in .stack/pids/NAME.pid. Survives the caller (pytest, a shell).
stack_spawn() {
  local name=$1; shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  echo "=== $(date -u +%FT%TZ) starting $name" >> "$LOG_DIR/$name.log"
  setsid "$@" >> "$LOG_DIR/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$PID_DIR/$name.pid"
}

# stack_kill NAME [TIMEOUT]: SIGTERM the process group we started, wait for exit, SIGKILL late.
stack_kill() {
  local name=$1 limit=${2:-30} pid i
  pid=$(pid_of "$name")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$PID_DIR/$name.pid"; return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not exit within ${limit}s after SIGTERM; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$PID_DIR/$name.pid"
}

# wait_healthy SVC TIMEOUT [PROC]: poll svc_SVC_health every 0.5 s. Fails early when PROC (the
# spawned process, default SVC) died, and always names the service and its log file.
wait_healthy() {
  local svc=$1 limit=$2 proc=${3:-$1} start
  start=$(now)
  while true; do
    if "svc_${svc}_health"; then return 0; fi
    if [ -f "$PID_DIR/$proc.pid" ] && ! alive "$proc"; then
      echo "[stack] ERROR: $svc exited during startup; log: $LOG_DIR/$proc.log" >&2
      log_tail "$proc"; exit 1
    fi
    if awk -v a="$start" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "[stack] ERROR: $svc not healthy within ${limit}s ($("svc_${svc}_url")); log: $LOG_DIR/$proc.log" >&2
      log_tail "$proc"; exit 1
    fi
    sleep 0.5
  done
}

# ensure_uv: uv installs the tool venvs (scripts/bootstrap.sh installs it the same way)
ensure_uv() {
  command -v uv >/dev/null 2>&1 && return 0
  say "installing uv with pip"
  python3 -m pip install -q uv || die "cannot install uv (needed for the tool venvs)"
}

# ensure_tool_venv NAME REQ...: .stack/venvs/NAME with exactly REQ installed (stamp-checked)
ensure_tool_venv() {
  local name=$1; shift
  local dir="$STACK_DIR/venvs/$name" want="$*"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.mbt-reqs" 2>/dev/null)" = "$want" ] \
     && [ "$(cat "$dir/.mbt-bytecode" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  ensure_uv
  say "installing $name tools into $dir: $want"
  local t0; t0=$(now)
  [ -x "$dir/bin/python" ] || uv venv -q -p python3.11 "$dir" 2>/dev/null || uv venv -q "$dir"
  VIRTUAL_ENV="$dir" uv pip install -q "$@" >> "$LOG_DIR/install-$name.log" 2>&1 \
    || { echo "[stack] ERROR: installing $want failed; log: $LOG_DIR/install-$name.log" >&2
         log_tail "install-$name"; exit 1; }
  echo "$want" > "$dir/.mbt-reqs"
  # bytecode once (PYTHONDONTWRITEBYTECODE=1 would make every start compile the packages again;
  # see scripts/bootstrap.sh)
  "$dir/bin/python" -m compileall -q -j 0 "$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    >> "$LOG_DIR/install-$name.log" 2>&1 || true
  echo "$want" > "$dir/.mbt-bytecode"
  say "installed $name tools in $(elapsed "$t0")s"
}

# locked_version PKG: the version pinned in requirements/lock.txt (so servers match the clients)
locked_version() {
  grep -iE "^$1==" "$ROOT/requirements/lock.txt" | head -n1 | cut -d= -f3
}

# project_python: the project venv (created by scripts/bootstrap.sh when missing)
project_python() {
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    say "project venv missing; running scripts/bootstrap.sh" >&2
    bash "$ROOT/scripts/bootstrap.sh" >&2
  fi
  echo "$ROOT/.venv/bin/python"
}

# psql as the superuser over the unix socket (peer auth as the postgres OS user, trust otherwise)
pg_admin_psql() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "${MBT_PG_PORT:-5432}" "$@"
  else
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${MBT_PG_PORT:-5432}" -U postgres "$@"
  fi
}

# stack_id: this stack's identity, made once in $STACK_DIR/stack-id. The PostgreSQL server outlives
# a stack (a fresh clone, a deleted .stack, CI on a machine a session left running), while the
# databases that point INTO the stack must not: MLflow's runs name artifacts in .stack/s3, Airflow's
# runs belong to manifests in .stack/s3 and its secrets are encrypted with the key in .stack/airflow.
# Such a database carries "mbt-stack:<id>" as its comment (pg_claim_db).
stack_id() {
  local f="$STACK_DIR/stack-id"
  [ -s "$f" ] || { mkdir -p "$STACK_DIR"; cat /proc/sys/kernel/random/uuid > "$f"; }
  cat "$f"
}

pg_db_exists() { [ "$(pg_admin_psql -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }

# pg_drop_foreign_db DB: drop DB when it exists but was made by another stack (other or no comment):
# its pointers lead to data this stack does not have. Never touches a database of this stack.
pg_drop_foreign_db() {
  local db=$1 want have
  want="mbt-stack:$(stack_id)"
  pg_db_exists "$db" || return 0
  have=$(pg_admin_psql -tA -d postgres -c "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = '$db'")
  [ "$have" = "$want" ] && return 0
  say "$db was made by another stack (${have:-no stack id}, this is $want in $STACK_DIR): dropping it, it is recreated empty"
  pg_admin_psql -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" || die "cannot drop database $db"
}

# pg_claim_db DB: mark DB as this stack's
pg_claim_db() { pg_admin_psql -d postgres -c "COMMENT ON DATABASE \"$1\" IS 'mbt-stack:$(stack_id)'"; }
