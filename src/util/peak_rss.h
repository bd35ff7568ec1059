// The process's peak resident set, for reports.
#pragma once

#include <sys/resource.h>

namespace cgcn {

inline double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace cgcn
