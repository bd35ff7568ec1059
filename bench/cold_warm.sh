#!/usr/bin/env bash
# Epoch time with a warm page cache against a cold one (sync; echo 3 > /proc/sys/vm/drop_caches),
# with the training stage's wait / decode / assemble / compute split from --metrics-out.
# A benchmark, not a test: needs root, drops the page cache.
#
#   bench/cold_warm.sh SHARD_DIR [WARM_EPOCHS] [cgcn-train flags...]
#   bench/cold_warm.sh /data/c/1m 3 --layers 3 --hidden 256 -q 20 --feature-norm none
#
# Warm: the shard files are read once (cat > /dev/null), then WARM_EPOCHS (default 3) epochs.
# Cold: the page cache is dropped, then one epoch. Each run also ends with the usual full-graph
# evaluation, which is not part of epoch_s. Environment: BIN (default build/bin).
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,11p' "$0"; exit 2; fi
SHARDS=$1
WARM_EPOCHS=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
BIN=${BIN:-build/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { echo "+ $*"; "$@"; }

echo "+ cat $SHARDS/* > /dev/null"
cat "$SHARDS"/* > /dev/null
run "$BIN/cgcn-train" --shards "$SHARDS" --epochs "$WARM_EPOCHS" --quiet --metrics-out "$tmp/warm.jsonl" "$@" | tail -1
echo "+ sync; echo 3 > /proc/sys/vm/drop_caches"
sync; echo 3 > /proc/sys/vm/drop_caches
run "$BIN/cgcn-train" --shards "$SHARDS" --epochs 1 --quiet --metrics-out "$tmp/cold.jsonl" "$@" | tail -1

python3 - "$tmp/warm.jsonl" "$tmp/cold.jsonl" <<'PY'
import json, sys
warm = [json.loads(l) for l in open(sys.argv[1]) if '"epoch_s"' in l]
cold = [json.loads(l) for l in open(sys.argv[2]) if '"epoch_s"' in l]
cols = ["epoch_s", "input_wait_s", "decode_s", "decode_cpu_s", "assemble_s", "compute_s"]
print("\n%-14s %5s " % ("run", "epoch") + " ".join("%13s" % c for c in cols) + " %14s" % "decode GB/s/core")
for name, recs in (("warm", warm), ("cold", cold)):
    for r in recs:
        print("%-14s %5d " % (name, r["epoch"]) + " ".join("%13.3f" % r[c] for c in cols) + " %14.3f" % r["decode_gb_per_core_s"])
w1 = warm[0]["epoch_s"]
wmean = sum(r["epoch_s"] for r in warm) / len(warm)
c = cold[0]["epoch_s"]
print("\ncold / warm epoch time: %.3f (against warm epoch 1, the same point in a run), %.3f (against the mean of %d warm epochs)"
      % (c / w1, c / wmean, len(warm)))
PY
