// Stage 4: the shard file format (docs/FORMAT.md documents every byte).
//
// One file per cluster: a fixed header, a section table, a header checksum, then six sections,
// each zstd-compressed or stored raw. All integers are little-endian. What the format is lives in
// the tables below (header fields, codecs, sections); EncodeShard, ParseShardHeader,
// ShardDecoder::Decode and cgcn-dump all work from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

struct ShardInfo;  // cgcn/manifest.h

inline constexpr char kShardMagic[8] = {'C', 'G', 'C', 'N', 'S', 'H', 'R', 'D'};
// Writers write kShardVersion; readers accept kOldestShardVersion to kShardVersion. Version 2
// turned the reserved header field at byte 60 into label_tasks (0 in every version-1 file, which
// means multi-class); version 3 added the 16-bit feature codecs 2 to 5 (a version-1 or 2 file
// using one is refused): docs/FORMAT.md's change log.
inline constexpr uint32_t kShardVersion = 3;
inline constexpr uint32_t kOldestShardVersion = 1;
inline constexpr uint32_t kNumSections = 6;
inline constexpr size_t kShardFixedHeaderBytes = 64;
inline constexpr size_t kSectionEntryBytes = 40;
// fixed header + section table + 8-byte header checksum
inline constexpr size_t kShardHeaderBytes = kShardFixedHeaderBytes + kNumSections * kSectionEntryBytes + 8;
// Where the header checksum (XXH3-64 of every header byte before it) is stored.
inline constexpr size_t kHeaderChecksumOffset = kShardHeaderBytes - 8;

// A field of the fixed header or of a section table entry: where it is, how many bytes it has
// and its name in messages ("byte 24 (header field num_nodes): ...").
struct FieldSpec {
  uint32_t offset;  // from the start of the file (header fields) or of the entry (entry fields)
  uint32_t size;
  const char* name;
};

// The fixed header, in file order.
namespace shard_header {
inline constexpr FieldSpec kMagic{0, 8, "magic"};
inline constexpr FieldSpec kVersion{8, 4, "version"};
inline constexpr FieldSpec kHeaderBytes{12, 4, "header_bytes"};
inline constexpr FieldSpec kClusterId{16, 4, "cluster_id"};
inline constexpr FieldSpec kNumClusters{20, 4, "num_clusters"};
inline constexpr FieldSpec kNumNodes{24, 4, "num_nodes"};
inline constexpr FieldSpec kFeatDim{28, 4, "feat_dim"};
inline constexpr FieldSpec kNumClasses{32, 4, "num_classes"};
inline constexpr FieldSpec kNumSections{36, 4, "num_sections"};
inline constexpr FieldSpec kIntraEntries{40, 8, "intra_entries"};
inline constexpr FieldSpec kInterEntries{48, 8, "inter_entries"};
inline constexpr FieldSpec kNumInterGroups{56, 4, "num_inter_groups"};
// 0: multi-class; L >= 2: multi-label with L tasks (then L = num_classes). Version 1: "reserved", 0.
inline constexpr FieldSpec kLabelTasks{60, 4, "label_tasks"};
static_assert(kLabelTasks.offset + kLabelTasks.size == kShardFixedHeaderBytes);
}  // namespace shard_header

// A section table entry, in file order; entry k (the section of kind k + 1) starts at byte
// SectionEntryOffset(k).
namespace section_entry {
inline constexpr FieldSpec kKind{0, 4, "kind"};
inline constexpr FieldSpec kCodec{4, 4, "codec"};
inline constexpr FieldSpec kOffset{8, 8, "offset"};
inline constexpr FieldSpec kStoredSize{16, 8, "stored_size"};
inline constexpr FieldSpec kRawSize{24, 8, "raw_size"};
inline constexpr FieldSpec kChecksum{32, 8, "checksum"};
static_assert(kChecksum.offset + kChecksum.size == kSectionEntryBytes);
}  // namespace section_entry
constexpr size_t SectionEntryOffset(uint32_t index) {
  return kShardFixedHeaderBytes + size_t{index} * kSectionEntryBytes;
}

enum class SectionKind : uint32_t {
  kNodes = 1,      // u32[n] original node ids, strictly ascending
  kAdjacency = 2,  // u32 offsets[n+1], u32 neighbors[intra] (local ids)
  kInter = 3,      // G x {u32 cluster, u32 count}, then per group u32 src[count], u32 dst[count]
  kFeatures = 4,   // f32[n x feat_dim], row-major
  kLabels = 5,     // u32[n] class ids (multi-label: 0); kNoLabel (0xffffffff) for an unlabeled node,
                   // in no split; multi-label, then u32[n x LabelWords(label_tasks)] task bits (split.h)
  kSplit = 6,      // u8[n] kSplit* bits
};

// How a section's bytes are stored. Codecs 2 to 5 store the f32 features section narrowed to 16
// bits (--feature-dtype): its raw contents are still f32[n x F], the stored values widened back.
inline constexpr uint32_t kCodecRaw = 0;       // the raw contents themselves
inline constexpr uint32_t kCodecZstd = 1;      // one zstd frame that records its content size
inline constexpr uint32_t kCodecBf16 = 2;      // u16 bfloat16 per f32 value (its upper 16 bits, rounded)
inline constexpr uint32_t kCodecBf16Zstd = 3;  // one zstd frame of the bfloat16 values
inline constexpr uint32_t kCodecF16 = 4;       // u16 IEEE binary16 per f32 value (rounded)
inline constexpr uint32_t kCodecF16Zstd = 5;   // one zstd frame of the binary16 values

// The element type the features are stored in (cgcn-preprocess --feature-dtype).
enum class FeatureDtype : uint32_t { kF32 = 0, kBf16 = 1, kF16 = 2 };
struct CodecSpec {
  uint32_t id;
  const char* name;
  FeatureDtype dtype;  // the stored values' type: kF32 for the lossless codecs 0 and 1
  bool zstd;           // stored as one zstd frame (of the values in `dtype`)
  // Bytes of stored values (before zstd) for `raw_size` raw bytes: raw_size, or half of it.
  uint64_t value_bytes(uint64_t raw_size) const { return dtype == FeatureDtype::kF32 ? raw_size : raw_size / 2; }
};
inline constexpr CodecSpec kCodecs[] = {
    {kCodecRaw, "raw", FeatureDtype::kF32, false},    {kCodecZstd, "zstd", FeatureDtype::kF32, true},
    {kCodecBf16, "bf16", FeatureDtype::kBf16, false}, {kCodecBf16Zstd, "bf16+zstd", FeatureDtype::kBf16, true},
    {kCodecF16, "f16", FeatureDtype::kF16, false},    {kCodecF16Zstd, "f16+zstd", FeatureDtype::kF16, true},
};
constexpr uint32_t CodecBit(uint32_t codec) { return 1u << codec; }
// kCodecs[codec], or null for an unknown codec.
constexpr const CodecSpec* FindCodec(uint32_t codec) {
  for (const CodecSpec& c : kCodecs)
    if (c.id == codec) return &c;
  return nullptr;
}

// "f32", "bf16", "f16".
const char* FeatureDtypeName(FeatureDtype dtype);
// Parses --feature-dtype's value; kInvalidArgument naming the choices otherwise.
Result<FeatureDtype> ParseFeatureDtype(const std::string& name);

// The section's name (SectionSpecOf), "unknown" for a kind outside the table.
const char* SectionName(SectionKind kind);
// "raw", "zstd", "bf16", ... (from kCodecs), "unknown" otherwise (ParseShardHeader refuses it).
const char* CodecName(uint32_t codec);

// Which sections a decode should materialize (the header and every checksum of
// the decoded sections are always verified).
using SectionMask = uint32_t;
inline constexpr SectionMask SectionBit(SectionKind k) { return 1u << static_cast<uint32_t>(k); }
inline constexpr SectionMask kStructureSections =
    SectionBit(SectionKind::kNodes) | SectionBit(SectionKind::kAdjacency) | SectionBit(SectionKind::kInter);
inline constexpr SectionMask kAllSections = kStructureSections | SectionBit(SectionKind::kFeatures) |
                                            SectionBit(SectionKind::kLabels) | SectionBit(SectionKind::kSplit);

// Edges from this cluster to one other cluster: pairs (inter_src[begin+i], inter_dst[begin+i]),
// src a local id in this cluster, dst a local id in `cluster`.
struct InterGroup {
  uint32_t cluster = 0;
  uint32_t count = 0;
  uint64_t begin = 0;  // index into inter_src/inter_dst
};

// One decoded cluster. Buffers keep their capacity across decodes (reuse, don't reallocate).
struct ClusterData {
  uint32_t cluster_id = 0;
  uint32_t num_clusters = 0;
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;
  std::vector<uint32_t> node_ids;        // [n]
  std::vector<uint32_t> adj_offsets;     // [n + 1]
  std::vector<uint32_t> adj_neighbors;   // [intra entries], local ids, no self loops
  std::vector<InterGroup> inter_groups;  // ascending cluster id, never this cluster
  std::vector<uint32_t> inter_src;       // [inter entries]
  std::vector<uint32_t> inter_dst;       // [inter entries]
  std::vector<float> features;           // [n x feat_dim]
  std::vector<uint32_t> labels;          // [n], < num_classes or kNoLabel (then split 0); multi-label: 0 or kNoLabel
  uint32_t label_tasks = 0;              // 0: multi-class; L >= 2: multi-label, L = num_classes
  std::vector<uint32_t> label_bits;      // [n x LabelWords(label_tasks)] (split.h); zero for kNoLabel rows
  std::vector<uint8_t> split;            // [n]
  uint64_t intra_entries() const { return adj_neighbors.size(); }
  uint64_t inter_entries() const { return inter_src.size(); }
  // Memory the decoded cluster of shard `s` holds, for memory plans: about the shard's section
  // bytes after decompression (the sections are these arrays, as stored).
  static uint64_t PlannedBytes(const ShardInfo& s);
};

// A decoded cluster as read-only arrays: a ClusterData's (implicitly), or a copy kept elsewhere
// (BatchStream's decoded-cluster cache). Batch assembly and evaluation read clusters through it.
struct ClusterView {
  uint32_t cluster_id = 0;
  uint32_t num_clusters = 0;
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;
  uint32_t label_tasks = 0;
  std::span<const uint32_t> node_ids, adj_offsets, adj_neighbors;
  std::span<const InterGroup> inter_groups;
  std::span<const uint32_t> inter_src, inter_dst;
  std::span<const float> features;
  std::span<const uint32_t> labels, label_bits;
  std::span<const uint8_t> split;
  ClusterView() = default;
  ClusterView(const ClusterData& d)  // NOLINT(google-explicit-constructor): a view of d
      : cluster_id(d.cluster_id),
        num_clusters(d.num_clusters),
        num_nodes(d.num_nodes),
        feat_dim(d.feat_dim),
        num_classes(d.num_classes),
        label_tasks(d.label_tasks),
        node_ids(d.node_ids),
        adj_offsets(d.adj_offsets),
        adj_neighbors(d.adj_neighbors),
        inter_groups(d.inter_groups),
        inter_src(d.inter_src),
        inter_dst(d.inter_dst),
        features(d.features),
        labels(d.labels),
        label_bits(d.label_bits),
        split(d.split) {}
  uint64_t intra_entries() const { return adj_neighbors.size(); }
  uint64_t inter_entries() const { return inter_src.size(); }
};

// Header fields as parsed (after checksum and structural checks).
struct SectionEntry {
  SectionKind kind{};
  uint32_t codec = 0;
  uint64_t offset = 0;       // from the start of the file
  uint64_t stored_size = 0;  // bytes on disk
  uint64_t raw_size = 0;     // bytes after decompression
  uint64_t checksum = 0;     // XXH3-64 of the stored bytes
};
struct ShardHeader {
  uint32_t version = 0;
  uint32_t cluster_id = 0;
  uint32_t num_clusters = 0;
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;
  uint32_t label_tasks = 0;
  uint32_t num_inter_groups = 0;
  uint64_t intra_entries = 0;
  uint64_t inter_entries = 0;
  SectionEntry sections[kNumSections];
  uint64_t header_checksum = 0;
  uint64_t raw_bytes() const;
  uint64_t stored_bytes() const;
};

// One section kind, as the encoder, the decoder and cgcn-dump see it. kSections lists them in
// file order: kSections[k] is the k-th section of every shard, of kind k + 1.
//  - EncodeShard writes each section's elements in this order, checks their count against
//    `elements`, and stores them with the first codec of `codecs` that applies: zstd, unless it
//    makes the section less than the minimum ratio smaller (then raw; an empty section stays
//    zstd, so no section has 0 stored bytes);
//  - ParseShardHeader checks each entry's kind, codec (in `codecs`) and raw size
//    (`element_bytes` x `elements` of the header's counts);
//  - Decode and cgcn-dump name sections, and count their elements, from it.
struct SectionSpec {
  SectionKind kind;
  const char* name;
  const char* element_type;  // "u32", "f32" or "u8": what the raw contents are an array of
  uint32_t element_bytes;
  uint64_t (*elements)(const ShardHeader& h);  // element count implied by the header's counts
  uint32_t codecs;                             // CodecBit(c) set: codec c allowed
  uint64_t raw_bytes(const ShardHeader& h) const { return elements(h) * element_bytes; }
};

namespace shard_format_detail {
constexpr uint64_t Nodes(const ShardHeader& h) { return h.num_nodes; }
constexpr uint64_t OffsetsAndNeighbors(const ShardHeader& h) { return uint64_t{h.num_nodes} + 1 + h.intra_entries; }
constexpr uint64_t GroupsAndPairs(const ShardHeader& h) { return 2 * (uint64_t{h.num_inter_groups} + h.inter_entries); }
constexpr uint64_t FeatureValues(const ShardHeader& h) { return uint64_t{h.num_nodes} * h.feat_dim; }
constexpr uint64_t LabelValues(const ShardHeader& h) { return uint64_t{h.num_nodes} * (1 + (h.label_tasks + 31) / 32); }
inline constexpr uint32_t kRawOrZstd = CodecBit(kCodecRaw) | CodecBit(kCodecZstd);
inline constexpr uint32_t kFeatureCodecs =
    kRawOrZstd | CodecBit(kCodecBf16) | CodecBit(kCodecBf16Zstd) | CodecBit(kCodecF16) | CodecBit(kCodecF16Zstd);
}  // namespace shard_format_detail

// The layout of each section's elements is SectionKind's comment and docs/FORMAT.md's table.
inline constexpr SectionSpec kSections[kNumSections] = {
    {SectionKind::kNodes, "nodes", "u32", 4, shard_format_detail::Nodes, shard_format_detail::kRawOrZstd},
    {SectionKind::kAdjacency, "adjacency", "u32", 4, shard_format_detail::OffsetsAndNeighbors,
     shard_format_detail::kRawOrZstd},
    {SectionKind::kInter, "inter", "u32", 4, shard_format_detail::GroupsAndPairs, shard_format_detail::kRawOrZstd},
    {SectionKind::kFeatures, "features", "f32", 4, shard_format_detail::FeatureValues,
     shard_format_detail::kFeatureCodecs},
    {SectionKind::kLabels, "labels", "u32", 4, shard_format_detail::LabelValues, shard_format_detail::kRawOrZstd},
    {SectionKind::kSplit, "split", "u8", 1, shard_format_detail::Nodes, shard_format_detail::kRawOrZstd},
};
// kSections[kind - 1]; `kind` must be one of SectionKind's values.
constexpr const SectionSpec& SectionSpecOf(SectionKind kind) { return kSections[static_cast<uint32_t>(kind) - 1]; }

// What the reader knows independently of the file (from the manifest); a file that
// disagrees is rejected. cluster_sizes (size num_clusters) bounds inter dst ids when non-empty.
struct ShardExpectation {
  uint32_t cluster_id = 0;
  uint32_t num_clusters = 0;
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;
  uint32_t label_tasks = 0;
  uint64_t total_nodes = 0;  // bound for original node ids
  uint64_t file_size = 0;
  uint64_t header_checksum = 0;
  std::span<const uint32_t> cluster_sizes;
};

// Serializes a cluster; zstd_level as in ZSTD_compress. A section that zstd does not make at
// least min_ratio times smaller is stored raw (codec 0): its decode is a checksum and a copy.
// min_ratio 1 stores raw only what zstd would make larger; 0 compresses every section.
// feature_dtype bf16 or f16 stores the features rounded to nearest (even) 16-bit values (codecs 2
// to 5, the same zstd rule on the 16-bit values); a feature f16 cannot hold (|x| >= 65520, which
// rounds to infinity) is kInvalidInput naming the node and column.
inline constexpr double kDefaultMinCompressionRatio = 1.25;
Result<std::vector<std::byte>> EncodeShard(const ClusterData& cluster, int zstd_level,
                                           double min_ratio = kDefaultMinCompressionRatio,
                                           FeatureDtype feature_dtype = FeatureDtype::kF32);

// The 16-bit conversions of the feature codecs, exposed for tests and benchmarks. Narrowing
// rounds to nearest, ties to even; widening is exact.
uint16_t FloatToBf16(float x);
float Bf16ToFloat(uint16_t x);
uint16_t FloatToF16(float x);
float F16ToFloat(uint16_t x);

// Parses and checks the header alone (magic, version, checksum, section table bounds).
// `name` is used in messages.
Result<ShardHeader> ParseShardHeader(std::span<const std::byte> file, const std::string& name);

// Verifies and decodes shards. Holds a zstd decompression context: one per thread.
class ShardDecoder {
 public:
  ShardDecoder();
  ~ShardDecoder();
  ShardDecoder(const ShardDecoder&) = delete;
  ShardDecoder& operator=(const ShardDecoder&) = delete;

  // Checks the file against `expect`, verifies the checksum of every section in `mask`,
  // decompresses and structurally validates them into `out` (other sections are left empty).
  // Errors name `name`, the section and what was wrong. Never allocates more than the
  // sizes `expect` implies.
  Status Decode(std::span<const std::byte> file, const std::string& name, const ShardExpectation& expect,
                SectionMask mask, ClusterData& out);

  // Bytes decompressed so far by this decoder (for throughput figures).
  uint64_t decompressed_bytes() const { return decompressed_bytes_; }

  // Memory one decoder holds, for memory plans: the zstd decompression context and its stream
  // buffers (the mapped shard file comes on top).
  static constexpr uint64_t kPlannedBytes = uint64_t{2} << 20;

 private:
  void* dctx_;  // ZSTD_DCtx*
  std::vector<std::byte> scratch_;
  uint64_t decompressed_bytes_ = 0;
};

}  // namespace cgcn
