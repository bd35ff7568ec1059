// The record of one raw input file, as the raw reader computes it and the manifest stores it, so
// that a shard directory can be checked against the input it claims to stand for, file by file.
// Shared by the raw reader (DigestRawInput) and the shard layer (manifest, --check-input).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cgcn {

struct InputFileDigest {
  std::string relative;   // path relative to DIR, e.g. "raw/edge.csv.gz"
  uint64_t size = 0;      // bytes as stored
  uint64_t checksum = 0;  // XXH3-64 of the stored bytes
  bool operator==(const InputFileDigest&) const = default;
};

// Describes how `actual` differs from `recorded` ("raw/edge.csv.gz: 18127 -> 18200 bytes,
// content differs; split/public/test.csv.gz: missing"); empty when they are equal.
std::string DescribeInputDifferences(const std::vector<InputFileDigest>& recorded,
                                     const std::vector<InputFileDigest>& actual);

}  // namespace cgcn
