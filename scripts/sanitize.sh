#!/usr/bin/env bash
# Builds cgcn with sanitizers and runs the tests under them (CI runs this via .ci/run):
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer (leaks included): the whole ctest suite;
#   build-tsan/  ThreadSanitizer: the multi-threaded tests (TBB pipeline, reproducible training,
#                dense and sparse kernels), with the suppressions of tests/tsan.supp.
# Any sanitizer report fails the run. The last line reads "sanitize: N passed, N failed".
# Compiler: clang++ (about 4x faster than g++ at compiling sanitized code, which is what keeps CI
# short), or g++ when clang++ is missing; CXX=g++ forces g++. Assertions stay enabled (no NDEBUG).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
ROOT=$PWD
JOBS=$(nproc)
TSAN_FILTER='Pipeline*:EndToEnd.TrainingIsReproducible*:Dense*:Sparse*'
CXX=${CXX:-$(command -v clang++ || command -v g++)}
case "$CXX" in
  *clang*) OPT="-O2 -gline-tables-only" ;;  # line numbers in reports, without full debug info
  *) OPT="-O1 -g1" ;;
esac

# Reports go to stderr with full stacks; the first one ends the process with a non-zero status.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp:halt_on_error=0:second_deadlock_stack=1:history_size=4"
SYMBOLIZER=$(command -v llvm-symbolizer || true)
if [ -n "$SYMBOLIZER" ]; then
  export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER
  export TSAN_OPTIONS="$TSAN_OPTIONS:external_symbolizer_path=$SYMBOLIZER"
fi

passed=0
failed=0
status=0
build() {  # build DIR SANITIZERS [TARGET...]
  local dir=$1 sanitizers=$2
  shift 2
  echo "sanitize: building $dir with $CXX $OPT -fsanitize=$sanitizers"
  local targets=()
  [ $# -eq 0 ] || targets=(--target "$@")
  cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$OPT" -DCGCN_SANITIZE="$sanitizers" >/dev/null &&
    cmake --build "$dir" -j"$JOBS" "${targets[@]}"
}

# ASan + UBSan: the whole suite.
asan_summary="not run"
if build build-asan address,undefined; then
  log=build-asan/ctest.log
  (cd build-asan && ctest --output-on-failure -j"$JOBS" "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -n "$line" ]; then
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
    asan_summary="$((t - f)) passed, $f failed"
  else
    failed=$((failed + 1))
    asan_summary="ctest did not finish"
  fi
  [ "$rc" -eq 0 ] || status=1
else
  echo "sanitize: build-asan failed to build"
  failed=$((failed + 1))
  asan_summary="build failed"
  status=1
fi

# TSan: the tests that run TBB pipelines and parallel kernels. A data race is reported even when
# the test passes, and makes the process exit with status 66.
tsan_summary="not run"
if build build-tsan thread cgcn_tests; then
  log=build-tsan/tsan.log
  build-tsan/tests/cgcn_tests --gtest_filter="$TSAN_FILTER" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -n1)
  f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | tail -n1)
  reports=$(grep -c '^WARNING: ThreadSanitizer:' "$log" || true)
  p=${p:-0}
  f=${f:-0}
  if [ -z "$(grep -E '^\[==========\] [0-9]+ tests? from .* ran\.' "$log")" ]; then
    f=$((f + 1))  # the binary died before gtest's summary
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # all tests passed but TSan reported (or the process failed otherwise)
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  tsan_summary="$p passed, $f failed, $reports ThreadSanitizer reports"
  [ "$rc" -eq 0 ] || status=1
else
  echo "sanitize: build-tsan failed to build"
  failed=$((failed + 1))
  tsan_summary="build failed"
  status=1
fi

echo "sanitize: asan+ubsan (all tests): $asan_summary; tsan ($TSAN_FILTER): $tsan_summary"
echo "sanitize: $passed passed, $failed failed"
exit "$status"
