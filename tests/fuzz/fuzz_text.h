// Reference rules for the text fuzzers, written out separately from src/util/text_source.cc and
// src/raw/raw_reader.cc so that the two implementations check each other: how text splits into
// lines (text_source.h), and the grammar of the raw CSV fields (raw_reader.h).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace cgcn::fuzz {

// Lines end at '\n'; a '\r' before it (or at the very end) is dropped; one terminator at the end
// of the text does not start another line.
inline std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    const size_t next = end == std::string_view::npos ? text.size() : end + 1;
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    begin = next;
  }
  return lines;
}

inline std::vector<std::string_view> SplitCommas(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t begin = 0;
  for (;;) {
    const size_t comma = line.find(',', begin);
    if (comma == std::string_view::npos) break;
    fields.push_back(line.substr(begin, comma - begin));
    begin = comma + 1;
  }
  fields.push_back(line.substr(begin));
  return fields;
}

// An integer field: one or more ASCII digits (leading zeros allowed, no sign, no spaces) whose
// value fits 64 bits.
inline bool ParseDigits(std::string_view s, uint64_t* value) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *value = v;
  return true;
}

// A feature field in plain decimal notation: an optional '-', digits with an optional '.' (at
// least one digit in all), an optional exponent 'e' or 'E', optional sign, digits. Every such
// field whose value is a finite float (including values that round to 0) must be accepted;
// other spellings (inf, nan, hex, '+', spaces) are for the reader to take or refuse.
inline bool IsPlainDecimal(std::string_view s) {
  size_t i = 0, digits = 0;
  if (i < s.size() && s[i] == '-') ++i;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

// The value of a field, as strtod / strtof read it (the "C" locale: the fuzzers never change it).
inline double StrToD(std::string_view s) {
  const std::string z(s);
  return std::strtod(z.c_str(), nullptr);
}
inline float StrToF(std::string_view s) {
  const std::string z(s);
  return std::strtof(z.c_str(), nullptr);
}

}  // namespace cgcn::fuzz
