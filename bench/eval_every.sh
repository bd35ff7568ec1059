#!/usr/bin/env bash
# The cost of evaluating during training: whole cgcn-train runs with FLAGS (which should include
# --eval-every 1 and a few --epochs), alternated between the builds named in BINS (directories
# holding cgcn-train; default build/bin), ROUNDS rounds. From each run's --metrics-out records it
# prints the first evaluation, the later evaluations (median), the epochs after the first
# (median; each follows an evaluation) and their ratio, the later evaluations' phases (pass 0,
# then each layer's neighbour sums and finish), then the medians per build over the rounds. docs/BENCHMARKS.md, "Evaluations that keep their memory".
#   ROUNDS=3 BINS="/work/old/build/bin build/bin" bench/eval_every.sh SHARDS -q 10 --layers 2 \
#     --hidden 128 --epochs 6 --eval-every 1 --patience 0 --lr 0.01 --weight-decay 0 --dropout 0.5 \
#     --feature-norm none
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: [ROUNDS=N] [BINS='DIR ...'] $0 SHARDS [cgcn-train flags...]" >&2; exit 2; }
SHARDS=$1
shift
ROUNDS=${ROUNDS:-3}
read -r -a BINS <<<"${BINS:-build/bin}"
for b in "${BINS[@]}"; do
  [ -x "$b/cgcn-train" ] || { echo "$0: no cgcn-train in $b" >&2; exit 2; }
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for i in "${!BINS[@]}"; do
    "${BINS[$i]}/cgcn-train" --shards "$SHARDS" "$@" --metrics-out "$OUT/$i.$r.jsonl" --quiet | tail -1 >"$OUT/$i.$r.json"
  done
done
python3 - "$OUT" "${BINS[@]}" <<'PY'
import glob, json, statistics as st, sys
out, bins = sys.argv[1], sys.argv[2:]
for i, b in enumerate(bins):
    rows = []
    for f in sorted(glob.glob(f"{out}/{i}.*.jsonl")):
        recs = [r for r in map(json.loads, open(f)) if "epoch" in r]
        evals = [r["eval_s"] for r in recs if "eval_s" in r]
        later_epochs = [r["epoch_s"] for r in recs[1:]]
        summary = json.load(open(f[:-1]))
        if not evals or not later_epochs:
            sys.exit(f"{f}: needs --eval-every 1 and at least 2 epochs")
        row = {"first_eval_s": evals[0], "later_eval_s": st.median(evals[1:] or evals),
               "later_epoch_s": st.median(later_epochs), "peak_rss_mb": summary["peak_rss_mb"],
               "test_acc": summary["test_acc"]}
        row["eval_per_epoch"] = row["later_eval_s"] / row["later_epoch_s"]
        # Where a later evaluation's time went (eval_phases; medians over the later evaluations).
        later = [r["eval_phases"] for r in recs if "eval_phases" in r][1:] or [recs[0]["eval_phases"]]
        row["later_pass0_s"] = st.median(p["pass0_s"] for p in later)
        for l in range(len(later[0]["layers"])):
            for k in ("sum_s", "finish_s"):
                row[f"later_l{l}_{k}"] = st.median(p["layers"][l][k] for p in later)
        rows.append(row)
        print(f"{b}: " + " ".join(f"{k} {v:.4g}" for k, v in row.items()))
    print(f"{b}: median " + " ".join(f"{k} {st.median(r[k] for r in rows):.4g}" for k in rows[0]))
PY
