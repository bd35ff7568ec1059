#include "util/memory_limit.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace cgcn {

uint64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

uint64_t MemoryLimitBytes() {
  uint64_t limit = PhysicalMemoryBytes();
  // /proc/self/cgroup, cgroup v2: "0::/path"; the limit is /sys/fs/cgroup/path/memory.max ("max"
  // when there is none). Every ancestor's limit applies too.
  std::ifstream cg("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cg, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (path.empty()) return limit;
  for (;;) {
    std::ifstream f("/sys/fs/cgroup" + path + (path == "/" ? "" : "/") + "memory.max");
    std::string v;
    if (f >> v && v != "max") {
      try {
        const uint64_t b = std::stoull(v);
        if (b > 0) limit = limit == 0 ? b : std::min(limit, b);
      } catch (...) {
      }
    }
    if (path == "/" || path.empty()) break;
    const size_t slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return limit;
}

}  // namespace cgcn
