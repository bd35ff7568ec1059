#include "cgcn/byte_size.h"

#include <cctype>
#include <cmath>
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
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  // Tenths of unit u, rounded up: whole units * 10 plus the remainder's tenths (the remainder is
  // below 2^60, so remainder * 10 does not overflow).
  const auto tenths = [bytes](int u) {
    const int shift = 10 * u;
    const uint64_t remainder = bytes & ((uint64_t{1} << shift) - 1);
    return (bytes >> shift) * 10 + ((remainder * 10 + (uint64_t{1} << shift) - 1) >> shift);
  };
  int u = 1;
  while (u < 6 && bytes >> (10 * (u + 1)) != 0) ++u;
  uint64_t t = tenths(u);
  if (t >= 10240 && u < 6) t = tenths(++u);  // 1023.95 KiB and up print as 1.0 MiB
  return std::to_string(t / 10) + "." + std::to_string(t % 10) + " " + kUnits[u];
}

}  // namespace cgcn
