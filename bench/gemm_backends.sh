#!/usr/bin/env bash
# cgcn-train with --gemm eigen against --gemm onednn on the same shards, alternated ROUNDS times
# (this VM's speed drifts by 10-20% over minutes; alternating exposes both to the same drift).
#
#   bench/gemm_backends.sh SHARDS [TRAIN FLAGS...]
#   ROUNDS=5 bench/gemm_backends.sh /data/bench/200k-shards -q 10 --layers 2 --hidden 128 --epochs 3
#
# Prints, per round and backend, the mean training epoch, its compute part (the trainer's
# forward, backward and Adam), the evaluations' time and the test accuracy (from the JSON
# summary), then the medians and the eigen/onednn ratio of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 SHARDS [TRAIN FLAGS...]" >&2; exit 2; }
SHARDS=$1
shift
ROUNDS=${ROUNDS:-3}
BIN=${BIN:-build/bin}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for g in eigen onednn; do
    "$BIN/cgcn-train" --shards "$SHARDS" --gemm $g --quiet --feature-norm none "$@" | tail -n1 >>"$OUT/$g.jsonl"
    python3 -c 'import json, sys
s = json.loads(open(sys.argv[1]).readlines()[-1])
print("round %s %-7s epoch %.3f s  compute (all epochs) %.3f s  eval %.3f s  test %.4f" % (
    sys.argv[2], s["gemm"], s["mean_epoch_s"], s["compute_s"], s["eval_s"], s["test_acc"]))' \
      "$OUT/$g.jsonl" "$r"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics as st, sys
med = {}
for g in ("eigen", "onednn"):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{g}.jsonl")]
    med[g] = {k: st.median(r[k] for r in rows) for k in ("mean_epoch_s", "compute_s", "eval_s")}
    print(f"median {g:7s} epoch {med[g]['mean_epoch_s']:.3f} s  compute {med[g]['compute_s']:.3f} s  eval {med[g]['eval_s']:.3f} s")
for k in ("mean_epoch_s", "compute_s", "eval_s"):
    print(f"eigen/onednn {k}: {med['eigen'][k] / med['onednn'][k]:.2f}x")
PY
