// The input layout of fuzz_raw_reader, shared with fuzz_seed_corpus. An input is one file of
// testutil's tiny raw dataset (6 nodes, 7 edges, 3 features, split "s"); the first byte says
// which file and in which form:
//   bits 0-2  the file: kRawFiles[value]
//   bits 3-4  0: the rest is the file as plain text (BASE.csv)
//             1: the rest is the file as stored gzip (BASE.csv.gz, a mutated gzip stream)
//             2: the rest is text, gzipped here as one member (BASE.csv.gz); read both ways
//             3: the same in two members
//   bit 5     raw/num-edge-list is left out of the dataset (it is optional), unless it is the file
//   bits 6-7  the reader's block sizes (RawReadOptions): kRawBlocks[value]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cgcn::fuzz {

// In the order the reader reads them (raw_reader.h).
inline constexpr const char* kRawFiles[8] = {"raw/num-node-list", "raw/num-edge-list", "raw/edge",      "raw/node-feat",
                                             "raw/node-label",    "split/s/train",     "split/s/valid", "split/s/test"};
enum RawFileIndex : unsigned { kNumNodes, kNumEdges, kEdges, kFeatures, kLabels, kTrain, kValid, kTest };
enum RawForm : unsigned { kPlainText = 0, kStoredGzip = 1, kGzipOneMember = 2, kGzipTwoMembers = 3 };
inline constexpr uint8_t kNoEdgeCountBit = 0x20;
// {text_block_bytes, scratch_buffer_bytes}: small, so that lines and values cross blocks (the
// defaults, 1 and 4 MiB, would make every run allocate 20 MiB and cross nothing in tiny files).
inline constexpr size_t kRawBlocks[4][2] = {{16, 8}, {61, 100}, {4096, 4096}, {65536, 65536}};

inline std::string RawInput(unsigned file, unsigned form, bool no_edge_count, unsigned blocks,
                            std::string_view content) {
  const auto selector = static_cast<char>(file | (form << 3) | (no_edge_count ? kNoEdgeCountBit : 0) | (blocks << 6));
  return std::string(1, selector) + std::string(content);
}

}  // namespace cgcn::fuzz
