# shellcheck shell=bash
# Stack service "h2o": the shared H2O cloud from the jar of the project venv's pinned h2o package
# (client and server versions must match), cloud name mbt-shared, on 127.0.0.1.
#
#   MBT_H2O_NODES  number of JVMs (default 1, what CI uses). Node i listens on
#                  MBT_H2O_PORT + 2*i (H2O also takes port+1); all nodes share one -flatfile
#                  ($STACK_DIR/h2o/flatfile.txt) and one cloud name, so they form one cloud.
#   MBT_H2O_XMX    heap of EACH node (stack.env: 2g; 2 nodes = 4 GiB of the 24 GiB machine).
#   MBT_H2O_NTHREADS  threads per node (default: cores / nodes, at least 1, so N nodes do not
#                  oversubscribe the 2 cores).
# Node 0 is the process "h2o" (.stack/pids/h2o.pid, .stack/logs/h2o.log); node i > 0 is "h2o-node<i>".
# Healthy = /3/Cloud on node 0 answers with the pinned version, cloud_healthy and cloud_size = N.

svc_h2o_nodes() { echo "${MBT_H2O_NODES:-1}"; }
svc_h2o_node_port() { echo $((MBT_H2O_PORT + 2 * $1)); }
svc_h2o_node_name() { if [ "$1" -eq 0 ]; then echo h2o; else echo "h2o-node$1"; fi; }
svc_h2o_url() { echo "http://127.0.0.1:$MBT_H2O_PORT"; }

svc_h2o_cloud_size() {
  local body; body=$(http_get "http://127.0.0.1:$MBT_H2O_PORT/3/Cloud") || { echo 0; return 1; }
  sed -n 's/.*"cloud_size": *\([0-9]*\).*/\1/p' <<< "$body" | head -n1
}

svc_h2o_health() {
  local body n; body=$(http_get "http://127.0.0.1:$MBT_H2O_PORT/3/Cloud") || return 1
  grep -q '"cloud_healthy": *true' <<< "$body" || return 1
  local ver; ver=$(locked_version h2o)
  if ! grep -q "\"version\": *\"$ver\"" <<< "$body"; then
    die "h2o: 127.0.0.1:$MBT_H2O_PORT runs another H2O version (want $ver); stop it first"
  fi
  n=$(sed -n 's/.*"cloud_size": *\([0-9]*\).*/\1/p' <<< "$body" | head -n1)
  [ "${n:-0}" -eq "$(svc_h2o_nodes)" ]
}

# status detail: the cloud's size next to the wanted number of nodes
svc_h2o_detail() { echo "cloud_size=$(svc_h2o_cloud_size 2>/dev/null || echo 0)/$(svc_h2o_nodes)"; }

svc_h2o_timeout() { echo $((60 + 30 * ($(svc_h2o_nodes) - 1))); }

svc_h2o_start() {
  local jar="$ROOT/.venv/lib/python3.11/site-packages/h2o/backend/bin/h2o.jar"
  local nodes i port name threads flatfile="$STACK_DIR/h2o/flatfile.txt"
  nodes=$(svc_h2o_nodes)
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "h2o: MBT_H2O_NODES must be a positive integer, got '$nodes'"
  [ -f "$jar" ] || { project_python >/dev/null; }
  [ -f "$jar" ] || die "h2o: server jar not found at $jar (is h2o installed in .venv?)"
  command -v java >/dev/null 2>&1 || die "h2o: java not found (apt-get install openjdk-17-jre-headless)"
  threads=${MBT_H2O_NTHREADS:-$(( $(nproc) / nodes ))}
  [ "$threads" -ge 1 ] || threads=1
  mkdir -p "$STACK_DIR/h2o"
  : > "$flatfile"
  for ((i = 0; i < nodes; i++)); do
    port=$(svc_h2o_node_port "$i")
    if port_open "$port" || port_open $((port + 1)); then
      die "h2o: port $port or $((port + 1)) (node $i) is taken by a process that is not this H2O cloud"
    fi
    echo "127.0.0.1:$port" >> "$flatfile"
  done
  for ((i = 0; i < nodes; i++)); do
    port=$(svc_h2o_node_port "$i"); name=$(svc_h2o_node_name "$i")
    local args=(-ip 127.0.0.1 -web_ip 127.0.0.1 -port "$port" -name mbt-shared
                -log_dir "$STACK_DIR/h2o/logs/node$i" -ice_root "$STACK_DIR/h2o/ice/node$i" -log_level WARN)
    # always a flatfile: without one H2O finds its cloud by multicast, and a 1-node cloud of the
    # same name started elsewhere on this machine (a benchmark's, another stack's) would join it.
    # One node keeps all cores; several share them.
    args+=(-flatfile "$flatfile")
    [ "$nodes" -gt 1 ] && args+=(-nthreads "$threads")
    stack_spawn "$name" java "-Xmx$MBT_H2O_XMX" -jar "$jar" "${args[@]}"
  done
}

svc_h2o_stop() {
  local f name
  for f in "$PID_DIR"/h2o-node*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    stack_kill "$name" 30
  done
  stack_kill h2o 30
}
