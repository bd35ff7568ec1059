#!/usr/bin/env bash
# Runs one command inside a fresh cgroup v1 memory cgroup with a hard limit (page cache the command
# reads or writes is charged to it), starting from a dropped page cache, and reports what the
# kernel saw: peak usage, how often the limit was hit, OOM kills, peak RSS, wall time. A benchmark
# helper, not a test: it needs root and /sys/fs/cgroup/memory.
#
#   bench/in_cgroup.sh LIMIT COMMAND [ARGS...]        e.g. bench/in_cgroup.sh 1.5G build/bin/cgcn-preprocess ...
#
# The command's own output is printed without progress lines; its exit status is this script's.
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,9p' "$0"; exit 2; fi
LIMIT=$1
shift
CG=/sys/fs/cgroup/memory/cgcn-bench-$$
run() { echo "+ $*"; "$@"; }
bytes() { numfmt --from=iec "${1%iB}" 2>/dev/null || numfmt --from=iec "${1%B}"; }
mib() { echo "$(( $1 / 1048576 )) MiB"; }

[ -d /sys/fs/cgroup/memory ] || { echo "no cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 3; }
limit_bytes=$(bytes "$LIMIT")
run mkdir "$CG"
trap 'rmdir "$CG" 2>/dev/null || true' EXIT
echo "+ echo $limit_bytes > $CG/memory.limit_in_bytes"
echo "$limit_bytes" > "$CG/memory.limit_in_bytes"
# Page cache is charged to the cgroup that first touches a page: start cold.
echo "+ sync; echo 3 > /proc/sys/vm/drop_caches"
sync; echo 3 > /proc/sys/vm/drop_caches
dmesg_before=$(dmesg 2>/dev/null | grep -ci "killed process\|oom-kill" || true)
out=$(mktemp)
set +e
echo "+ (echo \$BASHPID > $CG/cgroup.procs; exec /usr/bin/time -v $*)"
(echo $BASHPID > "$CG/cgroup.procs"; exec /usr/bin/time -v "$@") > "$out" 2>&1
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
echo "memory.max_usage       $max_usage bytes ($(mib "$max_usage"))   (RSS + page cache charged to the cgroup)"
echo "memory.failcnt         $failcnt   (times usage hit the limit and the kernel reclaimed)"
echo "oom kills              ${oom_kills:-?} (memory.oom_control), $((dmesg_after - dmesg_before)) new in dmesg"
echo "peak RSS               $((${peak_kib:-0} / 1024)) MiB (/usr/bin/time)"
echo "wall                   ${wall:-?}"
echo "exit status            $status"
rm -f "$out"
exit $status
