#!/usr/bin/env bash
# Epoch time and accuracy of cgcn-train against the plain-PyTorch Cluster-GCN reference
# (../shared/reference/torch_clustergcn.py: PyG ClusterLoader + GCNConv semantics) on the same
# synthetic graph with the same P, q, layers, hidden size, epochs, lr, weight decay and dropout.
#
#   bench/epoch_vs_reference.sh 200k        # 200,000 nodes, avg degree 20, 100 features, 20 classes;
#                                           #   P=200, q=10, 2 x 128, 3 epochs
#   bench/epoch_vs_reference.sh products    # 2.45 M nodes, 62 M edges, 100 features, 47 classes
#                                           #   (ogbn-products-sized); P=1500, q=20, 3 x 256, 1 epoch
#
# Environment: BENCH_DIR (default /tmp/cgcn-bench) holds the generated graph, the shards, the
# reference's cached partition and the logs; SKIP_REFERENCE=1 runs cgcn only.
# Needs python3-torch, python3-scipy, metis and libopenblas0-openmp (installed here if missing);
# the reference runs with OpenMP OpenBLAS, not Debian's default reference BLAS (20x slower).
# Run it on a quiet machine: both programs use every core, and timings are wall-clock.
# Prints one summary line per program and the ratio of mean epoch times.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHICH=${1:-200k}
BENCH_DIR=${BENCH_DIR:-/tmp/cgcn-bench}
REFERENCE=${REFERENCE:-$ROOT/../shared/reference/torch_clustergcn.py}
case "$WHICH" in
  200k) NODES=200000 DEG=20 CLASSES=20 P=200 Q=10 LAYERS=2 HIDDEN=128 EPOCHS=3 ;;
  products) NODES=2450000 DEG=50.6 CLASSES=47 P=1500 Q=20 LAYERS=3 HIDDEN=256 EPOCHS=1 ;;
  *) echo "usage: $0 200k|products" >&2; exit 2 ;;
esac
COMMON_LR=0.01 COMMON_WD=0 COMMON_DROPOUT=0.5
RAW=$BENCH_DIR/$WHICH-raw
SHARDS=$BENCH_DIR/$WHICH-shards
mkdir -p "$BENCH_DIR"
[ -x build/bin/cgcn-train ] || scripts/build.sh
run() { echo "+ $*"; "$@"; }

[ -d "$RAW" ] || run build/bin/cgcn-synth --nodes $NODES --avg-degree $DEG --features 100 --classes $CLASSES \
  --out "$RAW" --plain --quiet
[ -d "$SHARDS" ] || run build/bin/cgcn-preprocess --input "$RAW" --out "$SHARDS" --parts $P --quiet

echo "== cgcn-train"
CGCN_LOG=$BENCH_DIR/$WHICH-cgcn.log
run build/bin/cgcn-train --shards "$SHARDS" -q $Q --layers $LAYERS --hidden $HIDDEN --epochs $EPOCHS \
  --lr $COMMON_LR --weight-decay $COMMON_WD --dropout $COMMON_DROPOUT --feature-norm none --eval-every 1000 \
  --metrics-out "$BENCH_DIR/$WHICH-cgcn-metrics.jsonl" | tee "$CGCN_LOG"
cgcn_json=$(tail -n1 "$CGCN_LOG")

if [ "${SKIP_REFERENCE:-0}" = 1 ]; then
  echo "$cgcn_json"
  exit 0
fi
echo "== reference"
if ! /usr/bin/python3 -c 'import torch, scipy' 2>/dev/null || ! command -v gpmetis >/dev/null ||
   [ ! -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]; then
  run apt-get install -y python3-torch python3-scipy metis libopenblas0-openmp
fi
REF_LOG=$BENCH_DIR/$WHICH-reference.log
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp run /usr/bin/python3 "$REFERENCE" --data "$RAW" \
  --split random --parts $P --clusters-per-batch $Q --layers $LAYERS --hidden $HIDDEN --epochs $EPOCHS \
  --lr $COMMON_LR --weight-decay $COMMON_WD --dropout $COMMON_DROPOUT --threads "$(nproc)" --eval-every 1000 \
  --workdir "$BENCH_DIR" --part-cache "$BENCH_DIR/$WHICH-reference-part.npy" | tee "$REF_LOG"
ref_json=$(grep '^RESULT ' "$REF_LOG" | tail -n1 | cut -c8-)

/usr/bin/python3 - "$cgcn_json" "$ref_json" "$WHICH" <<'EOF'
import json, sys
c, r, which = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rt = r["epochs_log"][-1]["test_acc"]
print("%s: cgcn mean epoch %.3f s, test %.4f, peak RSS %.0f MB | reference mean epoch %.3f s, test %.4f, "
      "peak RSS %.0f MB | reference / cgcn = %.2fx"
      % (which, c["mean_epoch_s"], c["test_acc"], c["peak_rss_mb"], r["mean_epoch_s"], rt, r["peak_rss_mb"],
         r["mean_epoch_s"] / c["mean_epoch_s"]))
EOF
