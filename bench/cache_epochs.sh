#!/usr/bin/env bash
# Whole cgcn-train runs alternated, ROUNDS rounds of four: f32 --cache 0, f32 --cache auto,
# bf16 --cache auto, bf16 --cache 0 (bf16 needs a CPU with AVX512_BF16), each with FLAGS; prints
# each run's first and later epochs, evaluation and peak RSS from the JSON summary, then the
# medians per variant. docs/BENCHMARKS.md, "Decoded clusters kept across epochs".
#   ROUNDS=4 bench/cache_epochs.sh SHARDS -q 10 --layers 2 --hidden 128 --epochs 3 --eval-every 0 \
#     --lr 0.01 --weight-decay 0 --dropout 0.5 --feature-norm none
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: [ROUNDS=N] $0 SHARDS [cgcn-train flags...]" >&2; exit 2; }
SHARDS=$1
shift
ROUNDS=${ROUNDS:-4}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for v in "f32 0" "f32 auto" "bf16 auto" "bf16 0"; do
    read -r c k <<<"$v"
    build/bin/cgcn-train --shards "$SHARDS" "$@" --compute "$c" --cache "$k" --quiet | tail -1 >"$OUT/$c.$k.$r.json"
  done
done
python3 - "$OUT" <<'PY'
import glob, json, statistics as st, sys
keys = ["mean_epoch_s", "first_epoch_s", "mean_later_epoch_s", "eval_s", "peak_rss_mb", "cache_mb", "test_acc"]
for c in ["f32", "bf16"]:
    for k in ["0", "auto"]:
        rs = [json.load(open(f)) for f in sorted(glob.glob(f"{sys.argv[1]}/{c}.{k}.*.json"))]
        for i, r in enumerate(rs):
            print(f"round {i + 1} {c:4s} --cache {k:4s}", " ".join(f"{m} {r[m]:.4g}" for m in keys))
        print(f"median   {c:4s} --cache {k:4s}", " ".join(f"{m} {st.median(r[m] for r in rs):.4g}" for m in keys))
PY
