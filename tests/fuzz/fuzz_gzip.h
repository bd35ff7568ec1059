// gzip helpers for the text fuzzers and their seeds, on zlib directly (not on Boost.Iostreams,
// which is what the code under test reads gzip with, so the two check each other).
#pragma once

#include <zlib.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_files.h"

namespace cgcn::fuzz {

// `text` as one gzip member (level 1: fast, and the deflate output still has every block type a
// fuzzer mutating it needs).
inline std::string GzipMember(std::string_view text) {
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) HarnessFailure("deflateInit2");
  std::string out(deflateBound(&z, static_cast<uLong>(text.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) HarnessFailure("deflate did not finish");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// `text` as gzip members cut at `cuts` (ascending offsets into text), concatenated: a valid
// multi-member file, as `cat a.gz b.gz` makes.
inline std::string GzipMembers(std::string_view text, const std::vector<size_t>& cuts) {
  std::string out;
  size_t begin = 0;
  for (size_t cut : cuts) {
    out += GzipMember(text.substr(begin, cut - begin));
    begin = cut;
  }
  return out + GzipMember(text.substr(begin));
}

// The reference decoder, for what cgcn promises about gzip input: each member's header parsed as
// RFC 1952 says (FEXTRA, FNAME, FCOMMENT, FHCRC), its deflate data inflated by zlib, its CRC-32
// compared; members concatenated. Like Boost.Iostreams 1.74 it ignores the reserved flag bits,
// the header CRC and the footer's ISIZE (RELIABILITY.md, "Known gaps"). nullopt for an empty
// input, any error, data ending inside a member, or bytes after a member that do not make one.
inline std::optional<std::string> GunzipReference(std::string_view gz) {
  const auto* b = reinterpret_cast<const unsigned char*>(gz.data());
  const size_t n = gz.size();
  std::string out;
  size_t pos = 0;
  if (n == 0) return std::nullopt;
  while (pos < n) {
    if (n - pos < 10 || b[pos] != 0x1f || b[pos + 1] != 0x8b || b[pos + 2] != 8) return std::nullopt;
    const unsigned flags = b[pos + 3];
    size_t p = pos + 10;
    if (flags & 4) {  // FEXTRA: XLEN, then XLEN bytes
      if (n - p < 2) return std::nullopt;
      const size_t xlen = b[p] | (size_t{b[p + 1]} << 8);
      p += 2;
      if (n - p < xlen) return std::nullopt;
      p += xlen;
    }
    for (unsigned flag : {8u, 16u}) {  // FNAME, FCOMMENT: zero-terminated
      if (!(flags & flag)) continue;
      const size_t zero = gz.find('\0', p);
      if (zero == std::string_view::npos) return std::nullopt;
      p = zero + 1;
    }
    if (flags & 2) {  // FHCRC
      if (n - p < 2) return std::nullopt;
      p += 2;
    }
    z_stream z{};
    if (inflateInit2(&z, -15) != Z_OK) HarnessFailure("inflateInit2");
    z.next_in = const_cast<Bytef*>(b + p);
    z.avail_in = static_cast<uInt>(n - p);
    uLong crc = crc32(0, nullptr, 0);
    char buf[16384];
    int rc = Z_OK;
    while (rc == Z_OK) {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      rc = inflate(&z, Z_NO_FLUSH);
      const size_t got = sizeof buf - z.avail_out;
      out.append(buf, got);
      crc = crc32(crc, reinterpret_cast<const Bytef*>(buf), static_cast<uInt>(got));
    }
    p = n - z.avail_in;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || n - p < 8) return std::nullopt;  // corrupt, or ends inside the member
    const uLong stored = b[p] | (uLong{b[p + 1]} << 8) | (uLong{b[p + 2]} << 16) | (uLong{b[p + 3]} << 24);
    if (stored != crc) return std::nullopt;
    pos = p + 8;
  }
  return out;
}

}  // namespace cgcn::fuzz
