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
# Prints one line per round and the ratio of the median mean-epoch times:
#   ROUNDS=5 bench/epoch_vs_reference.sh 200k   # alternate the two programs 5 times
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

# ROUNDS (default 1) alternates the two programs that many times and compares medians: on a
# shared VM the speed of the machine drifts by 10-20% over minutes, and alternating exposes both
# programs to the same drift.
ROUNDS=${ROUNDS:-1}
if [ "${SKIP_REFERENCE:-0}" != 1 ] && { ! /usr/bin/python3 -c 'import torch, scipy' 2>/dev/null || ! command -v gpmetis >/dev/null ||
   [ ! -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]; }; then
  run apt-get install -y python3-torch python3-scipy metis libopenblas0-openmp
fi
CGCN_RESULTS=() REF_RESULTS=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: cgcn-train"
  CGCN_LOG=$BENCH_DIR/$WHICH-cgcn-$r.log
  run build/bin/cgcn-train --shards "$SHARDS" -q $Q --layers $LAYERS --hidden $HIDDEN --epochs $EPOCHS \
    --lr $COMMON_LR --weight-decay $COMMON_WD --dropout $COMMON_DROPOUT --feature-norm none --eval-every 1000 \
    --metrics-out "$BENCH_DIR/$WHICH-cgcn-metrics-$r.jsonl" | tee "$CGCN_LOG"
  CGCN_RESULTS+=("$(tail -n1 "$CGCN_LOG")")
  [ "${SKIP_REFERENCE:-0}" = 1 ] && continue
  echo "== round $r: reference"
  REF_LOG=$BENCH_DIR/$WHICH-reference-$r.log
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp run /usr/bin/python3 "$REFERENCE" --data "$RAW" \
    --split random --parts $P --clusters-per-batch $Q --layers $LAYERS --hidden $HIDDEN --epochs $EPOCHS \
    --lr $COMMON_LR --weight-decay $COMMON_WD --dropout $COMMON_DROPOUT --threads "$(nproc)" --eval-every 1000 \
    --workdir "$BENCH_DIR" --part-cache "$BENCH_DIR/$WHICH-reference-part.npy" | tee "$REF_LOG"
  REF_RESULTS+=("$(grep '^RESULT ' "$REF_LOG" | tail -n1 | cut -c8-)")
done

if [ "${SKIP_REFERENCE:-0}" = 1 ]; then
  printf '%s\n' "${CGCN_RESULTS[@]}"
  exit 0
fi
/usr/bin/python3 - "$WHICH" "${#CGCN_RESULTS[@]}" "${CGCN_RESULTS[@]}" "${REF_RESULTS[@]}" <<'EOF'
import json, statistics, sys
which, n = sys.argv[1], int(sys.argv[2])
cs = [json.loads(a) for a in sys.argv[3:3 + n]]
rs = [json.loads(a) for a in sys.argv[3 + n:3 + 2 * n]]
for i, (c, r) in enumerate(zip(cs, rs), 1):
    print("round %d: cgcn mean epoch %.3f s (test %.4f, peak RSS %.0f MB) | reference %.3f s (test %.4f, peak RSS %.0f MB) | %.2fx"
          % (i, c["mean_epoch_s"], c["test_acc"], c["peak_rss_mb"], r["mean_epoch_s"], r["epochs_log"][-1]["test_acc"],
             r["peak_rss_mb"], r["mean_epoch_s"] / c["mean_epoch_s"]))
mc = statistics.median(c["mean_epoch_s"] for c in cs)
mr = statistics.median(r["mean_epoch_s"] for r in rs)
print("%s: median mean epoch over %d rounds: cgcn %.3f s, reference %.3f s | reference / cgcn = %.2fx"
      % (which, n, mc, mr, mr / mc))
EOF
