// How much memory this machine, and this process, have.
#pragma once

#include <cstdint>

namespace cgcn {

// This machine's physical memory in bytes (sysconf), 0 if unknown.
uint64_t PhysicalMemoryBytes();

// The memory this process may use: PhysicalMemoryBytes, or less when the process's cgroup (v2)
// sets a lower memory.max.
uint64_t MemoryLimitBytes();

}  // namespace cgcn
