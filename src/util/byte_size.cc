#include "cgcn/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

namespace cgcn {

Result<uint64_t> ParseByteSize(std::string_view text) {
  const std::string t(text);
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = t.substr(used);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  const char* prefixes = "KMGT";
  for (int i = 0; i < 4; ++i) {
    const std::string p(1, prefixes[i]);
    if (unit == p || unit == p + "B" || unit == p + "IB") scale = uint64_t{1} << (10 * (i + 1));
  }
  if (used == 0 || scale == 0 || !std::isfinite(v) || v <= 0 || t.find_first_of(" \t") != std::string::npos)
    return Status::InvalidArgument("'" + t + "' is not a memory size (examples: 512M, 2G, 1.5GiB, 1048576)");
  const double bytes = v * static_cast<double>(scale);
  if (bytes >= 1.8e19) return Status::InvalidArgument("'" + t + "' is too large");
  if (bytes < 1) return Status::InvalidArgument("'" + t + "' is less than one byte (examples: 512M, 2G, 1.5GiB)");
  return static_cast<uint64_t>(bytes);
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace cgcn
