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
  return static_cast<uint64_t>(bytes);
}

}  // namespace cgcn
