#!/usr/bin/env bash
# Data-parallel training on one machine: cgcn-train alone and under `mpirun -n N` (N in RANKS),
# the same shards and model, and what rank 0's metrics say per optimizer step: the gradient
# allreduce's calls, bytes and seconds, and the training step's compute time. Also the whole
# epoch and the (split) evaluation. On a 2-core machine N ranks share the cores, so this measures
# the allreduce and the equivalence, not a speed-up.
#
#   bench/mpi_scaling.sh SHARDS "TRAIN FLAGS" [RANKS]      e.g.
#   bench/mpi_scaling.sh /work/bench-data/200k-shards "-q 10 --layers 2 --hidden 128 --epochs 3" "2 3"
#
# Prints one JSON line per configuration (also appended to $OUT, default build/mpi_scaling.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=$1
FLAGS=$2
RANKS=${3:-"2 3"}
BIN=${BIN:-build/bin}
OUT=${OUT:-build/mpi_scaling.jsonl}
WORK=${WORK:-$(mktemp -d /tmp/cgcn-mpi-XXXXXX)}
mkdir -p "$WORK"
summarize() {  # summarize LABEL RANKS METRICS SUMMARY_LINE
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
label, ranks, metrics, summary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ep = [json.loads(l) for l in open(metrics) if '"step"' not in l]
st = [json.loads(l) for l in open(metrics) if '"step"' in l]
s = json.loads(summary)
steps = len(st)
row = {
    "config": label, "ranks": ranks, "epochs": len(ep), "steps": steps,
    "rank0_batches": sum(e["batches"] for e in ep),
    "rank0_compute_s_per_batch": sum(e["compute_s"] for e in ep) / max(1, sum(e["batches"] for e in ep)),
    "epoch_s_mean": sum(e["epoch_s"] for e in ep) / len(ep),
    "allreduce_calls_per_step": sum(e.get("allreduce_calls", 0) for e in ep) / max(1, steps),
    "allreduce_bytes_per_step": sum(e.get("allreduce_bytes", 0) for e in ep) / max(1, steps),
    "allreduce_ms_per_step": 1e3 * sum(e.get("allreduce_s", 0) for e in ep) / max(1, steps),
    "eval_s": s.get("eval_s"), "test_acc": s.get("test_acc"), "final_loss": ep[-1]["loss"],
    "rank0_peak_rss_mb": max(e["peak_rss_mb"] for e in ep),
}
print(json.dumps(row))
PY
}
run() {  # run LABEL RANKS CMD...
  local label=$1 ranks=$2
  shift 2
  rm -f "$WORK/m.jsonl"
  echo "== $label: $* --metrics-out $WORK/m.jsonl --log-steps" >&2
  local line
  line=$("$@" --metrics-out "$WORK/m.jsonl" --log-steps --quiet | tail -n1)
  summarize "$label" "$ranks" "$WORK/m.jsonl" "$line" | tee -a "$OUT"
}
# shellcheck disable=SC2086
run "1 process, 2 threads" 1 "$BIN/cgcn-train" --shards "$SHARDS" $FLAGS --eval-every 0 --threads 2
for n in $RANKS; do
  # shellcheck disable=SC2086
  run "1 process, 1 thread, --accumulate $n" 1 "$BIN/cgcn-train" --shards "$SHARDS" $FLAGS --eval-every 0 --threads 1 \
    --accumulate "$n"
  # shellcheck disable=SC2086
  run "mpirun -n $n, 1 thread each" "$n" mpirun --oversubscribe --allow-run-as-root -n "$n" "$BIN/cgcn-train" \
    --shards "$SHARDS" $FLAGS --eval-every 0 --threads 1
done
