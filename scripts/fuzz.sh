#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into build-fuzz/, writes
# their seed corpora with fuzz_seed_corpus (real shard directories, raw CSV/gzip files, .npz
# files, model files and checkpoints, all written by the library from small datasets), then runs
# the targets JOBS at a time (default 2, one per core of the CI machine). SECONDS (default 60) sets
# the budget as it did for the first six targets: 6 x SECONDS of fuzzing in all, shared equally,
# so each of the seven targets runs 6 x SECONDS / 7 (51 s for 60):
#   fuzz_manifest     DecodeManifest
#   fuzz_shard        ParseShardHeader, ShardDecoder::Decode
#   fuzz_text_source  TextSource, the line reader (plain and gzip)
#   fuzz_raw_reader   ReadRawGraph, the CSV/gzip raw dataset reader
#   fuzz_npz          ReadZipDirectory, MemberDecoder, ParseNpyHeader, ReadRawGraph on raw/data.npz
#   fuzz_model        LoadModel
#   fuzz_checkpoint   LoadCheckpoint, then Train resuming from what it accepts
#
#   scripts/fuzz.sh [SECONDS]        FUZZ_JOBS=N scripts/fuzz.sh [SECONDS]
#
# Any crash, leak, UBSan report, timeout (10 s per input), RSS over 512 MB or single allocation
# over 256 MB fails the run; the reproducer is saved as build-fuzz/artifacts/TARGET-* and printed in base64. Inputs
# that found new coverage are kept in build-fuzz/corpus/TARGET for the next run; inputs that once
# failed are kept in tests/fuzz/regressions/TARGET and replayed every run. The targets'
# scratch files go to $TMPDIR: a directory in /dev/shm, else build-fuzz/tmp. The last line reads
# "fuzz: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
JOBS=${FUZZ_JOBS:-2}
TARGETS=(fuzz_manifest fuzz_shard fuzz_text_source fuzz_raw_reader fuzz_npz fuzz_model fuzz_checkpoint)
# The budget of the six targets this script began with, 6 x SECS, shared by all of them.
PER_TARGET=$(( 6 * SECS / ${#TARGETS[@]} > 0 ? 6 * SECS / ${#TARGETS[@]} : 1 ))
T0=$SECONDS
scripts/install-deps.sh || exit 1

CXX_CLANG=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$CXX_CLANG" ]; then
  echo "fuzz: clang++ not found"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
# scripts/sanitize.sh's ASan build holds the fuzz targets when it was made with clang and
# -DCGCN_FUZZ=ON (same flags as below): then only they are brought up to date there.
BIN=build-fuzz/bin
CACHE=build-asan/CMakeCache.txt
if grep -q '^CGCN_FUZZ:BOOL=ON$' "$CACHE" 2>/dev/null && grep -q '^CGCN_SANITIZE:STRING=address,undefined$' "$CACHE"; then
  echo "fuzz: building the fuzz targets in build-asan (configured by scripts/sanitize.sh)"
  BUILD_CMD=(cmake --build build-asan -j"$(nproc)" --target "${TARGETS[@]}" fuzz_seed_corpus)
  BIN=build-asan/bin
else
  echo "fuzz: building build-fuzz with $CXX_CLANG"
  BUILD_CMD=(cmake --build build-fuzz -j"$(nproc)" --target "${TARGETS[@]}" fuzz_seed_corpus)
  cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER="$CXX_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" \
    -DCGCN_FUZZ=ON -DCGCN_SANITIZE=address,undefined -DCGCN_BUILD_TESTS=OFF >/dev/null || BUILD_CMD=(false)
fi
if ! "${BUILD_CMD[@]}"; then
  echo "fuzz: build failed"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
TB=$SECONDS

SYMBOLIZER=$(command -v llvm-symbolizer || true)
[ -z "$SYMBOLIZER" ] || export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

B=build-fuzz
rm -rf "$B/seeds" "$B/logs" "$B/artifacts" "$B/tmp"
mkdir -p "$B/seeds" "$B/logs" "$B/artifacts"
# The targets' scratch files (the raw dataset, model files, checkpoints, ReadRawGraph's own
# temporary directories) go to a tmpfs when there is one: on ext4 creating, fsyncing and deleting
# them took most of a run's time. Removed at exit.
if [ -d /dev/shm ] && [ -w /dev/shm ] && TMPDIR=$(mktemp -d /dev/shm/cgcn-fuzz.XXXXXX 2>/dev/null); then
  trap 'rm -rf "$TMPDIR"' EXIT
else
  mkdir -p "$B/tmp"
  TMPDIR=$(cd "$B/tmp" && pwd)
fi
export TMPDIR
if ! "$BIN/fuzz_seed_corpus" "$B/seeds"; then
  echo "fuzz: writing the seed corpus failed"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
T1=$SECONDS

# A pool of JOBS: start the next target whenever one finishes.
declare -A target_of rc_of
start() {
  local t=$1
  mkdir -p "$B/corpus/$t"
  # -max_len: the largest seed is a few KiB; bigger inputs add nothing but time.
  # tests/fuzz/regressions/TARGET: inputs that once failed a run, replayed first (read only).
  local regress=()
  [ -d "tests/fuzz/regressions/$t" ] && regress=("tests/fuzz/regressions/$t")
  "$BIN/$t" "$B/corpus/$t" "$B/seeds/$t" "${regress[@]}" \
    -max_total_time="$PER_TARGET" -timeout=10 -rss_limit_mb=512 -malloc_limit_mb=256 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" >"$B/logs/$t.log" 2>&1 &
  target_of[$!]=$t
}
next=0
running=0
while [ "$next" -lt "${#TARGETS[@]}" ] || [ "$running" -gt 0 ]; do
  while [ "$running" -lt "$JOBS" ] && [ "$next" -lt "${#TARGETS[@]}" ]; do
    start "${TARGETS[$next]}"
    next=$((next + 1))
    running=$((running + 1))
  done
  finished=
  wait -n -p finished
  rc=$?
  rc_of[${target_of[$finished]}]=$rc
  running=$((running - 1))
done

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  rc=${rc_of[$t]}
  log="$B/logs/$t.log"
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n1)
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov: ' "$log" | tail -n1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/p')
  if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    passed=$((passed + 1))
    echo "fuzz: $t: ok, ${execs} executions in ${PER_TARGET} s (${rate:-?}/s; ${cov:-no coverage line})"
  else
    failed=$((failed + 1))
    echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} executions; log $log, last lines:"
    tail -n 60 "$log"
    # The reproducer itself, base64, so that a CI log alone is enough to replay it.
    for a in "$B/artifacts/$t-"*; do
      [ -f "$a" ] || continue
      echo "fuzz:   reproducer $a ($(stat -c %s "$a") bytes), base64:"
      if [ "$(stat -c %s "$a")" -le 65536 ]; then base64 -w 100 "$a" | sed 's/^/fuzz:     /'; else echo "fuzz:     (over 64 KiB, not printed)"; fi
    done
  fi
done
echo "fuzz: $((SECONDS - T0)) s in all: build $((TB - T0)) s, seeds $((T1 - TB)) s, fuzzing $((SECONDS - T1)) s ($JOBS at a time)"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
