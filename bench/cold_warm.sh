#!/usr/bin/env bash
# Epoch time with a cold page cache (sync; echo 3 > /proc/sys/vm/drop_caches) against a warm one,
# with the training stage's wait / decode / assemble / compute split and what each epoch read
# from disk. A benchmark, not a test: needs root, drops the page cache.
#
#   bench/cold_warm.sh SHARD_DIR [ROUNDS] [cgcn-cold-warm-bench flags...]
#   bench/cold_warm.sh /tmp/cgcn-bench/1m-shards 5 --layers 3 --hidden 256 -q 20 --feature-norm none
#
# Runs build/bin/cgcn-cold-warm-bench (bench/cold_warm_bench.cc): one process trains 1 + 2 x ROUNDS
# epochs with cgcn's trainer; after the warm-up epoch, each round is a warm epoch (every shard
# read beforehand) and a cold one (page cache dropped beforehand), warm-cold in odd rounds and
# cold-warm in even ones. The medians are compared. Separate processes per epoch were tried first
# (this script until 2026-11): a VM's speed changes by 10-20% from minute to minute and a fresh
# process's first epoch also pays for fresh memory, which buried the difference being measured.
# Environment: BIN (default build/bin).
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,17p' "$0"; exit 2; fi
SHARDS=$1
ROUNDS=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
BIN=${BIN:-build/bin}
echo "+ $BIN/cgcn-cold-warm-bench --shards $SHARDS --rounds $ROUNDS $*"
exec "$BIN/cgcn-cold-warm-bench" --shards "$SHARDS" --rounds "$ROUNDS" "$@"
