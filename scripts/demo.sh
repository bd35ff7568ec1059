#!/usr/bin/env bash
# The first command of the README: installs dependencies, builds, preprocesses the
# bundled Cora, trains a 2-layer GCN with Cluster-GCN batches, prints test accuracy and
# a shard summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
OUT=${OUT:-build/demo}
mkdir -p "$OUT"
build/bin/cgcn-preprocess --input data/cora --out "$OUT/cora-shards" --parts 10 --overwrite
echo
build/bin/cgcn-train --shards "$OUT/cora-shards" --clusters-per-batch 2 --epochs 200 --eval-every 50 \
  --metrics-out "$OUT/metrics.jsonl" --save-model "$OUT/model.cgcn" --predict-out "$OUT/predictions.csv" | tee "$OUT/train.log"
echo
build/bin/cgcn-dump "$OUT/cora-shards" --verify
echo
python3 - "$OUT/train.log" <<'PY' 2>/dev/null || tail -n1 "$OUT/train.log"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print("Cora test accuracy %.4f (valid %.4f, train %.4f); mean epoch %.4f s; peak RSS %.0f MB"
      % (r["test_acc"], r["valid_acc"], r["train_acc"], r["mean_epoch_s"], r["peak_rss_mb"]))
PY
