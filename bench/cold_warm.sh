#!/usr/bin/env bash
# Epoch time with a warm page cache against a cold one (sync; echo 3 > /proc/sys/vm/drop_caches),
# with the training stage's wait / decode / assemble / compute split from --metrics-out.
# A benchmark, not a test: needs root, drops the page cache.
#
#   bench/cold_warm.sh SHARD_DIR [ROUNDS] [cgcn-train flags...]
#   bench/cold_warm.sh /tmp/cgcn-bench/1m-shards 3 --layers 3 --hidden 256 -q 20 --feature-norm none
#
# Each round runs two fresh processes of one epoch each, in turn: warm (the shard files read
# once with cat beforehand) and cold (the page cache dropped beforehand). Both are the same point
# of a run (epoch 1 of a new process), so the only difference is where the shards come from.
# Single epochs on a shared VM vary by several percent, so ROUNDS (default 3) pairs are run and
# the medians compared. Each run also ends with the usual full-graph evaluation, which is not part
# of epoch_s. The CPU time the hypervisor took from this VM during each run ("steal", from
# /proc/stat) is printed beside it: on these VMs disk reads cost steal time as well as system time.
# Environment: BIN (default build/bin).
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,17p' "$0"; exit 2; fi
SHARDS=$1
ROUNDS=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
BIN=${BIN:-build/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steal() { awk '/^cpu /{print $9}' /proc/stat; }

one() {  # one NAME ROUND: a fresh one-epoch run, its metrics in $tmp/NAME-ROUND.jsonl
  local name=$1 r=$2 s0 s1
  shift 2
  if [ "$name" = warm ]; then
    cat "$SHARDS"/* > /dev/null
  else
    sync; echo 3 > /proc/sys/vm/drop_caches
  fi
  s0=$(steal)
  "$BIN/cgcn-train" --shards "$SHARDS" --epochs 1 --quiet --metrics-out "$tmp/$name-$r.jsonl" "$@" > /dev/null
  s1=$(steal)
  echo "$(( s1 - s0 ))" > "$tmp/$name-$r.steal"
}

echo "+ $BIN/cgcn-train --shards $SHARDS --epochs 1 --quiet --metrics-out ... $*   ($ROUNDS rounds of: cat shards, warm run; drop caches, cold run)"
for r in $(seq 1 "$ROUNDS"); do
  one warm "$r" "$@"
  one cold "$r" "$@"
  echo "round $r done"
done

python3 - "$tmp" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
tmp, rounds, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cols = ["epoch_s", "input_wait_s", "decode_s", "decode_cpu_s", "assemble_s", "compute_s"]
runs = {"warm": [], "cold": []}
print("\n%-6s %5s " % ("run", "round") + " ".join("%13s" % c for c in cols) + " %10s %8s" % ("decode GB/s", "steal s"))
for r in range(1, rounds + 1):
    for name in ("warm", "cold"):
        rec = [json.loads(l) for l in open("%s/%s-%d.jsonl" % (tmp, name, r)) if '"epoch_s"' in l][0]
        rec["steal_s"] = int(open("%s/%s-%d.steal" % (tmp, name, r)).read()) / hz
        runs[name].append(rec)
        print("%-6s %5d " % (name, r) + " ".join("%13.3f" % rec[c] for c in cols) +
              " %10.3f %8.2f" % (rec["decode_gb_per_core_s"], rec["steal_s"]))
med = {k: statistics.median(x["epoch_s"] for x in v) for k, v in runs.items()}
print("\nmedian epoch: warm %.3f s, cold %.3f s; cold / warm = %.3f  (per round: %s)" % (
    med["warm"], med["cold"], med["cold"] / med["warm"],
    ", ".join("%.3f" % (c["epoch_s"] / w["epoch_s"]) for w, c in zip(runs["warm"], runs["cold"]))))
PY
