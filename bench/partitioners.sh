#!/usr/bin/env bash
# METIS against the out-of-core partitioner (cgcn-preprocess --partitioner metis|external) on the
# same graph: edge cut, largest part / mean, preprocess seconds, peak RSS, and the test accuracy of
# the same training on each shard directory (mean over SEEDS training seeds).
#
#   bench/partitioners.sh [amazon-computers|1m|products ...]     # default: all three
#
# Environment: BENCH_DIR (default /tmp/cgcn-bench) holds the synthetic raw graphs (made by
# cgcn-synth if missing, shared with the other bench scripts) and the shard directories; DATA
# (default ../shared/data) holds amazon-computers; SEEDS (default "0 1 2"); BUDGET (default 1G,
# the --mem-budget of both preprocessing and training). Prints one markdown table row per graph
# and partitioner, and the JSON lines behind them into $BENCH_DIR/partitioners.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/cgcn-bench}
DATA=${DATA:-../shared/data}
SEEDS=${SEEDS:-0 1 2}
BUDGET=${BUDGET:-1G}
GRAPHS=${*:-amazon-computers 1m products}
BIN=build/bin
mkdir -p "$BENCH_DIR"
[ -x $BIN/cgcn-preprocess ] || scripts/build.sh
run() { echo "+ $*" >&2; "$@"; }
JSONL=$BENCH_DIR/partitioners.jsonl
: > "$JSONL"
echo "| graph | partitioner | edge cut | largest / mean | preprocess s | peak RSS MiB | test accuracy (seeds $SEEDS) |"
echo "|---|---|---|---|---|---|---|"
for g in $GRAPHS; do
  case "$g" in
    amazon-computers) RAW=$DATA/amazon-computers P=32 TRAIN="--epochs 200 -q 4 --layers 2 --hidden 128 --eval-every 0" ;;
    1m) RAW=$BENCH_DIR/1m-raw P=612 TRAIN="--epochs 1 -q 20 --layers 3 --hidden 256 --feature-norm none --eval-every 0"
      [ -d "$RAW" ] || run $BIN/cgcn-synth --nodes 1000000 --avg-degree 50.6 --features 100 --classes 47 --out "$RAW" --plain --quiet >/dev/null ;;
    products) RAW=$BENCH_DIR/products-raw P=1500 TRAIN="--epochs 1 -q 20 --layers 3 --hidden 256 --feature-norm none --eval-every 0"
      [ -d "$RAW" ] || run $BIN/cgcn-synth --nodes 2450000 --avg-degree 50.6 --features 100 --classes 47 --out "$RAW" --plain --quiet >/dev/null ;;
    *) echo "unknown graph $g (amazon-computers, 1m, products)" >&2; exit 2 ;;
  esac
  for part in metis external; do
    OUT=$BENCH_DIR/$g-$part-shards
    pre=$(run $BIN/cgcn-preprocess --input "$RAW" --out "$OUT" --overwrite --parts $P --partitioner $part --quiet | tail -1)
    echo "{\"graph\":\"$g\",\"preprocess\":$pre}" >> "$JSONL"
    accs=""
    for s in $SEEDS; do
      # shellcheck disable=SC2086
      tr=$(run $BIN/cgcn-train --shards "$OUT" --seed "$s" --mem-budget "$BUDGET" $TRAIN --quiet | tail -1)
      echo "{\"graph\":\"$g\",\"partitioner\":\"$part\",\"seed\":$s,\"train\":$tr}" >> "$JSONL"
      accs="$accs $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["test_acc"])' "$tr")"
    done
    python3 - "$g" "$part" "$pre" $accs <<'PY'
import json, statistics, sys
g, part, pre = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
accs = [float(a) for a in sys.argv[4:]]
print(f"| {g} | {pre['partitioner']} | {pre['edge_cut']:,} ({100 * pre['edge_cut'] / pre['edges']:.1f}%) | "
      f"{pre['balance']:.3f} | {pre['total_s']:.1f} | {pre['peak_rss_mb']:.0f} | "
      f"{statistics.mean(accs):.4f} ({', '.join(f'{a:.4f}' for a in accs)}) |")
PY
  done
done
