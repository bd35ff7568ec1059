#!/usr/bin/env bash
# Trains inside a cgroup v1 memory cgroup whose limit is well below the shard directory's size,
# with cgcn-train --mem-budget, and reports what the kernel saw. A benchmark, not a test: it needs
# root, /sys/fs/cgroup/memory (cgroup v1) and drops the page cache.
#
#   bench/cgroup_train.sh SHARD_DIR LIMIT BUDGET [cgcn-train flags...]
#   bench/cgroup_train.sh /data/c/1m 448M 400M --layers 3 --hidden 256 -q 20 --feature-norm none --epochs 1
#
# SHARD_DIR that does not exist is created first: cgcn-synth (SYNTH_NODES, default 1000000) into
# SHARD_DIR.raw, then cgcn-preprocess (PARTS, default 500). Environment: BIN (default build/bin),
# SPILL_DIR (--tmp-dir; default /var/tmp: it must be on disk, a tmpfs would be charged to the cgroup).
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,13p' "$0"; exit 2; fi
SHARDS=$1 LIMIT=$2 BUDGET=$3
shift 3
BIN=${BIN:-build/bin}
SPILL_DIR=${SPILL_DIR:-/var/tmp}
CG=/sys/fs/cgroup/memory/cgcn-bench-$$
run() { echo "+ $*"; "$@"; }
bytes() { numfmt --from=iec "${1%iB}" 2>/dev/null || numfmt --from=iec "${1%B}"; }
mib() { echo "$(( $1 / 1048576 )) MiB"; }

[ -d /sys/fs/cgroup/memory ] || { echo "no cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 3; }
if [ ! -e "$SHARDS/MANIFEST" ]; then
  run "$BIN/cgcn-synth" --nodes "${SYNTH_NODES:-1000000}" --avg-degree 25 --features 100 --classes 47 \
    --out "$SHARDS.raw" --plain
  run "$BIN/cgcn-preprocess" --input "$SHARDS.raw" --out "$SHARDS" --parts "${PARTS:-500}" --quiet
fi
limit_bytes=$(bytes "$LIMIT")
shard_bytes=$(du -sb "$SHARDS" | cut -f1)
echo "shard directory $SHARDS: $shard_bytes bytes ($(mib "$shard_bytes")); cgroup limit $limit_bytes bytes ($(mib "$limit_bytes")), $(awk "BEGIN{printf \"%.2f\", $limit_bytes/$shard_bytes}") x the shards"

run mkdir "$CG"
trap 'rmdir "$CG" 2>/dev/null || true' EXIT
echo "+ echo $limit_bytes > $CG/memory.limit_in_bytes"
echo "$limit_bytes" > "$CG/memory.limit_in_bytes"
# Page cache is charged to the cgroup that first reads a page: start cold so the shards are.
echo "+ sync; echo 3 > /proc/sys/vm/drop_caches"
sync; echo 3 > /proc/sys/vm/drop_caches
dmesg_before=$(dmesg 2>/dev/null | grep -ci "killed process\|oom-kill" || true)
out=$(mktemp)
set +e
echo "+ (echo \$BASHPID > $CG/cgroup.procs; exec /usr/bin/time -v $BIN/cgcn-train --shards $SHARDS --mem-budget $BUDGET --tmp-dir $SPILL_DIR $*)"
(echo $BASHPID > "$CG/cgroup.procs"; exec /usr/bin/time -v "$BIN/cgcn-train" --shards "$SHARDS" --mem-budget "$BUDGET" \
   --tmp-dir "$SPILL_DIR" "$@") > "$out" 2>&1
status=$?
set -e
grep -v "^  " "$out" | grep -v "^	" || true
max_usage=$(cat "$CG/memory.max_usage_in_bytes")
failcnt=$(cat "$CG/memory.failcnt")
oom_kills=$(awk '/oom_kill /{print $2}' "$CG/memory.oom_control")
dmesg_after=$(dmesg 2>/dev/null | grep -ci "killed process\|oom-kill" || true)
peak_kib=$(awk -F': ' '/Maximum resident set size/{print $2}' "$out")
wall=$(awk -F'): ' '/Elapsed \(wall clock\)/{print $2}' "$out")
echo
echo "== cgroup run"
echo "limit                  $limit_bytes bytes ($(mib "$limit_bytes"))"
echo "shard directory        $shard_bytes bytes ($(mib "$shard_bytes"))"
echo "--mem-budget           $BUDGET"
echo "memory.max_usage       $max_usage bytes ($(mib "$max_usage"))   (RSS + page cache charged to the cgroup)"
echo "memory.failcnt         $failcnt   (times usage hit the limit and the kernel reclaimed)"
echo "oom kills              ${oom_kills:-?} (memory.oom_control), $((dmesg_after - dmesg_before)) new in dmesg"
echo "peak RSS               $((peak_kib / 1024)) MiB (/usr/bin/time)"
echo "wall                   $wall"
echo "exit status            $status"
rm -f "$out"
exit $status
