// Shows ThreadSanitizer the hand-off inside oneTBB's small-object pool. Linked into the TSan
// build's test executables only (tests/CMakeLists.txt; scripts/sanitize.sh).
//
// Why: TBB allocates every task and partition-tree node of a parallel_for (start_for,
// tree_node, ...) from a per-thread pool inside libtbb (r1::allocate / r1::deallocate). A worker
// that finishes a task returns the object to the pool of the thread that allocated it, through an
// atomic list inside libtbb that TSan cannot see, and with no ITT "releasing" notification
// (TBB only announces sync_destroy, which orders nothing). When that thread allocates the
// next node at the same address and writes to it, e.g.
//   right_child.my_parent = my_parent = ...   (oneapi/tbb/parallel_for.h:140, offer_work_impl)
// TSan sees a plain write racing with the worker's last write to the old object at that
// address. This was the false report of `cgcn_tsan_canary clean` (1 run in 15 on an idle
// machine, 25 in 60 on a loaded one; it needs a task object freed on a worker to be reused on
// main before anything else orders the two threads).
//
// Fix: these definitions interpose libtbb's (an executable's symbols come first in the dynamic
// linker's lookup order, so every call from code compiled into the executable, which is where
// TBB's headers expand, lands here). Each forwards to libtbb and adds the edge the pool provides:
// __tsan_release(ptr) before the object is given back, __tsan_acquire(ptr) after it is handed
// out again. This is exactly the synchronization the pool performs (push/pop on its list), so it
// hides no race between the tasks' own bodies: tsan_canary race still has to be reported.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>
#include <tbb/parallel_for.h>  // declares r1::allocate / r1::deallocate (detail/_small_object_pool.h)

#include <cstdio>
#include <cstdlib>

namespace {

template <typename Fn>
Fn Next(const char* mangled) {
  void* f = dlsym(RTLD_NEXT, mangled);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_tbb_pool: %s not found in libtbb: %s\n", mangled, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

using d1_pool = tbb::detail::d1::small_object_pool;
using d1_ed = tbb::detail::d1::execution_data;

}  // namespace

namespace tbb::detail::r1 {

void* allocate(d1_pool*& pool, std::size_t bytes, const d1_ed& ed) {
  static const auto next = Next<void* (*)(d1_pool*&, std::size_t, const d1_ed&)>(
      "_ZN3tbb6detail2r18allocateERPNS0_2d117small_object_poolEmRKNS2_14execution_dataE");
  void* p = next(pool, bytes, ed);
  __tsan_acquire(p);
  return p;
}

void* allocate(d1_pool*& pool, std::size_t bytes) {
  static const auto next =
      Next<void* (*)(d1_pool*&, std::size_t)>("_ZN3tbb6detail2r18allocateERPNS0_2d117small_object_poolEm");
  void* p = next(pool, bytes);
  __tsan_acquire(p);
  return p;
}

void deallocate(d1_pool& pool, void* ptr, std::size_t bytes, const d1_ed& ed) {
  static const auto next = Next<void (*)(d1_pool&, void*, std::size_t, const d1_ed&)>(
      "_ZN3tbb6detail2r110deallocateERNS0_2d117small_object_poolEPvmRKNS2_14execution_dataE");
  __tsan_release(ptr);
  next(pool, ptr, bytes, ed);
}

void deallocate(d1_pool& pool, void* ptr, std::size_t bytes) {
  static const auto next =
      Next<void (*)(d1_pool&, void*, std::size_t)>("_ZN3tbb6detail2r110deallocateERNS0_2d117small_object_poolEPvm");
  __tsan_release(ptr);
  next(pool, ptr, bytes);
}

}  // namespace tbb::detail::r1
