# shellcheck shell=bash
# Stack service "h2o": one shared H2O server from the jar of the project venv's pinned h2o package
# (client and server versions must match), on 127.0.0.1:$MBT_H2O_PORT, cloud name mbt-shared.

svc_h2o_url() { echo "$MBT_H2O_URL"; }

# Healthy = a one-node cloud answering /3/Cloud with the pinned version.
svc_h2o_health() {
  local body; body=$(http_get "http://127.0.0.1:$MBT_H2O_PORT/3/Cloud") || return 1
  grep -q '"cloud_healthy": *true' <<< "$body" || return 1
  local ver; ver=$(locked_version h2o)
  if ! grep -q "\"version\": *\"$ver\"" <<< "$body"; then
    die "h2o: 127.0.0.1:$MBT_H2O_PORT runs another H2O version (want $ver); stop it first"
  fi
}

svc_h2o_timeout() { echo 60; }

svc_h2o_start() {
  local jar="$ROOT/.venv/lib/python3.11/site-packages/h2o/backend/bin/h2o.jar"
  [ -f "$jar" ] || { project_python >/dev/null; }
  [ -f "$jar" ] || die "h2o: server jar not found at $jar (is h2o installed in .venv?)"
  command -v java >/dev/null 2>&1 || die "h2o: java not found (apt-get install openjdk-17-jre-headless)"
  if port_open "$MBT_H2O_PORT"; then
    die "h2o: port $MBT_H2O_PORT is taken by a process that is not a healthy H2O cloud"
  fi
  mkdir -p "$STACK_DIR/h2o"
  stack_spawn h2o java "-Xmx$MBT_H2O_XMX" -jar "$jar" \
    -ip 127.0.0.1 -web_ip 127.0.0.1 -port "$MBT_H2O_PORT" -name mbt-shared \
    -log_dir "$STACK_DIR/h2o/logs" -ice_root "$STACK_DIR/h2o/ice" -log_level WARN
}

svc_h2o_stop() { stack_kill h2o 30; }
