// One rule for every numeric option, in the library and on the command line: values are parsed
// whole (no trailing text, no silent wrap-around), must be finite, and bounds read as sentences
// ("--epochs must be at least 1, found 0"). Library option structs (TrainOptions, SynthOptions,
// PreprocessOptions) check their fields with these functions; the tools parse flags with
// ParseNumber (cgcn/cli.h), so a value means the same thing whichever way it arrives.
#pragma once

#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include "cgcn/status.h"

namespace cgcn {

namespace flag_check_detail {
template <typename T>
std::string Show(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    std::ostringstream os;
    os << v;
    return os.str();
  } else {
    return std::to_string(v);
  }
}
}  // namespace flag_check_detail

// "FLAG must be a finite number, found nan" unless v is finite (integers always are).
template <typename T>
Status CheckFinite(std::string_view flag, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v))
      return Status::InvalidArgument(std::string(flag) + " must be a finite number, found " +
                                     flag_check_detail::Show(v));
  }
  return Status::Ok();
}

// Finite and within [lo, hi]; the sentence names only the bounds that are not the type's own
// ("at least 1", "at most 0.99", "from 1 to 16").
template <typename T>
Status CheckRange(std::string_view flag, T v, T lo, T hi) {
  CGCN_RETURN_IF_ERROR(CheckFinite(flag, v));
  if (v >= lo && v <= hi) return Status::Ok();
  using L = std::numeric_limits<T>;
  const bool open_lo = std::is_floating_point_v<T> ? lo <= -L::max() : lo == L::min();
  const bool open_hi = hi == L::max();
  std::string rule;
  if (open_lo)
    rule = "at most " + flag_check_detail::Show(hi);
  else if (open_hi)
    rule = "at least " + flag_check_detail::Show(lo);
  else
    rule = "from " + flag_check_detail::Show(lo) + " to " + flag_check_detail::Show(hi);
  return Status::InvalidArgument(std::string(flag) + " must be " + rule + ", found " + flag_check_detail::Show(v));
}
template <typename T>
Status CheckAtLeast(std::string_view flag, T v, T lo) {
  return CheckRange(flag, v, lo, std::numeric_limits<T>::max());
}

// Parses the whole of `text` as a T: integers in base 10 within T's range (no sign on unsigned
// types), floating-point values finite. Anything else: "FLAG must be a whole number from 0 to
// 4294967295, found '-1'" / "FLAG must be a number, found 'abc'".
template <typename T>
Result<T> ParseNumber(std::string_view flag, std::string_view text) {
  T v{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (!text.empty() && text.front() == '+') ++first;  // "+3" is 3
  const auto [ptr, ec] = std::from_chars(first, last, v);
  const bool whole = !text.empty() && ec == std::errc() && ptr == last;
  if constexpr (std::is_integral_v<T>) {
    if (!whole)
      return Status::InvalidArgument(
          std::string(flag) + " must be a whole number from " + std::to_string(std::numeric_limits<T>::min()) + " to " +
          std::to_string(std::numeric_limits<T>::max()) + ", found '" + std::string(text) + "'");
  } else {
    if (!whole) {
      if (ec == std::errc::result_out_of_range && ptr == last)
        return Status::InvalidArgument(std::string(flag) + " must be a finite number, found '" + std::string(text) +
                                       "' (out of range)");
      return Status::InvalidArgument(std::string(flag) + " must be a number, found '" + std::string(text) + "'");
    }
    CGCN_RETURN_IF_ERROR(CheckFinite(flag, v));
  }
  return v;
}

}  // namespace cgcn
