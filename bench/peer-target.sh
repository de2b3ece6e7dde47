#!/usr/bin/env bash
# Karasu as a --target of the shared benches (peer-bench/peers.sh, cost-bench/run.sh):
#   --target 'karasu=bash bench/peer-target.sh,8090'   (run from the repository root, after `npm run build`)
# Writes a config from the environment those tools pass and execs `node bin/karasu.js serve`.
#   PORT, S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION  (required except AWS_REGION)
#   CACHE_BYTES   cost bench: memory-tier budget in bytes, held strictly (memory tier only)
#   unset (peer bench): 1024 MiB memory tier + a disk tier in a temp folder (for the 256 MiB object)
#   KARASU_CACHE_LAYERS  override the tier list, e.g. "memory" or "memory,disk"
# The route prefix is /$S3_BUCKET (the peer bench requests /bench/<key>, the cost bench /cost/<key>).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${PORT:?PORT is required}" "${S3_ENDPOINT:?S3_ENDPOINT is required}" "${S3_BUCKET:?S3_BUCKET is required}"
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is required}" "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is required}"
[ -f dist/cli.js ] || { echo "peer-target.sh: dist/ is missing; run npm run build first" >&2; exit 1; }

# One folder per port, emptied at start: the cache starts empty and old runs leave nothing behind but this.
RUN_DIR=${TMPDIR:-/tmp}/karasu-target-$PORT
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
if [ -n "${CACHE_BYTES:-}" ]; then
  # %.17g round-trips the double, and bytes/2^20 is exact: Karasu's MB × 1048576 gives CACHE_BYTES back exactly.
  MEM_MB=$(awk -v b="$CACHE_BYTES" 'BEGIN { printf "%.17g", b / 1048576 }')
  ITEM_MB=$(awk -v m="$MEM_MB" 'BEGIN { printf "%.17g", (m < 16 ? m : 16) }')
  LAYERS=${KARASU_CACHE_LAYERS:-memory}
else
  MEM_MB=1024; ITEM_MB=16
  LAYERS=${KARASU_CACHE_LAYERS:-memory,disk}
fi
DISK_ENABLED=false; [[ ",$LAYERS," == *,disk,* ]] && DISK_ENABLED=true

cat >"$RUN_DIR/karasu.yaml" <<YAML
# written by bench/peer-target.sh
server: { address: 127.0.0.1, port: ${PORT} }
buckets:
  - name: ${S3_BUCKET}
    path_prefix: /${S3_BUCKET}
    s3:
      bucket: ${S3_BUCKET}
      region: ${AWS_REGION:-us-east-1}
      endpoint: ${S3_ENDPOINT}
      access_key: ${AWS_ACCESS_KEY_ID}
      secret_key: ${AWS_SECRET_ACCESS_KEY}
cache:
  enabled: true
  cache_layers: [${LAYERS}]
  memory: { max_cache_size_mb: ${MEM_MB}, max_item_size_mb: ${ITEM_MB}, default_ttl_seconds: 3600 }
  disk: { enabled: ${DISK_ENABLED}, cache_dir: ${RUN_DIR}/disk, max_disk_cache_size_mb: 2048, max_item_size_mb: 1024 }
logging: { level: warn, format: json }
YAML
echo "peer-target.sh: config $RUN_DIR/karasu.yaml (layers: $LAYERS, memory ${MEM_MB} MB)" >&2
exec node bin/karasu.js serve -c "$RUN_DIR/karasu.yaml"
