// Shared by the libFuzzer targets and the seed-corpus generator in tests/fuzz.
//
// Every checksum in cgcn's formats is XXH3-64, which a mutating fuzzer cannot forge: an input
// with one byte changed would never get past the checksum checks, and the decoders behind them
// would go unfuzzed. So each target decodes its input twice: as given (which exercises the
// checksum checks) and with every checksum recomputed (which reaches everything behind them, as
// a deliberately crafted file would).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "cgcn/checksum.h"
#include "cgcn/shard_format.h"

namespace cgcn::fuzz {

// Aborts (a crash to libFuzzer, which saves the input) when an accepted input breaks an
// invariant the format promises: the decoders must reject what they cannot vouch for.
#define CGCN_FUZZ_CHECK(cond)                                                             \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

inline uint32_t ReadU32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t ReadU64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void WriteU64(std::byte* p, uint64_t v) { std::memcpy(p, &v, 8); }

// A manifest's, a model file's and a checkpoint's last 8 bytes are the checksum of everything
// before them.
inline void RepairTrailingChecksum(std::vector<std::byte>& b) {
  if (b.size() < 8) return;
  WriteU64(b.data() + b.size() - 8, Checksum64(b.data(), b.size() - 8));
}

// Recomputes each section checksum whose (offset, stored size) lies inside the file, then the
// header checksum, which covers the section table.
inline void RepairShardChecksums(std::vector<std::byte>& b) {
  if (b.size() < kShardHeaderBytes) return;
  for (size_t k = 0; k < kNumSections; ++k) {
    std::byte* entry = b.data() + kShardFixedHeaderBytes + k * kSectionEntryBytes;
    const uint64_t offset = ReadU64(entry + 8), stored = ReadU64(entry + 16);
    if (offset <= b.size() && stored <= b.size() - offset) WriteU64(entry + 32, Checksum64(b.data() + offset, stored));
  }
  WriteU64(b.data() + kShardHeaderBytes - 8, Checksum64(b.data(), kShardHeaderBytes - 8));
}

// The fixed small shard directory fuzz_shard also decodes against: testutil's tiny dataset
// (6 nodes, 3 features, 2 classes) in 2 clusters, as fuzz_seed_corpus writes it (it checks
// that its output matches, so the "tiny-p2" seeds pass this expectation unmutated).
struct SmallManifest {
  uint64_t num_nodes = 6;
  uint32_t feat_dim = 3;
  uint32_t num_classes = 2;
  uint32_t cluster_sizes[2] = {3, 3};
};
inline constexpr SmallManifest kSmallManifest{};

}  // namespace cgcn::fuzz
