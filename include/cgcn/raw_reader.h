// Stage 1: the OGB node-property-prediction raw layout -> an in-memory graph.
//
//   DIR/raw/num-node-list.csv[.gz]   one line: N
//   DIR/raw/num-edge-list.csv[.gz]   one line: number of lines in edge.csv (optional)
//   DIR/raw/edge.csv[.gz]            "src,dst" per line, 0-based ids < N
//   DIR/raw/node-feat.csv[.gz]       N lines of F comma-separated finite floats
//   DIR/raw/node-label.csv[.gz]      N lines, one integer class id in [0, 2^16)
//   DIR/split/NAME/{train,valid,test}.csv[.gz]   node ids, one per line
//
// Every file may be gzipped (read through Boost.Iostreams' gzip filter) or plain.
// Every error names the file, the 1-based line and what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

// Split membership bits, one byte per node (also the on-disk encoding).
inline constexpr uint8_t kSplitTrain = 1;
inline constexpr uint8_t kSplitValid = 2;
inline constexpr uint8_t kSplitTest = 4;

struct RawGraph {
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;          // max label + 1
  std::vector<uint32_t> edge_src;    // [E] as read, E = lines in edge.csv
  std::vector<uint32_t> edge_dst;    // [E]
  std::vector<float> features;       // [num_nodes x feat_dim], row-major
  std::vector<uint32_t> labels;      // [num_nodes]
  std::vector<uint8_t> split;        // [num_nodes], kSplit* bits, at most one set
  std::string split_name;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  // XXH3-64 over (relative path, size, bytes) of every input file, in a fixed order.
  uint64_t fingerprint = 0;
  uint64_t input_bytes = 0;          // total size of the input files as stored
};

struct RawReadOptions {
  std::string dir;
  // Subdirectory of DIR/split to use; empty = the only one present (error if several).
  std::string split_name;
};

// Reads and validates everything. Node ids must be < 2^31 - 1 (METIS's idx_t).
Result<RawGraph> ReadRawGraph(const RawReadOptions& options, const ProgressFn& progress = {});

// One input file as stored: recorded in the manifest so that a shard directory can be checked
// against the raw input it claims to stand for, file by file.
struct InputFileDigest {
  std::string relative;   // path relative to DIR, e.g. "raw/edge.csv.gz"
  uint64_t size = 0;      // bytes as stored
  uint64_t checksum = 0;  // XXH3-64 of the stored bytes
  bool operator==(const InputFileDigest&) const = default;
};

// Digests of the files ReadRawGraph reads, in the same order (without parsing them).
Result<std::vector<InputFileDigest>> DigestRawInput(const RawReadOptions& options);

// Describes how `actual` differs from `recorded` ("raw/edge.csv.gz: 18127 -> 18200 bytes,
// content differs; split/public/test.csv.gz: missing"); empty when they are equal.
std::string DescribeInputDifferences(const std::vector<InputFileDigest>& recorded,
                                     const std::vector<InputFileDigest>& actual);

}  // namespace cgcn
