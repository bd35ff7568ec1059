// Parallel loops that fail with a Status, and exceptions turned into a Status: the one way the
// library runs fallible work on oneTBB and keeps exceptions (std::bad_alloc included) from
// escaping into a tool's main.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "cgcn/status.h"

namespace cgcn {

// Thrown to stop a oneTBB construct that has no way to return a Status (a parallel_pipeline
// filter); CatchStatus turns it back into that Status.
struct StatusException {
  Status status;
};

// The Status for the exception being handled; call only inside a catch block. A
// StatusException gives its Status; anything else is kInternal, "CONTEXT: out of memory" for
// std::bad_alloc and "CONTEXT: <what()>" for other exceptions.
inline Status StatusFromCurrentException(const std::string& context) {
  try {
    throw;
  } catch (const StatusException& e) {
    return e.status;
  } catch (const std::bad_alloc&) {
    return Status::Internal(context + ": out of memory");
  } catch (const std::exception& e) {
    return Status::Internal(context + ": " + e.what());
  } catch (...) {
    return Status::Internal(context + ": unknown exception");
  }
}

// Runs fn() (returning Status, or void) and returns its Status, or the Status of whatever it
// threw (StatusFromCurrentException).
template <typename Fn>
Status CatchStatus(const std::string& context, Fn&& fn) {
  try {
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      return Status::Ok();
    } else {
      return fn();
    }
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

// Calls body(i) -> Status for every i in [begin, end) (an unsigned index type), in parallel on the
// current task arena.
// Returns Ok if every call did, else the error of the lowest index that failed, whatever the
// thread count and schedule: once index f has failed, indices above f that have not started yet
// are skipped, and indices below it still run (one of them may fail and take its place). An
// exception thrown by body(i), std::bad_alloc included, is that index's error
// (StatusFromCurrentException with `context`). `grain` is the number of indices per task.
template <typename Index, typename Body>
Status ParallelFor(Index begin, Index end, const std::string& context, Body&& body, size_t grain = 1) {
  static_assert(std::is_unsigned_v<Index>);
  if (begin >= end) return Status::Ok();
  std::atomic<Index> lowest_failed{end};  // end = none failed
  std::mutex mu;                          // guards first
  Status first;
  tbb::parallel_for(tbb::blocked_range<Index>(begin, end, grain), [&](const tbb::blocked_range<Index>& r) {
    for (Index i = r.begin(); i != r.end(); ++i) {
      if (i > lowest_failed.load(std::memory_order_relaxed)) return;  // a lower index failed
      Status s = CatchStatus(context, [&] { return body(i); });
      if (s.ok()) continue;
      std::lock_guard<std::mutex> lock(mu);
      if (i < lowest_failed.load(std::memory_order_relaxed)) {
        lowest_failed.store(i, std::memory_order_relaxed);
        first = std::move(s);
      }
      return;
    }
  });
  return first;
}

}  // namespace cgcn
