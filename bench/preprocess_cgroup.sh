#!/usr/bin/env bash
# Preprocessing a graph larger than its memory: the products-sized graph with --mem-budget 1G
# inside a 1.5 GiB memory cgroup that charges page cache (bench/in_cgroup.sh), first with the
# default partitioner (auto, which must choose external), then the METIS path twice: with the same
# budget (refused before METIS runs, naming what it would need) and without a budget
# (METIS's workspace meets the cgroup's limit). Needs root and cgroup v1.
#
#   bench/preprocess_cgroup.sh [products|1m] [LIMIT] [BUDGET]      # defaults: products 1.5G 1G
#
# Environment: BENCH_DIR (default /tmp/cgcn-bench) holds the raw graph (made by cgcn-synth if
# missing, shared with the other bench scripts) and the output directories.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-products} LIMIT=${2:-1.5G} BUDGET=${3:-1G}
BENCH_DIR=${BENCH_DIR:-/tmp/cgcn-bench}
case "$WHICH" in
  1m) NODES=1000000 P=612 ;;
  products) NODES=2450000 P=1500 ;;
  *) echo "usage: $0 [products|1m] [LIMIT] [BUDGET]" >&2; exit 2 ;;
esac
BIN=build/bin
RAW=$BENCH_DIR/$WHICH-raw
mkdir -p "$BENCH_DIR"
[ -x $BIN/cgcn-preprocess ] || scripts/build.sh
[ -d "$RAW" ] || { echo "+ cgcn-synth $WHICH"; $BIN/cgcn-synth --nodes $NODES --avg-degree 50.6 --features 100 --classes 47 \
  --out "$RAW" --plain --quiet; }
echo "raw input $RAW: $(du -sb "$RAW" | cut -f1) bytes; cgroup limit $LIMIT; --mem-budget $BUDGET"
status=0
echo; echo "=== 1. default partitioner (auto), --mem-budget $BUDGET"
bench/in_cgroup.sh "$LIMIT" $BIN/cgcn-preprocess --input "$RAW" --out "$BENCH_DIR/$WHICH-cgroup-shards" --overwrite \
  --parts $P --mem-budget "$BUDGET" || status=$?
echo; echo "=== 2. --partitioner metis, --mem-budget $BUDGET (expected: refused once the CSR gives the edge count, before METIS runs)"
bench/in_cgroup.sh "$LIMIT" $BIN/cgcn-preprocess --input "$RAW" --out "$BENCH_DIR/$WHICH-cgroup-metis-shards" \
  --overwrite --parts $P --mem-budget "$BUDGET" --partitioner metis || echo "(exit status $?, as expected)"
echo; echo "=== 3. --partitioner metis without a budget (expected: fails inside the cgroup)"
bench/in_cgroup.sh "$LIMIT" $BIN/cgcn-preprocess --input "$RAW" --out "$BENCH_DIR/$WHICH-cgroup-metis-shards" \
  --overwrite --parts $P --partitioner metis || echo "(exit status $?, as expected)"
[ -e "$BENCH_DIR/$WHICH-cgroup-metis-shards" ] && echo "unexpected: $BENCH_DIR/$WHICH-cgroup-metis-shards exists" && status=1
echo; echo "=== verify the shards of run 1"
$BIN/cgcn-dump --verify "$BENCH_DIR/$WHICH-cgroup-shards" | tail -1
exit $status
