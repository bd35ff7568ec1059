// Progress reporting: the library never prints; it calls back.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace cgcn {

// `phase` names the work ("read edges", "partition", "write shards"); `done` and
// `total` count its units (lines, shards, batches); total == 0 means unknown.
// Called from the thread doing the work; cheap to call often (callers throttle).
using ProgressFn = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

}  // namespace cgcn
