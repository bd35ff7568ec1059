#include "cgcn/manifest.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cgcn
