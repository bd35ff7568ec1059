#include "cgcn/shard_format.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>

#include "cgcn/checksum.h"
#include "cgcn/split.h"
#include "util/bytes.h"

namespace cgcn {
namespace {

// Cluster 1 of 3: nodes {4, 7, 9} with intra edges 4-7, 7-9, and edges to
// cluster 0 (local 0 -> 2, local 2 -> 0) and cluster 2 (local 1 -> 1).
ClusterData SampleCluster() {
  ClusterData c;
  c.cluster_id = 1;
  c.num_clusters = 3;
  c.num_nodes = 3;
  c.feat_dim = 2;
  c.num_classes = 4;
  c.node_ids = {4, 7, 9};
  c.adj_offsets = {0, 1, 3, 4};
  c.adj_neighbors = {1, 0, 2, 1};
  c.inter_groups = {{0, 2, 0}, {2, 1, 2}};
  c.inter_src = {0, 2, 1};
  c.inter_dst = {2, 0, 1};
  c.features = {1.0f, -2.0f, 0.5f, 0.0f, 3.25f, 1e-3f};
  c.labels = {3, 0, 1};
  c.split = {kSplitTrain, 0, kSplitTest};
  return c;
}

ShardExpectation Expect(const ClusterData& c, size_t file_size) {
  ShardExpectation e;
  e.cluster_id = c.cluster_id;
  e.num_clusters = c.num_clusters;
  e.num_nodes = c.num_nodes;
  e.feat_dim = c.feat_dim;
  e.num_classes = c.num_classes;
  e.total_nodes = 10;
  e.file_size = file_size;
  return e;
}

TEST(ShardFormat, RoundTrip) {
  const ClusterData c = SampleCluster();
  Result<std::vector<std::byte>> bytes = EncodeShard(c, 3);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(std::memcmp(bytes->data(), "CGCNSHRD", 8), 0);
  ShardDecoder dec;
  ClusterData out;
  ASSERT_TRUE(dec.Decode(*bytes, "s", Expect(c, bytes->size()), kAllSections, out).ok());
  EXPECT_EQ(out.node_ids, c.node_ids);
  EXPECT_EQ(out.adj_offsets, c.adj_offsets);
  EXPECT_EQ(out.adj_neighbors, c.adj_neighbors);
  ASSERT_EQ(out.inter_groups.size(), 2u);
  EXPECT_EQ(out.inter_groups[1].cluster, 2u);
  EXPECT_EQ(out.inter_groups[1].count, 1u);
  EXPECT_EQ(out.inter_groups[1].begin, 2u);
  EXPECT_EQ(out.inter_src, c.inter_src);
  EXPECT_EQ(out.inter_dst, c.inter_dst);
  EXPECT_EQ(out.features, c.features);
  EXPECT_EQ(out.labels, c.labels);
  EXPECT_EQ(out.split, c.split);
  EXPECT_EQ(dec.decompressed_bytes(), 12u + 4 * (4 + 4) + 8 * (2 + 3) + 24 + 12 + 3);
}

TEST(ShardFormat, PartialDecodeLeavesOtherSectionsEmpty) {
  const ClusterData c = SampleCluster();
  const auto bytes = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out = SampleCluster();
  ASSERT_TRUE(dec.Decode(bytes, "s", Expect(c, bytes.size()), SectionBit(SectionKind::kLabels), out).ok());
  EXPECT_EQ(out.labels, c.labels);
  EXPECT_TRUE(out.features.empty());
  EXPECT_TRUE(out.adj_neighbors.empty());
}

TEST(ShardFormat, EmptyCluster) {
  ClusterData c;
  c.cluster_id = 0;
  c.num_clusters = 2;
  c.feat_dim = 5;
  c.num_classes = 2;
  c.adj_offsets = {0};
  const auto bytes = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out;
  ShardExpectation e = Expect(c, bytes.size());
  ASSERT_TRUE(dec.Decode(bytes, "s", e, kAllSections, out).ok());
  EXPECT_EQ(out.num_nodes, 0u);
  EXPECT_EQ(out.adj_offsets, std::vector<uint32_t>{0});
}

// An empty part of a multi-label graph: every section is empty, and a null data() must never
// reach memcpy (UBSan in scripts/sanitize.sh; found by fuzz_shard in CI).
TEST(ShardFormat, EmptyMultiLabelCluster) {
  ClusterData c;
  c.cluster_id = 1;
  c.num_clusters = 2;
  c.feat_dim = 3;
  c.num_classes = 5;  // a multi-label graph's class count is its task count
  c.label_tasks = 5;
  c.adj_offsets = {0};
  for (const double min_ratio : {kDefaultMinCompressionRatio, 0.0}) {  // raw sections, then zstd frames
    const auto bytes = EncodeShard(c, 3, min_ratio);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    ShardDecoder dec;
    ClusterData out;
    ShardExpectation e = Expect(c, bytes->size());
    e.label_tasks = c.label_tasks;
    const Status s = dec.Decode(*bytes, "s", e, kAllSections, out);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(out.num_nodes, 0u);
    EXPECT_EQ(out.label_tasks, 5u);
    EXPECT_TRUE(out.labels.empty());
    EXPECT_TRUE(out.label_bits.empty());
    EXPECT_TRUE(out.features.empty());
  }
}

// Every single-byte change and every truncation must be reported as corruption, never
// accepted and never crash. (Checksums cover every byte of the file.)
TEST(ShardFormat, EveryFlippedByteAndTruncationIsCaught) {
  const ClusterData c = SampleCluster();
  const auto good = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out;
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= std::byte{0x5a};
    const Status s = dec.Decode(bad, "shard-x.cgs", Expect(c, bad.size()), kAllSections, out);
    ASSERT_FALSE(s.ok()) << "flipped byte " << i << " accepted";
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
    EXPECT_NE(s.message().find("shard-x.cgs"), std::string::npos) << s.message();
  }
  for (size_t len = 0; len < good.size(); ++len) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    ShardExpectation e = Expect(c, 0);  // no size hint: the format itself must notice
    const Status s = dec.Decode(cut, "shard-x.cgs", e, kAllSections, out);
    ASSERT_FALSE(s.ok()) << "truncated to " << len << " accepted";
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
  }
}

TEST(ShardFormat, SectionChecksumErrorNamesTheSection) {
  const ClusterData c = SampleCluster();
  auto bytes = *EncodeShard(c, 3);
  Result<ShardHeader> h = ParseShardHeader(bytes, "f");
  ASSERT_TRUE(h.ok());
  const SectionEntry& feat = h->sections[static_cast<int>(SectionKind::kFeatures) - 1];
  bytes[feat.offset + feat.stored_size / 2] ^= std::byte{1};
  ShardDecoder dec;
  ClusterData out;
  const Status s = dec.Decode(bytes, "f", Expect(c, bytes.size()), kAllSections, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("section 'features'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s.message();
  // Sections not asked for are not checked: labels alone still decode.
  EXPECT_TRUE(dec.Decode(bytes, "f", Expect(c, bytes.size()), SectionBit(SectionKind::kLabels), out).ok());
}

TEST(ShardFormat, RejectsDisagreementWithManifest) {
  const ClusterData c = SampleCluster();
  const auto bytes = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out;
  ShardExpectation e = Expect(c, bytes.size());
  e.num_nodes = 4;
  Status s = dec.Decode(bytes, "f", e, kAllSections, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("node count"), std::string::npos);
  e = Expect(c, bytes.size());
  e.header_checksum = 12345;
  s = dec.Decode(bytes, "f", e, kAllSections, out);
  EXPECT_NE(s.message().find("stale manifest"), std::string::npos) << s.message();
  e = Expect(c, bytes.size());
  const uint32_t sizes[3] = {2, 3, 1};  // cluster 0 has only 2 nodes: dst 2 is out of range
  e.cluster_sizes = sizes;
  s = dec.Decode(bytes, "f", e, kAllSections, out);
  EXPECT_NE(s.message().find("section 'inter'"), std::string::npos) << s.message();
}

TEST(ShardFormat, RejectsNonFiniteFeaturesEvenWithValidChecksums) {
  ClusterData c = SampleCluster();
  c.features[3] = std::nanf("");
  const auto bytes = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out;
  const Status s = dec.Decode(bytes, "f", Expect(c, bytes.size()), kAllSections, out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("row 1 column 1"), std::string::npos) << s.message();
}

// Found by fuzz_shard under UBSan: a cluster whose nodes have no intra edges made Decode pass
// the empty neighbour vector's null data() to memcpy (undefined behaviour, reported by
// scripts/sanitize.sh; harmless-looking in a plain build).
TEST(ShardFormat, NodesWithoutIntraEdgesDecode) {
  ClusterData c;
  c.cluster_id = 0;
  c.num_clusters = 2;
  c.num_nodes = 2;
  c.feat_dim = 1;
  c.num_classes = 2;
  c.node_ids = {1, 4};
  c.adj_offsets = {0, 0, 0};
  c.features = {0.5f, 2.0f};
  c.labels = {1, 0};
  c.split = {kSplitValid, 0};
  const auto bytes = *EncodeShard(c, 3);
  ShardDecoder dec;
  ClusterData out;
  const Status s = dec.Decode(bytes, "s", Expect(c, bytes.size()), kAllSections, out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.adj_offsets, (std::vector<uint32_t>{0, 0, 0}));
  EXPECT_TRUE(out.adj_neighbors.empty());
  EXPECT_EQ(out.node_ids, c.node_ids);
  EXPECT_EQ(out.features, c.features);
}

// Sets a u64 header field and re-seals the header checksum, as a crafted file would.
void PatchHeader(std::vector<std::byte>& b, size_t offset, uint64_t value) {
  std::memcpy(b.data() + offset, &value, 8);
  const uint64_t sum = Checksum64(b.data(), kHeaderChecksumOffset);
  std::memcpy(b.data() + kHeaderChecksumOffset, &sum, 8);
}
constexpr size_t kIntraField = shard_header::kIntraEntries.offset, kInterField = shard_header::kInterEntries.offset;
size_t RawSizeField(SectionKind k) {
  return SectionEntryOffset(static_cast<uint32_t>(k) - 1) + section_entry::kRawSize.offset;
}

// Found with fuzz_shard: the intra and inter counts come from the header alone (the manifest's
// expectation does not carry them), and Decode allocated for them before reading the section, so
// a 3-node shard claiming 2^31-1 intra entries made it allocate 2 x 8 GiB. Counts no valid section
// can hold are now refused first: at most n(n-1) intra entries, at most n x (N - n) inter entries.
TEST(ShardFormat, RejectsImpossibleEntryCountsBeforeAllocating) {
  const ClusterData c = SampleCluster();                  // n = 3 of N = 10, 4 intra and 3 inter entries
  const auto good = *EncodeShard(c, 3, /*min_ratio=*/0);  // every section zstd: raw sizes can be patched alone
  for (const uint64_t intra : {uint64_t{7}, uint64_t{0x7fffffff}}) {
    auto bad = good;
    PatchHeader(bad, kIntraField, intra);
    PatchHeader(bad, RawSizeField(SectionKind::kAdjacency), 4 * (3 + 1 + intra));
    Result<ShardHeader> h = ParseShardHeader(bad, "f");
    ASSERT_FALSE(h.ok()) << "intra " << intra;
    EXPECT_NE(h.status().message().find("exceeds n(n-1) = 6 for 3 nodes"), std::string::npos) << h.status().message();
  }
  auto bad = good;
  PatchHeader(bad, kInterField, 22);  // n x (N - n) = 21
  PatchHeader(bad, RawSizeField(SectionKind::kInter), 8 * (2 + 22));
  ASSERT_TRUE(ParseShardHeader(bad, "f").ok());  // the header alone cannot know N
  ShardDecoder dec;
  ClusterData out;
  const Status s = dec.Decode(bad, "f", Expect(c, bad.size()), kAllSections, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("more than n x (N - n) = 21"), std::string::npos) << s.message();
}

// Pairs within an inter group are distinct and sorted by (src, dst), as the writer makes them; a
// repeated or unordered pair is refused (and distinctness is what bounds the count above).
TEST(ShardFormat, RejectsRepeatedOrUnorderedInterEdges) {
  ShardDecoder dec;
  ClusterData out;
  ClusterData c = SampleCluster();
  c.inter_src = {0, 0, 1};  // group for cluster 0: (0, 2) twice
  c.inter_dst = {2, 2, 1};
  auto bytes = *EncodeShard(c, 3);
  Status s = dec.Decode(bytes, "f", Expect(c, bytes.size()), kAllSections, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not strictly ascending"), std::string::npos) << s.message();
  c = SampleCluster();
  c.inter_src = {2, 0, 1};  // (2, 0) before (0, 2)
  c.inter_dst = {0, 2, 1};
  bytes = *EncodeShard(c, 3);
  s = dec.Decode(bytes, "f", Expect(c, bytes.size()), kAllSections, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("section 'inter'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cgcn

namespace cgcn {
namespace {

uint32_t CodecOf(const std::vector<std::byte>& b, SectionKind k) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + SectionEntryOffset(static_cast<uint32_t>(k) - 1) + section_entry::kCodec.offset, 4);
  return v;
}

// A cluster of n nodes on a path, with `features` filling the feature section.
ClusterData PathCluster(uint32_t n, uint32_t f, const std::function<float(uint64_t)>& feature) {
  ClusterData c;
  c.cluster_id = 0;
  c.num_clusters = 1;
  c.num_nodes = n;
  c.feat_dim = f;
  c.num_classes = 2;
  c.adj_offsets.push_back(0);
  for (uint32_t i = 0; i < n; ++i) {
    c.node_ids.push_back(i);
    if (i > 0) c.adj_neighbors.push_back(i - 1);
    if (i + 1 < n) c.adj_neighbors.push_back(i + 1);
    c.adj_offsets.push_back(static_cast<uint32_t>(c.adj_neighbors.size()));
    c.labels.push_back(i % 2);
    c.split.push_back(kSplitTrain);
  }
  for (uint64_t k = 0; k < uint64_t{n} * f; ++k) c.features.push_back(feature(k));
  return c;
}

ShardExpectation ExpectAlone(const ClusterData& c, size_t file_size) {
  ShardExpectation e = Expect(c, file_size);
  e.total_nodes = c.num_nodes;
  return e;
}

// The codec rule: zstd where it shrinks a section by at least min_ratio, raw (codec 0) otherwise;
// either way the decoded cluster is the encoded one.
TEST(ShardFormat, SectionsZstdShrinksLittleAreStoredRawAndDecodeTheSame) {
  uint64_t state = 42;
  auto noise = [&](uint64_t) {  // random mantissas: zstd gains almost nothing
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<int32_t>(state >> 33)) * 1e-9f;
  };
  const ClusterData random = PathCluster(500, 64, noise);
  const ClusterData smooth = PathCluster(500, 64, [](uint64_t k) { return static_cast<float>(k % 7); });
  for (const ClusterData* c : {&random, &smooth}) {
    for (const double ratio : {0.0, kDefaultMinCompressionRatio, 1e9}) {
      SCOPED_TRACE(testing::Message() << (c == &random ? "random" : "smooth") << " features, min ratio " << ratio);
      const auto bytes = *EncodeShard(*c, 3, ratio);
      const uint32_t codec = CodecOf(bytes, SectionKind::kFeatures);
      const uint32_t want = ratio == 0.0   ? kCodecZstd
                            : ratio == 1e9 ? kCodecRaw
                            : c == &random ? kCodecRaw
                                           : kCodecZstd;
      EXPECT_EQ(codec, want);
      if (codec == kCodecRaw) {  // stored bytes are the raw floats, at the section's offset
        const Result<ShardHeader> h = ParseShardHeader(bytes, "s");
        ASSERT_TRUE(h.ok()) << h.status().ToString();
        const SectionEntry& e = h->sections[static_cast<size_t>(SectionKind::kFeatures) - 1];
        ASSERT_EQ(e.stored_size, 4 * c->features.size());
        EXPECT_EQ(std::memcmp(bytes.data() + e.offset, c->features.data(), e.stored_size), 0);
      }
      ShardDecoder dec;
      ClusterData out;
      const Status s = dec.Decode(bytes, "s", ExpectAlone(*c, bytes.size()), kAllSections, out);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(out.node_ids, c->node_ids);
      EXPECT_EQ(out.adj_offsets, c->adj_offsets);
      EXPECT_EQ(out.adj_neighbors, c->adj_neighbors);
      EXPECT_EQ(out.features, c->features);
      EXPECT_EQ(out.labels, c->labels);
      EXPECT_EQ(out.split, c->split);
    }
  }
}

TEST(ShardFormat, RejectsUnknownCodecAndRawSectionsOfTheWrongSize) {
  const ClusterData c = SampleCluster();
  const auto raw = *EncodeShard(c, 3, 1e9);  // every section raw
  ASSERT_EQ(CodecOf(raw, SectionKind::kLabels), kCodecRaw);
  const size_t codec_at =
      SectionEntryOffset(static_cast<uint32_t>(SectionKind::kLabels) - 1) + section_entry::kCodec.offset;
  auto reseal = [](std::vector<std::byte>& b) {  // a header checksum that matches, so the field check is what fails
    const uint64_t sum = Checksum64(b.data(), kHeaderChecksumOffset);
    std::memcpy(b.data() + kHeaderChecksumOffset, &sum, 8);
  };
  auto unknown = raw;
  const uint32_t two = 2;
  std::memcpy(unknown.data() + codec_at, &two, 4);
  reseal(unknown);
  Result<ShardHeader> h = ParseShardHeader(unknown, "f");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("byte " + std::to_string(codec_at) +
                                      " (section table entry 4, field codec): section 'labels': codec 2, expected 0 "
                                      "(raw) or 1 (zstd)"),
            std::string::npos)
      << h.status().message();
  // A raw section's stored size must equal its raw size: here the labels claim one byte less.
  auto resized = raw;
  PatchHeader(resized, RawSizeField(SectionKind::kLabels) - 8, 11);
  reseal(resized);
  h = ParseShardHeader(resized, "f");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("section 'labels': stored size 11 impossible for 12 raw bytes with codec 0"),
            std::string::npos)
      << h.status().message();
}

// Decode reuses the output's buffers without clearing them first: a smaller cluster decoded
// into buffers of a larger one, and a partial decode after a full one, must show nothing stale.
TEST(ShardFormat, ReusedOutputBuffersHoldOnlyTheNewCluster) {
  const ClusterData big = PathCluster(300, 8, [](uint64_t k) { return static_cast<float>(k) * 0.5f; });
  const ClusterData small = SampleCluster();
  const auto big_bytes = *EncodeShard(big, 3);
  const auto small_bytes = *EncodeShard(small, 3);
  ShardDecoder dec;
  ClusterData out;
  ASSERT_TRUE(dec.Decode(big_bytes, "big", ExpectAlone(big, big_bytes.size()), kAllSections, out).ok());
  ASSERT_TRUE(dec.Decode(small_bytes, "small", Expect(small, small_bytes.size()), kAllSections, out).ok());
  EXPECT_EQ(out.node_ids, small.node_ids);
  EXPECT_EQ(out.adj_offsets, small.adj_offsets);
  EXPECT_EQ(out.adj_neighbors, small.adj_neighbors);
  EXPECT_EQ(out.inter_src, small.inter_src);
  EXPECT_EQ(out.features, small.features);
  EXPECT_EQ(out.labels, small.labels);
  ASSERT_TRUE(dec.Decode(big_bytes, "big", ExpectAlone(big, big_bytes.size()), kStructureSections, out).ok());
  EXPECT_EQ(out.adj_neighbors, big.adj_neighbors);
  EXPECT_TRUE(out.features.empty());
  EXPECT_TRUE(out.labels.empty());
  EXPECT_TRUE(out.split.empty());
}

// The tables of shard_format.h against the bytes EncodeShard writes, at the offsets docs/FORMAT.md
// gives (written out here as numbers on purpose: the constants must match the document).
TEST(ShardFormat, TablesMatchTheDocumentedLayout) {
  const ClusterData c = SampleCluster();
  for (const double ratio : {0.0, 1e9}) {  // every section zstd, then every one raw
    const auto b = *EncodeShard(c, 3, ratio);
    EXPECT_EQ(std::memcmp(b.data(), "CGCNSHRD", 8), 0);
    const std::pair<size_t, uint64_t> u32_fields[] = {{8, 3},  {12, 312}, {16, 1}, {20, 3}, {24, 3},
                                                      {28, 2}, {32, 4},   {36, 6}, {56, 2}, {60, 0}};
    for (const auto& [at, want] : u32_fields) EXPECT_EQ(LoadU32(b.data() + at), want) << "byte " << at;
    EXPECT_EQ(LoadU64(b.data() + 40), 4u);  // intra entries
    EXPECT_EQ(LoadU64(b.data() + 48), 3u);  // inter entries
    EXPECT_EQ(LoadU64(b.data() + 304), Checksum64(b.data(), 304));
    Result<ShardHeader> h = ParseShardHeader(b, "f");
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    uint64_t offset = 312;
    for (uint32_t k = 0; k < kNumSections; ++k) {
      const std::byte* entry = b.data() + 64 + 40 * k;
      const SectionSpec& spec = kSections[k];
      SCOPED_TRACE(spec.name);
      EXPECT_EQ(LoadU32(entry), k + 1);  // kind
      EXPECT_EQ(static_cast<uint32_t>(spec.kind), k + 1);
      EXPECT_EQ(&SectionSpecOf(spec.kind), &spec);
      EXPECT_STREQ(SectionName(spec.kind), spec.name);
      EXPECT_EQ(LoadU32(entry + 4), ratio == 0.0 ? kCodecZstd : kCodecRaw);
      EXPECT_NE(spec.codecs & CodecBit(LoadU32(entry + 4)), 0u);
      EXPECT_EQ(LoadU64(entry + 8), offset);
      EXPECT_EQ(LoadU64(entry + 24), spec.raw_bytes(*h));  // raw size = element_bytes x elements
      EXPECT_EQ(LoadU64(entry + 32), Checksum64(b.data() + offset, LoadU64(entry + 16)));
      offset += LoadU64(entry + 16);
    }
    EXPECT_EQ(offset, b.size());
  }
  // Element counts as FORMAT.md's section table states them, for n = 3, F = 2, intra = 4,
  // inter = 3, G = 2.
  const ShardHeader h = *ParseShardHeader(*EncodeShard(c, 3), "f");
  const uint64_t raw[kNumSections] = {4 * 3, 4 * (3 + 1 + 4), 8 * (2 + 3), 4 * 3 * 2, 4 * 3, 3};
  for (uint32_t k = 0; k < kNumSections; ++k) EXPECT_EQ(kSections[k].raw_bytes(h), raw[k]) << kSections[k].name;
  EXPECT_STREQ(SectionName(static_cast<SectionKind>(7)), "unknown");
  EXPECT_STREQ(CodecName(kCodecRaw), "raw");
  EXPECT_STREQ(CodecName(kCodecZstd), "zstd");
  EXPECT_STREQ(CodecName(kCodecBf16), "bf16");
  EXPECT_STREQ(CodecName(kCodecBf16Zstd), "bf16+zstd");
  EXPECT_STREQ(CodecName(kCodecF16), "f16");
  EXPECT_STREQ(CodecName(kCodecF16Zstd), "f16+zstd");
  EXPECT_STREQ(CodecName(6), "unknown");
  // Only the features section takes the 16-bit codecs.
  for (uint32_t k = 0; k < kNumSections; ++k)
    EXPECT_EQ(kSections[k].codecs, kSections[k].kind == SectionKind::kFeatures ? 0x3fu : 0x3u) << kSections[k].name;
}

// A bad header field is named by its byte and its name.
TEST(ShardFormat, HeaderErrorsNameTheByteAndTheField) {
  const auto good = *EncodeShard(SampleCluster(), 3);
  auto patched = [&](const FieldSpec& f, uint32_t value) {
    auto b = good;
    std::memcpy(b.data() + f.offset, &value, 4);
    const uint64_t sum = Checksum64(b.data(), kHeaderChecksumOffset);
    std::memcpy(b.data() + kHeaderChecksumOffset, &sum, 8);
    return ParseShardHeader(b, "s.cgs").status().message();
  };
  namespace f = shard_header;
  EXPECT_EQ(patched(f::kVersion, 4),
            "s.cgs: byte 8 (header field version): unsupported shard version 4 (this "
            "build reads 1 to 3)");
  EXPECT_EQ(patched(f::kVersion, 0),
            "s.cgs: byte 8 (header field version): unsupported shard version 0 (this "
            "build reads 1 to 3)");
  EXPECT_EQ(patched(f::kHeaderBytes, 64), "s.cgs: byte 12 (header field header_bytes): header size 64, expected 312");
  EXPECT_EQ(patched(f::kNumNodes, 0x80000000u),
            "s.cgs: byte 24 (header field num_nodes): node count 2147483648 exceeds 2^31-1");
  EXPECT_EQ(patched(f::kFeatDim, 0), "s.cgs: byte 28 (header field feat_dim): feature dimension 0 outside [1, 2^24]");
  EXPECT_EQ(patched(f::kNumSections, 5), "s.cgs: byte 36 (header field num_sections): section count 5, expected 6");
  EXPECT_EQ(patched(f::kLabelTasks, 1),
            "s.cgs: byte 60 (header field label_tasks): label task count 1, expected 0 (multi-class) or the class "
            "count 4 (at least 2, multi-label)");
  auto b = good;
  b[0] = std::byte{'X'};
  EXPECT_EQ(ParseShardHeader(b, "s.cgs").status().message(),
            "s.cgs: byte 0 (header field magic): bad magic, expected \"CGCNSHRD\" (not a cgcn shard file)");
  const uint32_t nodes_kind = 1;
  auto swapped = good;  // entry 1 claiming kind 1
  std::memcpy(swapped.data() + SectionEntryOffset(1) + section_entry::kKind.offset, &nodes_kind, 4);
  const uint64_t sum = Checksum64(swapped.data(), kHeaderChecksumOffset);
  std::memcpy(swapped.data() + kHeaderChecksumOffset, &sum, 8);
  EXPECT_EQ(ParseShardHeader(swapped, "s.cgs").status().message(),
            "s.cgs: byte 104 (section table entry 1, field kind): section 1 has kind 1, expected 2 (adjacency)");
}

// --- 16-bit feature codecs (--feature-dtype) ---

// The nearest value of a 16-bit format to x, ties to the even pattern, found by widening the
// patterns around x: an independent reference for the encoder's rounding.
uint16_t NearestPattern(float x, float (*widen)(uint16_t), uint16_t lo, uint16_t hi) {
  uint16_t best = lo;
  double best_d = INFINITY;
  for (uint32_t p = lo; p <= hi; ++p) {
    const float w = widen(static_cast<uint16_t>(p));
    if (!std::isfinite(w)) continue;
    const double d = std::fabs(static_cast<double>(w) - static_cast<double>(x));
    if (d < best_d || (d == best_d && (p & 1) == 0)) {
      best = static_cast<uint16_t>(p);
      best_d = d;
    }
  }
  return best;
}

TEST(FeatureCodec, KnownPatterns) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(-2.0f), 0xc000);
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f), 0x3f80);             // a tie rounds to the even pattern (down)
  EXPECT_EQ(FloatToBf16(1.0f + 3 * 0x1p-8f), 0x3f82);         // a tie rounds to the even pattern (up)
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);  // just above the tie: up
  EXPECT_EQ(FloatToBf16(3.4e38f), 0x7f80);                    // rounds past the largest finite: infinity
  EXPECT_EQ(FloatToF16(1.0f), 0x3c00);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00);  // the tie above the largest finite value: infinity
  EXPECT_EQ(FloatToF16(0.1f), 0x2e66);
  EXPECT_EQ(FloatToF16(0x1p-24f), 0x0001);  // the smallest subnormal
  EXPECT_EQ(FloatToF16(0x1p-26f), 0x0000);  // below half of it: zero
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(F16ToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToFloat(0x8001), -0x1p-24f);
}

// Every finite 16-bit pattern widens exactly and narrows back to itself; values between two
// patterns round to the nearer one.
TEST(FeatureCodec, EveryPatternRoundTripsAndRoundingIsToNearest) {
  for (uint32_t p = 0; p < 65536; ++p) {
    const auto v = static_cast<uint16_t>(p);
    if ((v & 0x7f80) != 0x7f80) {
      EXPECT_EQ(FloatToBf16(Bf16ToFloat(v)), v) << std::hex << p;
    }
    if ((v & 0x7c00) != 0x7c00) {
      EXPECT_EQ(FloatToF16(F16ToFloat(v)), v) << std::hex << p;
    }
  }
  uint64_t state = 12345;
  for (int i = 0; i < 2000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float x = std::ldexp(static_cast<float>(state >> 40) / 16777216.0f, static_cast<int>(state % 40) - 20) *
                    ((state >> 8) & 1 ? -1.0f : 1.0f);
    const uint16_t b = FloatToBf16(x), h = FloatToF16(x);
    const uint16_t sign = x < 0 ? 0x8000 : 0;
    // The reference searches the patterns of x's sign around the truncated one.
    const uint16_t bt = static_cast<uint16_t>(std::bit_cast<uint32_t>(x) >> 16);
    EXPECT_EQ(b, NearestPattern(x, Bf16ToFloat, bt, static_cast<uint16_t>(bt + 1))) << x;
    if (std::fabs(x) <= 65504.0f) {
      EXPECT_EQ(h, NearestPattern(x, F16ToFloat, sign, static_cast<uint16_t>(sign | 0x7bff))) << x;
    } else {
      EXPECT_EQ(h & 0x7fff, 0x7c00) << x;  // beyond f16's range: infinity (the encoder refuses it)
    }
  }
}

ClusterData WideFeatureCluster() {
  ClusterData c = SampleCluster();
  c.feat_dim = 40;
  c.features.resize(uint64_t{c.num_nodes} * c.feat_dim);
  for (size_t k = 0; k < c.features.size(); ++k)
    c.features[k] = std::sin(0.37f * static_cast<float>(k)) * std::pow(10.0f, static_cast<float>(k % 7) - 3.0f);
  return c;
}

// bf16 and f16 shards decode to the rounded features, framed (zstd) or plain, and everything
// else exactly; the features section's raw size (f32) is unchanged, its stored values take half.
TEST(FeatureCodec, ShardsDecodeToTheRoundedFeatures) {
  const ClusterData c = WideFeatureCluster();
  struct Case {
    FeatureDtype dtype;
    double min_ratio;
    uint32_t codec;
  };
  for (const Case& k : {Case{FeatureDtype::kBf16, 0.0, kCodecBf16Zstd}, Case{FeatureDtype::kBf16, 1e9, kCodecBf16},
                        Case{FeatureDtype::kF16, 0.0, kCodecF16Zstd}, Case{FeatureDtype::kF16, 1e9, kCodecF16}}) {
    SCOPED_TRACE(std::string(FeatureDtypeName(k.dtype)) + " min_ratio " + std::to_string(k.min_ratio));
    const Result<std::vector<std::byte>> bytes = EncodeShard(c, 3, k.min_ratio, k.dtype);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    const Result<ShardHeader> h = ParseShardHeader(*bytes, "s");
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(h->version, 3u);
    const SectionEntry& f = h->sections[static_cast<uint32_t>(SectionKind::kFeatures) - 1];
    EXPECT_EQ(f.codec, k.codec);
    EXPECT_EQ(f.raw_size, 4u * c.features.size());
    if (k.min_ratio > 1) {
      EXPECT_EQ(f.stored_size, 2u * c.features.size());
    }
    for (const SectionEntry& e : h->sections) {
      if (e.kind != SectionKind::kFeatures) {
        EXPECT_LE(e.codec, kCodecZstd);
      }
    }
    ShardDecoder dec;
    ClusterData out;
    const Status s = dec.Decode(*bytes, "s", Expect(c, bytes->size()), kAllSections, out);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(out.features.size(), c.features.size());
    for (size_t i = 0; i < c.features.size(); ++i) {
      const float want = k.dtype == FeatureDtype::kBf16 ? Bf16ToFloat(FloatToBf16(c.features[i]))
                                                        : F16ToFloat(FloatToF16(c.features[i]));
      ASSERT_EQ(out.features[i], want) << "value " << i;
      // Relative error within half a unit in the last place: 2^-8 (bf16), 2^-11 (f16, normal range).
      const float x = c.features[i];
      if (k.dtype == FeatureDtype::kBf16 || std::fabs(x) >= 0x1p-14f) {
        EXPECT_LE(std::fabs(out.features[i] - x), std::fabs(x) * (k.dtype == FeatureDtype::kBf16 ? 0x1p-8f : 0x1p-11f));
      }
    }
    EXPECT_EQ(out.node_ids, c.node_ids);
    EXPECT_EQ(out.adj_neighbors, c.adj_neighbors);
    EXPECT_EQ(out.inter_dst, c.inter_dst);
    EXPECT_EQ(out.labels, c.labels);
  }
}

TEST(FeatureCodec, ValuesOutsideF16AreRefusedNamingNodeAndColumn) {
  ClusterData c = WideFeatureCluster();
  c.features[1 * 40 + 5] = 70000.0f;  // node 7 (local row 1), column 5
  const Result<std::vector<std::byte>> f16 = EncodeShard(c, 3, kDefaultMinCompressionRatio, FeatureDtype::kF16);
  ASSERT_FALSE(f16.ok());
  EXPECT_EQ(f16.status().code(), StatusCode::kInvalidInput);
  EXPECT_NE(f16.status().message().find("node 7 column 5: feature value 70000.000000 does not fit f16 (largest "
                                        "finite: 65504); store the features as bf16 or f32 (--feature-dtype)"),
            std::string::npos)
      << f16.status().message();
  EXPECT_TRUE(EncodeShard(c, 3, kDefaultMinCompressionRatio, FeatureDtype::kBf16).ok());
  c.features[0] = 3.4e38f;
  const Result<std::vector<std::byte>> bf16 = EncodeShard(c, 3, kDefaultMinCompressionRatio, FeatureDtype::kBf16);
  ASSERT_FALSE(bf16.ok());
  EXPECT_NE(bf16.status().message().find("node 4 column 0"), std::string::npos) << bf16.status().message();
}

// Version 2 had no 16-bit codecs: a version-2 header naming one is refused with the codecs it
// allows, and a plain bf16 section whose stored size is not half the raw size is refused.
TEST(FeatureCodec, HeaderChecksOfTheNewCodecs) {
  const ClusterData c = WideFeatureCluster();
  const auto good = *EncodeShard(c, 3, 1e9, FeatureDtype::kBf16);
  auto v2 = good;
  const uint32_t two = 2;
  std::memcpy(v2.data() + shard_header::kVersion.offset, &two, 4);
  PatchHeader(v2, kInterField, c.inter_src.size());  // the same value: re-seals the header checksum
  const Result<ShardHeader> h2 = ParseShardHeader(v2, "f");
  ASSERT_FALSE(h2.ok());
  EXPECT_EQ(h2.status().message(),
            "f: byte 188 (section table entry 3, field codec): section 'features': codec 2, expected 0 (raw) or 1 "
            "(zstd)");
  auto bad = good;
  const size_t stored = SectionEntryOffset(3) + section_entry::kStoredSize.offset;
  PatchHeader(bad, stored, 4u * c.features.size());
  const Result<ShardHeader> hb = ParseShardHeader(bad, "f");
  ASSERT_FALSE(hb.ok());
  EXPECT_NE(hb.status().message().find("impossible for 480 raw bytes with codec 2"), std::string::npos)
      << hb.status().message();
  EXPECT_EQ(ParseFeatureDtype("bf16").value(), FeatureDtype::kBf16);
  EXPECT_EQ(ParseFeatureDtype("int8").status().message(),
            "--feature-dtype: unknown element type 'int8', expected f32, bf16 or f16");
}

}  // namespace
}  // namespace cgcn
