#include "cgcn/manifest.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "cgcn/checksum.h"
#include "util/bytes.h"

namespace cgcn {
namespace {

Manifest Sample() {
  Manifest m;
  m.num_nodes = 10;
  m.num_edges = 12;
  m.feat_dim = 3;
  m.num_classes = 2;
  m.num_parts = 2;
  m.seed = -5;
  m.zstd_level = 3;
  m.edge_cut = 2;
  m.num_train = 3;
  m.num_valid = 2;
  m.num_test = 4;
  m.input_fingerprint = 0x0123456789abcdefULL;
  m.input_bytes = 999;
  m.split_name = "public";
  m.shards = {{6, 12, 3, 100, 200, 7}, {4, 8, 1, 50, 150, 9}};
  return m;
}

TEST(Manifest, RoundTrip) {
  const Manifest m = Sample();
  const auto bytes = EncodeManifest(m);
  Result<Manifest> r = DecodeManifest(bytes, "MANIFEST");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_nodes, 10u);
  EXPECT_EQ(r->seed, -5);
  EXPECT_EQ(r->split_name, "public");
  EXPECT_EQ(r->input_fingerprint, m.input_fingerprint);
  ASSERT_EQ(r->shards.size(), 2u);
  EXPECT_EQ(r->shards[1].num_nodes, 4u);
  EXPECT_EQ(r->shards[1].header_checksum, 9u);
  EXPECT_EQ(r->ClusterOffsets(), (std::vector<uint64_t>{0, 6, 10}));
  EXPECT_EQ(ShardFileName(42), "shard-000042.cgs");
}

TEST(Manifest, EveryFlippedByteAndTruncationIsRejected) {
  const auto good = EncodeManifest(Sample());
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= std::byte{0x10};
    Result<Manifest> r = DecodeManifest(bad, "dir/MANIFEST");
    ASSERT_FALSE(r.ok()) << "byte " << i;
    EXPECT_NE(r.status().message().find("dir/MANIFEST"), std::string::npos);
  }
  for (size_t len = 0; len < good.size(); ++len)
    ASSERT_FALSE(DecodeManifest(std::span(good).first(len), "m").ok()) << "length " << len;
}

TEST(Manifest, RejectsInconsistentCountsEvenWithValidChecksum) {
  Manifest m = Sample();
  m.shards[0].num_nodes = 7;  // sums to 11, header says 10
  Result<Manifest> r = DecodeManifest(EncodeManifest(m), "m");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("node counts sum to 11"), std::string::npos) << r.status().message();
  m = Sample();
  m.num_parts = 1u << 30;
  EXPECT_FALSE(DecodeManifest(EncodeManifest(m), "m").ok());
}

// Found by fuzz_manifest: the three split counts were summed in u64, so counts whose sum wraps
// past 2^64 to a small number passed the "split sizes exceed the node count" check.
TEST(Manifest, RejectsSplitCountsWhoseSumWrapsAround) {
  Manifest m = Sample();
  m.num_train = 2;
  m.num_valid = ~uint64_t{0} - 254;  // 2^64 - 255
  m.num_test = 255;                  // train + valid + test = 2^64 + 2, i.e. 2 in u64
  Result<Manifest> r = DecodeManifest(EncodeManifest(m), "m");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("split sizes exceed the node count"), std::string::npos) << r.status().message();
  m = Sample();
  m.num_test = m.num_nodes - m.num_train - m.num_valid;  // exactly N: still fine
  EXPECT_TRUE(DecodeManifest(EncodeManifest(m), "m").ok());
}

// The fields of MANIFEST at the offsets docs/FORMAT.md gives (numbers on purpose), and a bad field
// named by its byte and its name.
TEST(Manifest, FieldsSitWhereTheFormatSaysAndErrorsNameThem) {
  const Manifest m = Sample();
  const auto b = EncodeManifest(m);
  auto u32 = [&](size_t at) { return LoadU32(b.data() + at); };
  auto u64 = [&](size_t at) { return LoadU64(b.data() + at); };
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "CGCNMANI");
  EXPECT_EQ(u32(8), kManifestVersion);
  EXPECT_EQ(u32(12), 2u);
  EXPECT_EQ(u64(16), 10u);
  EXPECT_EQ(u64(24), 12u);
  EXPECT_EQ(u32(32), 3u);
  EXPECT_EQ(u32(36), 2u);
  EXPECT_EQ(static_cast<int64_t>(u64(40)), -5);
  EXPECT_EQ(u32(48), 3u);
  EXPECT_EQ(u32(52), 0u);
  EXPECT_EQ(u64(56), 2u);
  EXPECT_EQ(u64(64), 3u);
  EXPECT_EQ(u64(72), 2u);
  EXPECT_EQ(u64(80), 4u);
  EXPECT_EQ(u64(88), m.input_fingerprint);
  EXPECT_EQ(u64(96), 999u);
  EXPECT_EQ(u32(104), 6u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()) + 108, 6), "public");
  EXPECT_EQ(u32(114), 0u);  // input file records
  EXPECT_EQ(u32(118), 0u);  // feature source: file (version 3)
  EXPECT_EQ(b.size(), 122 + 2 * 48 + 8u);

  auto error = [](const Manifest& bad) { return DecodeManifest(EncodeManifest(bad), "M").status().message(); };
  Manifest bad = Sample();
  bad.feat_dim = 0;
  EXPECT_EQ(error(bad), "M: byte 32 (manifest field feat_dim): feature dimension 0 outside [1, 2^24]");
  bad = Sample();
  bad.num_parts = 1u << 30;
  EXPECT_EQ(error(bad), "M: byte 12 (manifest field num_parts): part count 1073741824 outside [1, 2^24]");
  bad = Sample();
  bad.edge_cut = 13;
  EXPECT_EQ(error(bad), "M: byte 56 (manifest field edge_cut): edge cut exceeds the edge count");
  bad = Sample();
  bad.num_test = 6;
  EXPECT_EQ(error(bad),
            "M: bytes 64-87 (manifest fields num_train, num_valid, num_test): split sizes exceed the node count");
}

// Version 3 (docs/FORMAT.md's change log): written as 3; 1 and 2 are still read (their layout is
// version 3's without the feature source word after the input file records, and byte 52 zero),
// as multi-class with features from a file; any other version is refused by its number.
std::vector<std::byte> AsOlderVersion(const Manifest& m, uint32_t v) {
  std::vector<std::byte> b = EncodeManifest(m);
  const size_t feature_source_at = 108 + m.split_name.size() + 4;  // no input file records in Sample()
  if (v < 3)
    b.erase(b.begin() + static_cast<std::ptrdiff_t>(feature_source_at),
            b.begin() + static_cast<std::ptrdiff_t>(feature_source_at + 4));
  std::memcpy(b.data() + 8, &v, 4);
  const uint64_t sum = Checksum64(b.data(), b.size() - 8);
  std::memcpy(b.data() + b.size() - 8, &sum, 8);
  return b;
}

TEST(Manifest, WritesVersion3ReadsVersions1To3RefusesOthers) {
  const Manifest m = Sample();
  EXPECT_EQ(LoadU32(EncodeManifest(m).data() + 8), 3u);
  for (const uint32_t v : {1u, 2u, 3u}) {
    Result<Manifest> r = DecodeManifest(AsOlderVersion(m, v), "M");
    ASSERT_TRUE(r.ok()) << v << ": " << r.status().ToString();
    EXPECT_EQ(r->version, v);
    EXPECT_EQ(r->num_edges, m.num_edges);
    EXPECT_EQ(r->label_tasks, 0u);
    EXPECT_EQ(r->feature_source.kind, FeatureSourceKind::kFile);
    EXPECT_EQ(r->shards[1].header_checksum, 9u);
  }
  for (const uint32_t v : {0u, 4u, 0xffffffffu})
    EXPECT_EQ(DecodeManifest(AsOlderVersion(m, v), "M").status().message(),
              "M: byte 8 (manifest field version): unsupported manifest version " + std::to_string(v) +
                  " (this build reads 1 to 3)");
}

// Version 3's label kind (byte 52) and feature source, byte by byte as docs/FORMAT.md gives them.
TEST(Manifest, Version3RecordsLabelTasksAndFastRpSource) {
  Manifest m = Sample();
  m.num_classes = 39;
  m.label_tasks = 39;
  m.feat_dim = 4;
  m.feature_source.kind = FeatureSourceKind::kFastRp;
  m.feature_source.fastrp.dim = 3;
  m.feature_source.fastrp.weights = {0.0f, 1.0f, 2.5f};
  m.feature_source.fastrp.beta = -0.5f;
  m.feature_source.fastrp.sparsity = 3.0;
  m.feature_source.fastrp.seed = 77;
  m.feature_source.fastrp.standardize = true;
  m.feature_source.fastrp.log_degree = true;  // width 3 + 1 = feat_dim
  const auto b = EncodeManifest(m);
  auto u32 = [&](size_t at) { return LoadU32(b.data() + at); };
  auto f32 = [&](size_t at) { return std::bit_cast<float>(LoadU32(b.data() + at)); };
  EXPECT_EQ(u32(52), 39u);
  EXPECT_EQ(u32(118), 1u);  // fastrp
  EXPECT_EQ(u32(122), 3u);  // dim
  EXPECT_EQ(u32(126), 3u);  // weight count
  EXPECT_EQ(f32(130), 0.0f);
  EXPECT_EQ(f32(134), 1.0f);
  EXPECT_EQ(f32(138), 2.5f);
  EXPECT_EQ(f32(142), -0.5f);                                      // beta
  EXPECT_EQ(std::bit_cast<double>(LoadU64(b.data() + 146)), 3.0);  // s
  EXPECT_EQ(LoadU64(b.data() + 154), 77u);                         // seed
  EXPECT_EQ(u32(162), 3u);                                         // flags: standardize | log-degree
  EXPECT_EQ(b.size(), 166 + 2 * 48 + 8u);
  Result<Manifest> r = DecodeManifest(b, "M");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->multi_label());
  EXPECT_EQ(r->label_tasks, 39u);
  EXPECT_EQ(r->feature_source.kind, FeatureSourceKind::kFastRp);
  EXPECT_EQ(r->feature_source.fastrp.weights, m.feature_source.fastrp.weights);
  EXPECT_EQ(r->feature_source.fastrp.seed, 77u);
  EXPECT_TRUE(r->feature_source.fastrp.log_degree);
  EXPECT_EQ(r->feature_source.Describe(),
            "fastrp(dim 3, weights [0,1,2.5], beta -0.5, s 3, seed 77, standardize, log-degree)");

  auto error = [](const Manifest& bad) { return DecodeManifest(EncodeManifest(bad), "M").status().message(); };
  Manifest bad = m;
  bad.label_tasks = 38;
  EXPECT_EQ(error(bad),
            "M: byte 52 (manifest field label_tasks): label task count 38, expected 0 (multi-class) or the class count "
            "39 (at least 2, multi-label)");
  bad = m;
  bad.feat_dim = 5;
  EXPECT_EQ(error(bad),
            "M: byte 118: FastRP feature source of width 4 and s 3.000000 disagrees with the feature dimension 5 (or s "
            "< 1)");
  // A version-2 manifest must have zero at byte 52.
  Manifest old = Sample();
  old.num_classes = 2;
  old.label_tasks = 2;
  EXPECT_EQ(DecodeManifest(AsOlderVersion(old, 2), "M").status().message(),
            "M: byte 52 (manifest field label_tasks): reserved field is not zero (version 2)");
  // An unknown feature source kind.
  auto unknown = EncodeManifest(Sample());
  const uint32_t kind = 7;
  std::memcpy(unknown.data() + 118, &kind, 4);
  const uint64_t sum = Checksum64(unknown.data(), unknown.size() - 8);
  std::memcpy(unknown.data() + unknown.size() - 8, &sum, 8);
  EXPECT_EQ(DecodeManifest(unknown, "M").status().message(),
            "M: byte 118: feature source 7, expected 0 (file) or 1 (fastrp)");
}

// 2E past 2^31 - 1 (and E past 2^32) is valid now; E is bounded by N(N-1)/2 alone, and per-shard
// sums that could wrap around are refused, not wrapped.
TEST(Manifest, EdgeCountsPast2To31AreValidAndBoundedByASimpleGraph) {
  Manifest m = Sample();
  m.num_nodes = 200'000;
  m.num_edges = 5'000'000'000;  // 2E = 1e10
  m.edge_cut = 1'000'000'000;
  m.num_train = m.num_valid = m.num_test = 0;
  m.shards = {{100'000, 4'000'000'000, 1'000'000'000, 1, 1, 1}, {100'000, 4'000'000'000, 1'000'000'000, 1, 1, 1}};
  Result<Manifest> r = DecodeManifest(EncodeManifest(m), "M");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_edges, 5'000'000'000u);
  EXPECT_EQ(r->shards[0].intra_entries, 4'000'000'000u);
  // N(N-1)/2 = 19999900000 for N = 200000: one more is refused.
  m.num_edges = 19'999'900'001;
  EXPECT_EQ(DecodeManifest(EncodeManifest(m), "M").status().message(),
            "M: byte 24 (manifest field num_edges): edge count 19999900001 exceeds N(N-1)/2 = 19999900000 for "
            "200000 nodes");
  // Shard counts that sum past 2^64 if added blindly: each within 2E, their sum is not.
  m = Sample();
  m.num_nodes = 2'000'000'000;
  m.num_edges = m.num_nodes * (m.num_nodes - 1) / 2;  // 2E ~ 4e18
  m.edge_cut = 0;
  m.shards = {{1'000'000'000, 2 * m.num_edges, 0, 1, 1, 1},
              {500'000'000, 2 * m.num_edges, 0, 1, 1, 1},
              {250'000'000, 2 * m.num_edges, 0, 1, 1, 1},
              {250'000'000, 2 * m.num_edges, 0, 1, 1, 1},
              {0, 2 * m.num_edges, 0, 1, 1, 1}};
  m.num_parts = 5;
  const std::string msg = DecodeManifest(EncodeManifest(m), "M").status().message();
  EXPECT_NE(msg.find("shard edge counts (intra 7999999996000000000, inter 0) disagree with 1999999999000000000 edges"),
            std::string::npos)
      << msg;
}

// docs/FORMAT.md's change log: the input file records (6b38fa5) were added without a version bump.
// A manifest of the layout before them (no K, no records) must be refused by this reader, not
// misread, whether shard 0's node count (read where K now is) is a plausible K or not.
TEST(Manifest, LayoutBeforeInputRecordsIsRefusedNotMisread) {
  for (const uint32_t shard0_nodes : {0u, 1u, 6u, 64u, 65u, 1000u}) {
    Manifest m = Sample();
    m.num_nodes = shard0_nodes + 4;
    m.num_edges = 6;  // at most N(N-1)/2 = 6 edges for N = 4
    m.shards[0].num_nodes = shard0_nodes;
    m.shards[0].intra_entries = 0;
    m.shards[0].inter_entries = 0;
    m.shards[1].intra_entries = 2 * m.num_edges - 2 * m.edge_cut;
    m.shards[1].inter_entries = 2 * m.edge_cut;
    m.num_train = m.num_valid = m.num_test = 0;
    auto current = AsOlderVersion(m, 2);  // the layout the input records went into (no feature source)
    ASSERT_TRUE(DecodeManifest(current, "new").ok()) << shard0_nodes;
    // The old layout: the same bytes without K (4 bytes after the split name, 0 records), resealed.
    const size_t k_at = 108 + m.split_name.size();
    ASSERT_EQ(LoadU32(current.data() + k_at), 0u);
    std::vector<std::byte> old(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(k_at));
    old.insert(old.end(), current.begin() + static_cast<std::ptrdiff_t>(k_at) + 4, current.end() - 8);
    const uint64_t sum = Checksum64(old.data(), old.size());
    const auto* sum_bytes = reinterpret_cast<const std::byte*>(&sum);
    old.insert(old.end(), sum_bytes, sum_bytes + 8);
    ASSERT_EQ(old.size(), 116 + m.split_name.size() + 48 * m.shards.size());
    Result<Manifest> r = DecodeManifest(old, "old");
    EXPECT_FALSE(r.ok()) << "shard 0 with " << shard0_nodes << " nodes: an old manifest was accepted";
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  }
}

}  // namespace
}  // namespace cgcn
