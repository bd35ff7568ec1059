// The memory this process may use: the machine's physical memory, or less when the process's
// cgroup (v2) sets a lower memory.max.
#pragma once

#include <cstdint>

namespace cgcn {

uint64_t MemoryLimitBytes();

}  // namespace cgcn
