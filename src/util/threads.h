// The number of threads TBB will run work on here: the arena's, capped by a global_control
// limit (the tools' --threads). Memory plans count per-thread buffers with it.
#pragma once

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstdint>

namespace cgcn {

inline uint32_t RunnableThreads() {
  const auto arena = static_cast<uint64_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
  const auto limit = static_cast<uint64_t>(
      std::max<size_t>(1, tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism)));
  return static_cast<uint32_t>(std::min(arena, limit));
}

}  // namespace cgcn
