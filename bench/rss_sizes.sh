#!/usr/bin/env bash
# Peak RSS of cgcn-train (one epoch of training plus full-graph evaluation) at three graph sizes
# with the same model and the same batch size, under the same --mem-budget: it must stay flat
# while the graph grows ten-fold.
#
#   bench/rss_sizes.sh [BUDGET]       # default BUDGET 1G
#
# Graphs (cgcn-synth, 100 features, 47 classes, average degree 50.6 as ogbn-products):
# 250,000, 1,000,000 and 2,450,000 nodes; P = N / 1633 clusters (about 1633 nodes per cluster,
# as products with P = 1500), q = 20, 3 x 256 GCN, 1 epoch, --feature-norm none.
# Environment: BENCH_DIR (default /tmp/cgcn-bench) holds graphs, shards and logs; the products-sized
# graph is shared with bench/epoch_vs_reference.sh products. Prints one line per size.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-1G}
BENCH_DIR=${BENCH_DIR:-/tmp/cgcn-bench}
mkdir -p "$BENCH_DIR"
[ -x build/bin/cgcn-train ] || scripts/build.sh
run() { echo "+ $*"; "$@"; }
summary=()
for spec in 250k:250000:153 1m:1000000:612 products:2450000:1500; do
  IFS=: read -r name nodes parts <<<"$spec"
  raw=$BENCH_DIR/$name-raw
  shards=$BENCH_DIR/$name-shards
  [ -d "$raw" ] || run build/bin/cgcn-synth --nodes "$nodes" --avg-degree 50.6 --features 100 --classes 47 \
    --out "$raw" --plain --quiet
  [ -d "$shards" ] || run build/bin/cgcn-preprocess --input "$raw" --out "$shards" --parts "$parts" --quiet
  log=$BENCH_DIR/$name-rss.log
  run /usr/bin/time -v build/bin/cgcn-train --shards "$shards" -q 20 --layers 3 --hidden 256 --epochs 1 \
    --feature-norm none --weight-decay 0 --mem-budget "$BUDGET" --tmp-dir "$BENCH_DIR" --quiet \
    --metrics-out "$BENCH_DIR/$name-rss.jsonl" >"$log" 2>&1 ||
    { cat "$log"; exit 1; }
  rss_kb=$(sed -nE 's/^\s*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "$log")
  shard_mb=$(du -sm "$shards" | cut -f1)
  json=$(grep '^{' "$log" | tail -n1)
  read -r acc epoch train_rss planned_train planned_eval spilled < <(/usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
e = [json.loads(l) for l in open(sys.argv[2]) if "\"epoch_s\"" in l][-1]
print("%.4f %.2f %.0f %.0f %.0f %s" % (j["test_acc"], j["mean_epoch_s"], e["train_peak_rss_mb"], j["planned_train_mb"],
                                     j["planned_eval_mb"], "spilled" if j["eval_spilled"] else "in-memory"))' \
    "$json" "$BENCH_DIR/$name-rss.jsonl")
  line=$(printf '%-9s %9s nodes  shards %5s MiB  peak RSS: training %4s MiB (planned %s), whole run %4.0f MiB (evaluation %s, planned %s)  test acc %s, epoch %s s' \
    "$name" "$nodes" "$shard_mb" "$train_rss" "$planned_train" "$(echo "$rss_kb / 1024" | bc -l)" "$spilled" "$planned_eval" \
    "$acc" "$epoch")
  echo "$line"
  summary+=("$line")
done
echo "== budget $BUDGET, 3 x 256, q = 20"
printf '%s\n' "${summary[@]}"
