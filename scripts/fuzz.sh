#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into build-fuzz/, writes
# their seed corpora with fuzz_seed_corpus (real shard directories from small datasets), then
# runs fuzz_manifest and fuzz_shard for SECONDS each (default 60), side by side, one per core.
#
#   scripts/fuzz.sh [SECONDS]
#
# Any crash, leak, UBSan report, timeout (10 s per input), RSS over 512 MB or single allocation
# over 256 MB fails the run; the reproducer is saved as build-fuzz/artifacts/TARGET-*. Inputs
# that found new coverage are kept in build-fuzz/corpus/TARGET for the next run.
# The last line reads "fuzz: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
TARGETS=(fuzz_manifest fuzz_shard)
scripts/install-deps.sh || exit 1

CXX_CLANG=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$CXX_CLANG" ]; then
  echo "fuzz: clang++ not found"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
echo "fuzz: building build-fuzz with $CXX_CLANG"
if ! { cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER="$CXX_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" \
         -DCGCN_FUZZ=ON -DCGCN_SANITIZE=address,undefined -DCGCN_BUILD_TESTS=OFF >/dev/null &&
       cmake --build build-fuzz -j"$(nproc)" --target "${TARGETS[@]}" fuzz_seed_corpus; }; then
  echo "fuzz: build failed"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

SYMBOLIZER=$(command -v llvm-symbolizer || true)
[ -z "$SYMBOLIZER" ] || export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

B=build-fuzz
rm -rf "$B/seeds" "$B/logs" "$B/artifacts"
mkdir -p "$B/seeds" "$B/logs" "$B/artifacts"
if ! "$B/bin/fuzz_seed_corpus" "$B/seeds/fuzz_manifest" "$B/seeds/fuzz_shard"; then
  echo "fuzz: writing the seed corpus failed"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

pids=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$B/corpus/$t"
  # -max_len: the largest seed is a few KiB; bigger inputs add nothing but time.
  "$B/bin/$t" "$B/corpus/$t" "$B/seeds/$t" \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=512 -malloc_limit_mb=256 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" >"$B/logs/$t.log" 2>&1 &
  pids+=($!)
done

passed=0
failed=0
for i in "${!TARGETS[@]}"; do
  t=${TARGETS[$i]}
  wait "${pids[$i]}"
  rc=$?
  log="$B/logs/$t.log"
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov: ' "$log" | tail -n1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/p')
  if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    passed=$((passed + 1))
    echo "fuzz: $t: ok, ${execs} executions in ${SECS} s (${cov:-no coverage line})"
  else
    failed=$((failed + 1))
    echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} executions; log $log, last lines:"
    tail -n 60 "$log"
    ls "$B/artifacts/$t-"* 2>/dev/null | sed 's/^/fuzz:   reproducer /'
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
