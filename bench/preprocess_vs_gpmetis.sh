#!/usr/bin/env bash
# cgcn-preprocess end to end (read, symmetrize, METIS, write the shards) against gpmetis alone
# (Debian's `metis` package: reading METIS's graph file and partitioning it) on the same graph and
# the same P, alternated ROUNDS times (this VM's speed drifts; alternating exposes both to it).
#
#   bench/preprocess_vs_gpmetis.sh RAW_DIR PARTS
#   ROUNDS=3 WORK=/var/tmp/gp bench/preprocess_vs_gpmetis.sh /data/bench/products-raw 1500
#
# The graph file for gpmetis is written once, before the rounds, by cgcn-partition-bench
# --metis-graph from the same raw input (the symmetric, deduplicated graph cgcn partitions).
# cgcn-preprocess runs with --partitioner metis (the in-memory METIS_PartGraphKway gpmetis also
# calls) and its other defaults; gpmetis with -seed=0 and its defaults. WORK (default: a new
# directory under /var/tmp, removed at the end) is scratch this script writes: graph (kept and
# reused by later runs with the same WORK), graph.part.P (gpmetis's), shards/ (cgcn-preprocess
# --overwrite, which replaces only a shard directory), gpmetis.log, preprocess.json and runs.tsv.
# Prints one line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 RAW_DIR PARTS" >&2; exit 2; }
RAW=$1
P=$2
ROUNDS=${ROUNDS:-2}
BIN=${BIN:-build/bin}
command -v gpmetis >/dev/null || { echo "gpmetis not found: apt-get install metis" >&2; exit 1; }
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d /var/tmp/cgcn-gpmetis.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
[ -e "$WORK/graph" ] || "$BIN/cgcn-partition-bench" --input "$RAW" --parts "$P" --metis-graph "$WORK/graph" >&2
now() { date +%s.%N; }
: >"$WORK/runs.tsv"
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  gpmetis -seed=0 "$WORK/graph" "$P" >"$WORK/gpmetis.log"
  t1=$(now)
  metis_part=$(awk '/Partitioning:/ {print $2}' "$WORK/gpmetis.log")
  metis_cut=$(awk '/Edgecut:/ {gsub(",", "", $3); print $3}' "$WORK/gpmetis.log")
  "$BIN/cgcn-preprocess" --input "$RAW" --out "$WORK/shards" --parts "$P" --partitioner metis --overwrite --quiet \
    >"$WORK/preprocess.json"
  t2=$(now)
  python3 - "$WORK" "$r" "$t0" "$t1" "$t2" "$metis_part" "$metis_cut" <<'PY'
import json, sys
work, r, t0, t1, t2, part, cut = sys.argv[1:]
j = json.loads(open(f"{work}/preprocess.json").read().strip().splitlines()[-1])
g, p = float(t1) - float(t0), float(t2) - float(t1)
row = [r, g, float(part), int(cut), p, j["read_s"], j["symmetrize_s"], j["partition_s"], j["write_s"], j["edge_cut"]]
open(f"{work}/runs.tsv", "a").write("\t".join(map(str, row)) + "\n")
print(f"round {r}: gpmetis {g:.1f} s (its partitioning {float(part):.1f} s, cut {int(cut)})  "
      f"cgcn-preprocess {p:.1f} s (read {j['read_s']:.1f}, symmetrize {j['symmetrize_s']:.1f}, "
      f"METIS {j['partition_s']:.1f}, write {j['write_s']:.1f}; cut {j['edge_cut']})  ratio {p / g:.2f}")
PY
done
python3 - "$WORK/runs.tsv" <<'PY'
import statistics as st, sys
rows = [l.split("\t") for l in open(sys.argv[1])]
g = st.median(float(r[1]) for r in rows)
p = st.median(float(r[4]) for r in rows)
print(f"median: gpmetis {g:.1f} s, cgcn-preprocess {p:.1f} s, ratio {p / g:.2f} "
      f"(per round: {', '.join('%.2f' % (float(r[4]) / float(r[1])) for r in rows)})")
PY
