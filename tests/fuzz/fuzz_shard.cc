// libFuzzer target: ParseShardHeader and ShardDecoder::Decode (every section) on arbitrary bytes,
// as given and with every checksum repaired (fuzz_util.h says why). Each parsed header is
// decoded against two expectations:
//   - one derived from the header itself (file size = input size, no header checksum, no
//     cluster sizes, total nodes 2^31-2), so the section decoders see whatever counts the
//     header claims;
//   - the fixed small manifest of fuzz_util.h, as a reader holding a real manifest would.
// It must never crash, leak, hang or allocate beyond what the expectation implies. A decoded
// cluster must satisfy every rule of docs/FORMAT.md, decode the same with fewer sections, and
// survive EncodeShard -> Decode unchanged (16-bit features also in their own type).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "cgcn/raw_reader.h"
#include "cgcn/shard_format.h"
#include "cgcn/split.h"
#include "fuzz/fuzz_util.h"

namespace cgcn::fuzz {
namespace {

// With the expectation taken from the header, Decode may legitimately allocate all the raw
// bytes the header claims; headers claiming more than this are only parsed, not decoded, so a
// huge allocation reported by the fuzzer is always a real overrun and never a licensed one.
constexpr uint64_t kMaxClaimedRawBytes = uint64_t{4} << 20;

template <typename T>
bool SameBytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void CheckAccepted(const ClusterData& c, const ShardExpectation& e) {
  const uint64_t n = c.num_nodes;
  CGCN_FUZZ_CHECK(c.cluster_id == e.cluster_id && c.num_clusters == e.num_clusters && n == e.num_nodes);
  CGCN_FUZZ_CHECK(c.feat_dim == e.feat_dim && c.num_classes == e.num_classes && c.label_tasks == e.label_tasks);
  const uint32_t words = LabelWords(c.label_tasks);
  CGCN_FUZZ_CHECK(c.label_bits.size() == n * words);
  for (uint64_t i = 0; i < n; ++i)
    for (uint32_t t = c.label_tasks; t < 32 * words; ++t)
      CGCN_FUZZ_CHECK(!LabelBit(c.label_bits.data() + i * words, t));  // no bit beyond the tasks
  CGCN_FUZZ_CHECK(c.cluster_id < c.num_clusters);
  CGCN_FUZZ_CHECK(c.node_ids.size() == n && c.labels.size() == n && c.split.size() == n);
  CGCN_FUZZ_CHECK(c.features.size() == n * c.feat_dim);
  for (uint64_t i = 0; i < n; ++i) {
    CGCN_FUZZ_CHECK(c.node_ids[i] < e.total_nodes);
    CGCN_FUZZ_CHECK(i == 0 || c.node_ids[i] > c.node_ids[i - 1]);
    // A class id below the class count (multi-label: 0), or kNoLabel on a node in no split and,
    // multi-label, with no task bit set.
    const uint8_t s = c.split[i];
    if (c.labels[i] == kNoLabel) {
      CGCN_FUZZ_CHECK(s == 0);
      for (uint32_t w = 0; w < words; ++w) CGCN_FUZZ_CHECK(c.label_bits[i * words + w] == 0);
    } else {
      CGCN_FUZZ_CHECK(c.labels[i] < (c.label_tasks == 0 ? c.num_classes : 1u));
    }
    CGCN_FUZZ_CHECK(s == 0 || s == kSplitTrain || s == kSplitValid || s == kSplitTest);
  }
  for (float f : c.features) CGCN_FUZZ_CHECK(std::isfinite(f));
  CGCN_FUZZ_CHECK(c.adj_offsets.size() == n + 1);
  CGCN_FUZZ_CHECK(c.adj_offsets[0] == 0 && c.adj_offsets[n] == c.adj_neighbors.size());
  for (uint64_t i = 0; i < n; ++i) {
    CGCN_FUZZ_CHECK(c.adj_offsets[i] <= c.adj_offsets[i + 1]);
    for (uint64_t k = c.adj_offsets[i]; k < c.adj_offsets[i + 1]; ++k) {
      const uint32_t j = c.adj_neighbors[k];
      CGCN_FUZZ_CHECK(j < n && j != i);
      CGCN_FUZZ_CHECK(k == c.adj_offsets[i] || j > c.adj_neighbors[k - 1]);
    }
  }
  CGCN_FUZZ_CHECK(c.inter_src.size() == c.inter_dst.size());
  CGCN_FUZZ_CHECK(c.inter_groups.size() < c.num_clusters || c.inter_groups.empty());
  uint64_t begin = 0;
  for (size_t g = 0; g < c.inter_groups.size(); ++g) {
    const InterGroup& ig = c.inter_groups[g];
    CGCN_FUZZ_CHECK(ig.cluster < c.num_clusters && ig.cluster != c.cluster_id);
    CGCN_FUZZ_CHECK(g == 0 || ig.cluster > c.inter_groups[g - 1].cluster);
    CGCN_FUZZ_CHECK(ig.count > 0 && ig.begin == begin);
    for (uint64_t k = ig.begin; k < ig.begin + ig.count; ++k) {
      CGCN_FUZZ_CHECK(c.inter_src[k] < n);
      CGCN_FUZZ_CHECK(k == ig.begin || c.inter_src[k] > c.inter_src[k - 1] ||
                      (c.inter_src[k] == c.inter_src[k - 1] && c.inter_dst[k] > c.inter_dst[k - 1]));
      if (!e.cluster_sizes.empty()) CGCN_FUZZ_CHECK(c.inter_dst[k] < e.cluster_sizes[ig.cluster]);
    }
    begin += ig.count;
  }
  CGCN_FUZZ_CHECK(begin == c.inter_src.size());
  CGCN_FUZZ_CHECK(c.inter_src.size() <= n * (e.total_nodes - n));
}

ShardDecoder& Decoder() {
  static ShardDecoder decoder;  // one zstd context for the whole run, as a pipeline thread keeps
  return decoder;
}

void DecodeAgainst(std::span<const std::byte> file, const ShardExpectation& e) {
  ClusterData c;
  const Status s = Decoder().Decode(file, "shard", e, kAllSections, c);
  if (!s.ok()) {
    CGCN_FUZZ_CHECK(s.code() == StatusCode::kCorruption);
    CGCN_FUZZ_CHECK(s.message().rfind("shard", 0) == 0);
    return;
  }
  CheckAccepted(c, e);

  // The sections are independent: decoding fewer of them must succeed and agree.
  ClusterData part;
  CGCN_FUZZ_CHECK(Decoder().Decode(file, "shard", e, kStructureSections, part).ok());
  CGCN_FUZZ_CHECK(SameBytes(part.node_ids, c.node_ids) && SameBytes(part.adj_offsets, c.adj_offsets) &&
                  SameBytes(part.adj_neighbors, c.adj_neighbors) && SameBytes(part.inter_src, c.inter_src) &&
                  SameBytes(part.inter_dst, c.inter_dst));
  CGCN_FUZZ_CHECK(part.features.empty() && part.labels.empty() && part.split.empty());

  // Whatever was accepted encodes and decodes back to itself.
  Result<std::vector<std::byte>> again = EncodeShard(c, 1);
  CGCN_FUZZ_CHECK(again.ok());
  ShardExpectation e2 = e;
  e2.file_size = again->size();
  e2.header_checksum = 0;
  ClusterData back;
  CGCN_FUZZ_CHECK(Decoder().Decode(*again, "again", e2, kAllSections, back).ok());
  CGCN_FUZZ_CHECK(SameBytes(back.node_ids, c.node_ids) && SameBytes(back.adj_offsets, c.adj_offsets) &&
                  SameBytes(back.adj_neighbors, c.adj_neighbors) && SameBytes(back.inter_src, c.inter_src) &&
                  SameBytes(back.inter_dst, c.inter_dst) && SameBytes(back.features, c.features) &&
                  SameBytes(back.labels, c.labels) && SameBytes(back.split, c.split) &&
                  SameBytes(back.label_bits, c.label_bits) && back.label_tasks == c.label_tasks);
  CGCN_FUZZ_CHECK(back.inter_groups.size() == c.inter_groups.size());
  for (size_t g = 0; g < c.inter_groups.size(); ++g)
    CGCN_FUZZ_CHECK(back.inter_groups[g].cluster == c.inter_groups[g].cluster &&
                    back.inter_groups[g].count == c.inter_groups[g].count &&
                    back.inter_groups[g].begin == c.inter_groups[g].begin);

  // Features stored in 16 bits widen to values that type holds exactly: encoding them again in
  // the same type gives the same features.
  const FeatureDtype dtype =
      FindCodec(ParseShardHeader(file, "shard")->sections[static_cast<uint32_t>(SectionKind::kFeatures) - 1].codec)
          ->dtype;
  if (dtype != FeatureDtype::kF32) {
    Result<std::vector<std::byte>> narrow = EncodeShard(c, 1, kDefaultMinCompressionRatio, dtype);
    CGCN_FUZZ_CHECK(narrow.ok());
    e2.file_size = narrow->size();
    ClusterData back16;
    CGCN_FUZZ_CHECK(Decoder().Decode(*narrow, "again", e2, kAllSections, back16).ok());
    CGCN_FUZZ_CHECK(SameBytes(back16.features, c.features));
  }
}

void FuzzOne(std::span<const std::byte> file) {
  Result<ShardHeader> h = ParseShardHeader(file, "shard");
  if (!h.ok()) {
    CGCN_FUZZ_CHECK(h.status().code() == StatusCode::kCorruption);
    CGCN_FUZZ_CHECK(h.status().message().rfind("shard", 0) == 0);
  } else {
    CGCN_FUZZ_CHECK(h->stored_bytes() == file.size());
    if (h->raw_bytes() <= kMaxClaimedRawBytes) {
      ShardExpectation e;
      e.cluster_id = h->cluster_id;
      e.num_clusters = h->num_clusters;
      e.num_nodes = h->num_nodes;
      e.feat_dim = h->feat_dim;
      e.num_classes = h->num_classes;
      e.label_tasks = h->label_tasks;
      e.total_nodes = std::numeric_limits<int32_t>::max() - 1;  // 2^31 - 2
      e.file_size = file.size();
      e.header_checksum = 0;
      DecodeAgainst(file, e);
    }
  }
  // Against the small manifest, whatever the header says (Decode itself must refuse a header
  // that disagrees before allocating for it).
  const uint32_t cluster = h.ok() && h->cluster_id < 2 ? h->cluster_id : 0;
  ShardExpectation e;
  e.cluster_id = cluster;
  e.num_clusters = 2;
  e.num_nodes = kSmallManifest.cluster_sizes[cluster];
  e.feat_dim = kSmallManifest.feat_dim;
  e.num_classes = kSmallManifest.num_classes;
  e.total_nodes = kSmallManifest.num_nodes;
  e.file_size = file.size();
  e.header_checksum = 0;
  e.cluster_sizes = std::span<const uint32_t>(kSmallManifest.cluster_sizes);
  DecodeAgainst(file, e);
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  cgcn::fuzz::FuzzOne(std::span(bytes, size));
  if (size >= cgcn::kShardHeaderBytes) {
    std::vector<std::byte> repaired(bytes, bytes + size);
    cgcn::fuzz::RepairShardChecksums(repaired);
    cgcn::fuzz::FuzzOne(repaired);
  }
  return 0;
}
