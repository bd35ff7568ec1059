// An ITT ("Intel Instrumentation and Tracing Technology") collector that turns oneTBB's own
// synchronization notifications into ThreadSanitizer happens-before annotations.
//
// Why: Debian's libtbb is not built with -fsanitize=thread, so TSan cannot see the atomics and
// futexes with which TBB hands tasks between threads, joins a parallel_for or orders a pipeline's
// serial stages. Every handoff then looks like a data race (about 1300 reports on the threaded
// tests). But libtbb is built with ITT notifications, the hooks that race detectors such as
// Intel Inspector use: before publishing data it calls __itt_sync_releasing(addr), after
// consuming it __itt_sync_acquired(addr). libtbb loads a collector named by the environment
// variable INTEL_LIBITTNOTIFY64; this is one, mapping releasing -> __tsan_release and acquired ->
// __tsan_acquire, so TSan learns exactly the edges TBB itself declares and still reports races
// between tasks that TBB does not order.
//
// Built and used by scripts/sanitize.sh for the TSan run only (with -DTBB_USE_PROFILING_TOOLS=2,
// so that TBB's headers, compiled into cgcn, emit their task-level notifications too):
//   INTEL_LIBITTNOTIFY64=build-tsan/libcgcn_tsan_itt.so INTEL_ITTNOTIFY_GROUPS=sync
// CGCN_TSAN_ITT_STATS=1 prints how many notifications of each kind arrived, at exit.
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace {

std::atomic<unsigned long> g_releasing{0}, g_acquired{0}, g_other{0};

struct Stats {
  ~Stats() {
    if (std::getenv("CGCN_TSAN_ITT_STATS") != nullptr)
      std::fprintf(stderr, "tsan_itt: %lu releasing, %lu acquired, %lu other notifications\n", g_releasing.load(),
                   g_acquired.load(), g_other.load());
  }
} g_stats;

}  // namespace

#define CGCN_ITT_EXPORT extern "C" __attribute__((visibility("default")))

// Its presence makes the ITT loader take this library as an API-version-1 collector: it then looks
// up each __itt_* function below by name (for the groups in INTEL_ITTNOTIFY_GROUPS).
CGCN_ITT_EXPORT const char* __itt_api_version(void) { return "cgcn tsan_itt 1"; }

CGCN_ITT_EXPORT void __itt_sync_releasing(void* addr) {
  g_releasing.fetch_add(1, std::memory_order_relaxed);
  __tsan_release(addr);
}
CGCN_ITT_EXPORT void __itt_sync_acquired(void* addr) {
  g_acquired.fetch_add(1, std::memory_order_relaxed);
  __tsan_acquire(addr);
}
// Announcements without an ordering of their own.
CGCN_ITT_EXPORT void __itt_sync_prepare(void*) { g_other.fetch_add(1, std::memory_order_relaxed); }
CGCN_ITT_EXPORT void __itt_sync_cancel(void*) { g_other.fetch_add(1, std::memory_order_relaxed); }
CGCN_ITT_EXPORT void __itt_sync_destroy(void*) { g_other.fetch_add(1, std::memory_order_relaxed); }
CGCN_ITT_EXPORT void __itt_sync_create(void*, const char*, const char*, int) {}
CGCN_ITT_EXPORT void __itt_sync_rename(void*, const char*) {}
