# shellcheck shell=bash
# Stack service "postgres": the system PostgreSQL 15 cluster on 127.0.0.1:$MBT_PG_PORT, provisioned
# with infra/postgres/init.sql (databases, users, tables) and seeded by infra/postgres/seed.py.
# `down` never stops it: it is the system server, shared with everything else on the machine.

svc_postgres_url() { echo "postgresql://127.0.0.1:$MBT_PG_PORT"; }

svc_postgres_health() { pg_isready -q -h 127.0.0.1 -p "$MBT_PG_PORT" -t 2; }

svc_postgres_start() {
  command -v pg_ctlcluster >/dev/null 2>&1 \
    || die "postgres: not running on 127.0.0.1:$MBT_PG_PORT and pg_ctlcluster is missing (apt-get install postgresql-15)"
  if [ "$(id -u)" = 0 ]; then
    pg_ctlcluster 15 main start >> "$LOG_DIR/postgres.log" 2>&1 \
      || { echo "[stack] ERROR: postgres: pg_ctlcluster 15 main start failed; log: $LOG_DIR/postgres.log and /var/log/postgresql/postgresql-15-main.log" >&2
           log_tail postgres; exit 1; }
  else
    sudo -n pg_ctlcluster 15 main start >> "$LOG_DIR/postgres.log" 2>&1 \
      || die "postgres: cannot start the system cluster without root (sudo pg_ctlcluster 15 main start)"
  fi
}

svc_postgres_timeout() { echo 30; }

# pg_seeded: both seed tables hold rows (as mbt_user; fast check so a no-op `up` stays cheap)
pg_seeded() {
  [ "$(PGPASSWORD="$MBT_PG_PASSWORD" psql -X -tA -h 127.0.0.1 -p "$MBT_PG_PORT" -U "$MBT_PG_USER" \
        -d "$MBT_PG_DATABASE" -c "SELECT EXISTS (SELECT 1 FROM customers) AND EXISTS (SELECT 1 FROM customers_to_score)" \
        2>/dev/null)" = t ]
}

# Runs on every `up` (idempotent): schema, users, tables; seed rows when the tables are empty.
# mlflow_db and airflow_db point into this stack (artifact URIs into .stack/s3, runs of manifests in
# .stack/s3, values under the Fernet key in .stack/airflow): a copy made by another stack is
# dropped before init.sql recreates it empty (see pg_drop_foreign_db in lib.sh).
svc_postgres_provision() {
  local db
  for db in mlflow_db airflow_db; do pg_drop_foreign_db "$db"; done
  pg_admin_psql -d postgres < "$ROOT/infra/postgres/init.sql" >> "$LOG_DIR/postgres.log" 2>&1 \
    || { echo "[stack] ERROR: postgres: applying infra/postgres/init.sql failed; log: $LOG_DIR/postgres.log" >&2
         log_tail postgres; exit 1; }
  for db in mlflow_db airflow_db; do pg_claim_db "$db"; done
  pg_seeded && return 0
  "$(project_python)" "$ROOT/infra/postgres/seed.py" 2>> "$LOG_DIR/postgres.log" \
    || { echo "[stack] ERROR: postgres: seeding failed; log: $LOG_DIR/postgres.log" >&2
         log_tail postgres; exit 1; }
}

svc_postgres_stop() { say "postgres: system server left running (stack.sh never stops it)"; }
