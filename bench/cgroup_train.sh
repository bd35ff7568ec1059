#!/usr/bin/env bash
# Trains inside a cgroup v1 memory cgroup whose limit is well below the shard directory's size,
# with cgcn-train --mem-budget, and reports what the kernel saw. A benchmark, not a test: it needs
# root, /sys/fs/cgroup/memory (cgroup v1) and drops the page cache.
#
#   bench/cgroup_train.sh SHARD_DIR LIMIT BUDGET [cgcn-train flags...]
#   bench/cgroup_train.sh /data/c/1m 448M 400M --layers 3 --hidden 256 -q 20 --feature-norm none --epochs 1
#
# SHARD_DIR that does not exist is created first: cgcn-synth (SYNTH_NODES, default 1000000) into
# SHARD_DIR.raw, then cgcn-preprocess (PARTS, default 500). Environment: BIN (default build/bin),
# SPILL_DIR (--tmp-dir; default /var/tmp: it must be on disk, a tmpfs would be charged to the cgroup).
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,13p' "$0"; exit 2; fi
SHARDS=$1 LIMIT=$2 BUDGET=$3
shift 3
BIN=${BIN:-build/bin}
SPILL_DIR=${SPILL_DIR:-/var/tmp}
run() { echo "+ $*"; "$@"; }
bytes() { numfmt --from=iec "${1%iB}" 2>/dev/null || numfmt --from=iec "${1%B}"; }
mib() { echo "$(( $1 / 1048576 )) MiB"; }

if [ ! -e "$SHARDS/MANIFEST" ]; then
  run "$BIN/cgcn-synth" --nodes "${SYNTH_NODES:-1000000}" --avg-degree 25 --features 100 --classes 47 \
    --out "$SHARDS.raw" --plain
  run "$BIN/cgcn-preprocess" --input "$SHARDS.raw" --out "$SHARDS" --parts "${PARTS:-500}" --quiet
fi
limit_bytes=$(bytes "$LIMIT")
shard_bytes=$(du -sb "$SHARDS" | cut -f1)
echo "shard directory $SHARDS: $shard_bytes bytes ($(mib "$shard_bytes")); cgroup limit $limit_bytes bytes ($(mib "$limit_bytes")), $(awk "BEGIN{printf \"%.2f\", $limit_bytes/$shard_bytes}") x the shards"

exec "$(dirname "$0")/in_cgroup.sh" "$LIMIT" "$BIN/cgcn-train" --shards "$SHARDS" --mem-budget "$BUDGET" \
  --tmp-dir "$SPILL_DIR" "$@"
