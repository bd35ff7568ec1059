#!/usr/bin/env bash
# Builds cgcn with sanitizers and runs the tests under them (CI runs this via .ci/run):
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer (leaks included): the whole ctest suite;
#   build-tsan/  ThreadSanitizer: the multi-threaded tests (TBB pipeline, reproducible training,
#                dense and sparse kernels, full-graph evaluation in memory and spilled), after a
#                canary run that proves TSan still reports a race between TBB tasks under the same
#                settings.
# Debian's libtbb is not built with TSan; tests/tsan_itt.cc (loaded by libtbb as its ITT collector)
# shows TBB's announced synchronization to TSan, tests/tsan_tbb_pool.cc (linked into the TSan
# executables) shows it the hand-off inside TBB's small-object pool, and tests/tsan.supp
# suppresses what remains of TBB's unannounced hand-offs; docs/RELIABILITY.md ("Sanitizers")
# explains all three.
# Any sanitizer report fails the run. The last line reads "sanitize: N passed, N failed".
# Compiler: clang++ (about 4x faster than g++ at compiling sanitized code, which is what keeps CI
# short), or g++ when clang++ is missing; CXX=g++ forces g++. Assertions stay enabled (no NDEBUG).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
ROOT=$PWD
JOBS=$(nproc)
TSAN_FILTER='Pipeline*:EndToEnd.TrainingIsReproducible*:EndToEnd.FullGraphEvaluation*:Dense*:Sparse*:SpillTest.*:LayersEvalTest.*'
CXX=${CXX:-$(command -v clang++ || command -v g++)}
case "$CXX" in
  *clang*) OPT="-O2 -gline-tables-only" ;;  # line numbers in reports, without full debug info
  *) OPT="-O1 -g1" ;;
esac

# Reports go to stderr with full stacks; ASan and UBSan end the process at the first one, TSan
# lists them all and then exits with status 66.
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
fail() {  # fail WHAT
  echo "sanitize: FAILED: $1"
  failed=$((failed + 1))
  status=1
}
build() {  # build DIR SANITIZERS EXTRA_CXXFLAGS EXTRA_CMAKE_ARGS [TARGET...]
  local dir=$1 sanitizers=$2 flags="$OPT $3" extra=$4
  shift 4
  local targets=()
  [ $# -eq 0 ] || targets=(--target "$@")
  echo "sanitize: building $dir with $CXX $flags -fsanitize=$sanitizers $extra"
  # shellcheck disable=SC2086  # extra: zero or more -D arguments
  cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" -DCGCN_SANITIZE="$sanitizers" $extra >/dev/null &&
    cmake --build "$dir" -j"$JOBS" "${targets[@]}"
}

# ASan + UBSan: the whole suite.
asan_summary="not run"
# With clang the same build also holds the libFuzzer targets (-DCGCN_FUZZ=ON: coverage
# instrumentation on the library too, which the tests do not notice), so scripts/fuzz.sh, run next
# by .ci/run, uses build-asan instead of compiling the library a fourth time (about 4 minutes of
# CI on 2 cores).
FUZZ_ARGS=""
case "$CXX" in *clang*) FUZZ_ARGS="-DCGCN_FUZZ=ON" ;; esac
t_phase=$SECONDS
times=()
phase_done() { times+=("$1 $((SECONDS - t_phase)) s"); t_phase=$SECONDS; }
if build build-asan address,undefined "" "$FUZZ_ARGS -DCGCN_BUILD_BENCH=OFF"; then
  phase_done "asan build"
  log=build-asan/ctest.log
  # Not the Mpi.* tests: they run cgcn-train under mpirun, and LeakSanitizer reports Open MPI
  # 4.1.4's own allocations at exit (ompi_op_base_op_select's, and its plugins', unloaded by then,
  # so no suppression can name them). scripts/test.sh runs them in the plain build.
  (cd build-asan && ctest --output-on-failure -j"$JOBS" -E '^Mpi\.' "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -n "$line" ]; then
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
    asan_summary="$((t - f)) passed, $f failed"
    [ "$rc" -eq 0 ] || status=1
    phase_done "asan tests"
  else
    fail "ctest under ASan+UBSan did not finish (exit $rc)"
    asan_summary="ctest did not finish"
  fi
else
  fail "build-asan did not build"
  asan_summary="build failed"
fi

# TSan. TBB_USE_PROFILING_TOOLS=2 makes TBB's headers (compiled into cgcn) announce task spawns
# and joins to the ITT collector; INTEL_LIBITTNOTIFY64 makes libtbb load it.
tsan_summary="not run"
t_phase=$SECONDS
if build build-tsan thread "-DTBB_USE_PROFILING_TOOLS=2" "" cgcn_tsan_tests cgcn_tsan_itt cgcn_tsan_canary; then
  phase_done "tsan build"
  export INTEL_LIBITTNOTIFY64=$ROOT/build-tsan/bin/libcgcn_tsan_itt.so INTEL_ITTNOTIFY_GROUPS=sync
  # Each mode runs CANARY_RUNS times: the clean mode's former false report (a task object TBB's
  # pool handed between threads, fixed by tests/tsan_tbb_pool.cc) showed in 1 run in 15.
  CANARY_RUNS=3
  canary_ok=0
  for i in $(seq "$CANARY_RUNS"); do
    build-tsan/bin/cgcn_tsan_canary clean >build-tsan/canary-clean.log 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
      canary_ok=$((canary_ok + 1))
    else
      cat build-tsan/canary-clean.log
      fail "tsan_canary clean (run $i): exit $rc, expected 0 (TSan reports on correctly synchronized TBB code)"
    fi
    build-tsan/bin/cgcn_tsan_canary race >build-tsan/canary-race.log 2>&1
    rc=$?
    if [ "$rc" -eq 66 ] && grep -q '^WARNING: ThreadSanitizer: data race' build-tsan/canary-race.log; then
      canary_ok=$((canary_ok + 1))
    else
      cat build-tsan/canary-race.log
      fail "tsan_canary race (run $i): exit $rc, expected 66 and a data race report (TSan misses a race between TBB tasks)"
    fi
  done
  passed=$((passed + canary_ok))
  echo "sanitize: tsan canary: $canary_ok of $((2 * CANARY_RUNS)) runs as expected (no report on clean hand-offs, a report on a planted race)"

  log=build-tsan/tsan.log
  build-tsan/bin/cgcn_tsan_tests --gtest_filter="$TSAN_FILTER" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -n1)
  f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | tail -n1)
  reports=$(grep -c '^WARNING: ThreadSanitizer:' "$log" || true)
  p=${p:-0}
  f=${f:-0}
  if ! grep -qE '^\[==========\] [0-9]+ tests? from .* ran\.' "$log"; then
    f=$((f + 1))  # the binary died before gtest's summary
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # every test passed, but TSan reported (exit 66) or the process failed otherwise
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$rc" -eq 0 ] || status=1
  tsan_summary="$p passed, $f failed, $reports ThreadSanitizer reports"
  phase_done "tsan canary and tests"
else
  fail "build-tsan did not build"
  tsan_summary="build failed"
fi

echo "sanitize: asan+ubsan (all tests but Mpi.*): $asan_summary; tsan ($TSAN_FILTER): $tsan_summary"
[ ${#times[@]} -eq 0 ] || echo "sanitize: times: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g')"
echo "sanitize: $passed passed, $failed failed"
exit "$status"
