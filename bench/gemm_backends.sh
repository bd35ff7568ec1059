#!/usr/bin/env bash
# cgcn-train on the same shards with each dense-product variant, alternated ROUNDS times (this
# VM's speed drifts by 10-20% over minutes; alternating exposes every variant to the same drift).
#
#   bench/gemm_backends.sh SHARDS [TRAIN FLAGS...]
#   ROUNDS=5 bench/gemm_backends.sh /data/bench/200k-shards -q 10 --layers 2 --hidden 128 --epochs 3
#   VARIANTS="onednn bf16" bench/gemm_backends.sh /data/bench/200k-shards ...
#
# VARIANTS (default "eigen onednn"): eigen = --gemm eigen, onednn = --gemm onednn (f32),
# bf16 = --gemm onednn --compute bf16 (CPUs with AVX512_BF16 only).
# Prints, per round and variant, the mean training epoch, its compute part (the trainer's
# forward, backward and Adam), the evaluations' time and the test accuracy (from the JSON
# summary), then the medians and each variant's median against the first variant's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 SHARDS [TRAIN FLAGS...]" >&2; exit 2; }
SHARDS=$1
shift
ROUNDS=${ROUNDS:-3}
BIN=${BIN:-build/bin}
VARIANTS=${VARIANTS:-eigen onednn}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
flags_of() {
  case $1 in
    eigen) echo "--gemm eigen" ;;
    onednn) echo "--gemm onednn --compute f32" ;;
    bf16) echo "--gemm onednn --compute bf16" ;;
    *) echo "unknown variant '$1' (eigen, onednn or bf16)" >&2; exit 2 ;;
  esac
}
for v in $VARIANTS; do flags_of "$v" >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for v in $VARIANTS; do
    # shellcheck disable=SC2046
    "$BIN/cgcn-train" --shards "$SHARDS" $(flags_of "$v") --quiet --feature-norm none "$@" | tail -n1 >>"$OUT/$v.jsonl"
    python3 -c 'import json, sys
s = json.loads(open(sys.argv[1]).readlines()[-1])
print("round %s %-7s epoch %.3f s  compute (all epochs) %.3f s  eval %.3f s  test %.4f" % (
    sys.argv[2], sys.argv[3], s["mean_epoch_s"], s["compute_s"], s["eval_s"], s["test_acc"]))' \
      "$OUT/$v.jsonl" "$r" "$v"
  done
done
python3 - "$OUT" $VARIANTS <<'PY'
import json, statistics as st, sys
out, variants = sys.argv[1], sys.argv[2:]
med = {}
for v in variants:
    rows = [json.loads(l) for l in open(f"{out}/{v}.jsonl")]
    med[v] = {k: st.median(r[k] for r in rows) for k in ("mean_epoch_s", "compute_s", "eval_s", "test_acc")}
    print(f"median {v:7s} epoch {med[v]['mean_epoch_s']:.3f} s  compute {med[v]['compute_s']:.3f} s  "
          f"eval {med[v]['eval_s']:.3f} s  test {med[v]['test_acc']:.4f}")
base = variants[0]
for v in variants[1:]:
    for k in ("mean_epoch_s", "compute_s", "eval_s"):
        print(f"{v}/{base} {k}: {med[v][k] / med[base][k]:.3f}x")
PY
