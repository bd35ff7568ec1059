#include "cgcn/shard_format.h"

#include <zstd.h>

#ifdef __F16C__
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

#include "cgcn/checksum.h"
#include "cgcn/manifest.h"
#include "cgcn/split.h"
#include "util/bytes.h"

namespace cgcn {
namespace {

// Hard bounds on header fields, before anything is allocated.
constexpr uint64_t kMaxNodes = std::numeric_limits<int32_t>::max();
constexpr uint64_t kMaxEntries = std::numeric_limits<int32_t>::max();
constexpr uint64_t kMaxFeatDim = 1u << 24;
constexpr uint64_t kMaxClasses = 1u << 16;
constexpr uint64_t kMaxSectionBytes = uint64_t{1} << 40;

static_assert(
    [] {
      for (uint32_t k = 0; k < kNumSections; ++k)
        if (static_cast<uint32_t>(kSections[k].kind) != k + 1) return false;
      return true;
    }(),
    "kSections lists the sections in file order, kind k + 1 at position k");

std::string Where(const std::string& name, SectionKind kind) { return name + ": section '" + SectionName(kind) + "'"; }

// "byte 24 (header field num_nodes)"
std::string At(const FieldSpec& f) { return "byte " + std::to_string(f.offset) + " (header field " + f.name + ")"; }
// "byte 268 (section table entry 5, field codec)": field `f` of section table entry `index`.
std::string At(uint32_t index, const FieldSpec& f) {
  return "byte " + std::to_string(SectionEntryOffset(index) + f.offset) + " (section table entry " +
         std::to_string(index) + ", field " + f.name + ")";
}

// "0 (raw) or 1 (zstd)": the codecs in `codecs`, for messages.
std::string CodecList(uint32_t codecs) {
  std::string list;
  for (const CodecSpec& c : kCodecs) {
    if (!(codecs & CodecBit(c.id))) continue;
    if (!list.empty()) list += " or ";
    list += std::to_string(c.id) + " (" + c.name + ")";
  }
  return list;
}

// The raw (uncompressed) contents of section `kind` of cluster `c`, appended to `out`.
void AppendSection(const ClusterData& c, SectionKind kind, std::vector<std::byte>& out) {
  auto append = [&out](const auto& v) {
    const auto* b = reinterpret_cast<const std::byte*>(v.data());
    out.insert(out.end(), b, b + v.size() * sizeof(v[0]));
  };
  switch (kind) {
    case SectionKind::kNodes:
      return append(c.node_ids);
    case SectionKind::kAdjacency:
      append(c.adj_offsets);
      return append(c.adj_neighbors);
    case SectionKind::kInter: {
      ByteWriter w(out);
      for (const auto& g : c.inter_groups) {
        w.U32(g.cluster);
        w.U32(g.count);
      }
      for (const auto& g : c.inter_groups) {
        w.Raw(c.inter_src.data() + g.begin, 4 * uint64_t{g.count});
        w.Raw(c.inter_dst.data() + g.begin, 4 * uint64_t{g.count});
      }
      return;
    }
    case SectionKind::kFeatures:
      return append(c.features);
    case SectionKind::kLabels:
      append(c.labels);
      return append(c.label_bits);
    case SectionKind::kSplit:
      return append(c.split);
  }
}

// The codec (kCodecs) storing values of `dtype`, in a zstd frame or plain.
constexpr uint32_t CodecOf(FeatureDtype dtype, bool zstd) {
  for (const CodecSpec& c : kCodecs)
    if (c.dtype == dtype && c.zstd == zstd) return c.id;
  return kCodecZstd;  // unreachable: kCodecs has both forms of every type
}
static_assert(CodecOf(FeatureDtype::kBf16, false) == kCodecBf16 && CodecOf(FeatureDtype::kF16, true) == kCodecF16Zstd);

// Multi-label rows: no bit at or beyond `tasks`, none for an unlabeled row. Empty when right,
// else what is wrong ("row 3: ...").
std::string CheckLabelBits(const uint32_t* bits, const uint32_t* labels, uint64_t n, uint32_t tasks) {
  const uint32_t words = LabelWords(tasks);
  if (words == 0) return {};
  const uint32_t tail = tasks % 32 == 0 ? 0u : ~((uint32_t{1} << (tasks % 32)) - 1);  // bits >= tasks in the last word
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t* row = bits + i * words;
    if ((row[words - 1] & tail) != 0)
      return "row " + std::to_string(i) + ": a task bit set at or beyond task " + std::to_string(tasks);
    if (labels[i] == kNoLabel)
      for (uint32_t w = 0; w < words; ++w)
        if (row[w] != 0) return "row " + std::to_string(i) + ": task bits set on an unlabeled row";
  }
  return {};
}

}  // namespace

const char* SectionName(SectionKind kind) {
  const auto k = static_cast<uint32_t>(kind);
  return k >= 1 && k <= kNumSections ? kSections[k - 1].name : "unknown";
}

const char* CodecName(uint32_t codec) {
  const CodecSpec* c = FindCodec(codec);
  return c != nullptr ? c->name : "unknown";
}

const char* FeatureDtypeName(FeatureDtype dtype) {
  switch (dtype) {
    case FeatureDtype::kF32:
      return "f32";
    case FeatureDtype::kBf16:
      return "bf16";
    case FeatureDtype::kF16:
      return "f16";
  }
  return "unknown";
}

Result<FeatureDtype> ParseFeatureDtype(const std::string& name) {
  for (FeatureDtype d : {FeatureDtype::kF32, FeatureDtype::kBf16, FeatureDtype::kF16})
    if (name == FeatureDtypeName(d)) return d;
  return Status::InvalidArgument("--feature-dtype: unknown element type '" + name + "', expected f32, bf16 or f16");
}

uint16_t FloatToBf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return static_cast<uint16_t>((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u));
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // to nearest, ties to even
}
float Bf16ToFloat(uint16_t x) { return std::bit_cast<float>(uint32_t{x} << 16); }
// IEEE binary16 by bit manipulation (no _Float16: clang 14, which the fuzzers build with, has none
// on x86).
uint16_t FloatToF16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u);  // infinity, NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;                                    // 65520 and beyond round to infinity
  if (a >= 0x38800000u) {                                                         // 2^-14 and beyond: a normal binary16
    a -= 112u << 23;                                                              // rebias the exponent (127 -> 15)
    a += 0xfffu + ((a >> 13) & 1u);  // to nearest, ties to even, in the 13 dropped bits
    return static_cast<uint16_t>(sign | (a >> 13));
  }
  if (a < 0x33000000u) return sign;  // below 2^-25, half the smallest subnormal: zero
  // A subnormal binary16: round(x / 2^-24), the significand shifted right by 126 - exponent.
  const uint32_t shift = 126 - (a >> 23);  // 14 to 24
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  uint32_t r = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1u))) ++r;  // may carry into the smallest normal, 0x400
  return static_cast<uint16_t>(sign | r);
}
float F16ToFloat(uint16_t x) {
  const uint32_t sign = uint32_t{x & 0x8000u} << 16, e = (x >> 10) & 0x1fu, m = x & 0x3ffu;
  if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e != 0) return std::bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
  const float v = static_cast<float>(m) * 0x1p-24f;  // a subnormal (or zero), exactly
  return sign ? -v : v;
}

uint64_t ShardHeader::raw_bytes() const {
  uint64_t s = 0;
  for (const auto& e : sections) s += e.raw_size;
  return s;
}
uint64_t ShardHeader::stored_bytes() const {
  uint64_t s = kShardHeaderBytes;
  for (const auto& e : sections) s += e.stored_size;
  return s;
}

Result<std::vector<std::byte>> EncodeShard(const ClusterData& c, int zstd_level, double min_ratio,
                                           FeatureDtype feature_dtype) {
  const uint64_t n = c.num_nodes;
  const uint32_t words = LabelWords(c.label_tasks);
  if (c.node_ids.size() != n || c.adj_offsets.size() != n + 1 || c.labels.size() != n || c.split.size() != n ||
      c.features.size() != n * c.feat_dim || c.inter_src.size() != c.inter_dst.size() ||
      c.label_bits.size() != n * words || (c.label_tasks != 0 && (c.label_tasks < 2 || c.label_tasks != c.num_classes)))
    return Status::Internal("EncodeShard: inconsistent ClusterData sizes for cluster " + std::to_string(c.cluster_id));
  for (uint64_t i = 0; i < n; ++i) {
    if ((c.labels[i] >= c.num_classes && c.labels[i] != kNoLabel) || (c.labels[i] == kNoLabel && c.split[i] != 0))
      return Status::Internal("EncodeShard: cluster " + std::to_string(c.cluster_id) + " row " + std::to_string(i) +
                              ": label " + std::to_string(c.labels[i]) + " with split byte " +
                              std::to_string(c.split[i]) + " (expected a class id below " +
                              std::to_string(c.num_classes) + ", or 0xffffffff in no split)");
    if (c.label_tasks != 0 && c.labels[i] != 0 && c.labels[i] != kNoLabel)
      return Status::Internal("EncodeShard: cluster " + std::to_string(c.cluster_id) + " row " + std::to_string(i) +
                              ": multi-label row with label " + std::to_string(c.labels[i]) +
                              " (expected 0 or kNoLabel)");
  }
  if (const std::string why = CheckLabelBits(c.label_bits.data(), c.labels.data(), n, c.label_tasks); !why.empty())
    return Status::Internal("EncodeShard: cluster " + std::to_string(c.cluster_id) + ": " + why);
  ShardHeader h;  // the counts the sections' sizes follow from
  h.num_nodes = c.num_nodes;
  h.feat_dim = c.feat_dim;
  h.label_tasks = c.label_tasks;
  h.intra_entries = c.intra_entries();
  h.inter_entries = c.inter_entries();
  h.num_inter_groups = static_cast<uint32_t>(c.inter_groups.size());

  std::vector<std::byte> stored[kNumSections];
  uint32_t codec[kNumSections];
  uint64_t raw_size[kNumSections];
  for (uint32_t i = 0; i < kNumSections; ++i) {
    const SectionSpec& spec = kSections[i];
    std::vector<std::byte> raw;
    AppendSection(c, spec.kind, raw);
    if (raw.size() != spec.raw_bytes(h))
      return Status::Internal("EncodeShard: cluster " + std::to_string(c.cluster_id) + ": section '" + spec.name +
                              "' has " + std::to_string(raw.size()) + " bytes, its counts imply " +
                              std::to_string(spec.raw_bytes(h)));
    raw_size[i] = raw.size();
    // The stored values: the raw contents, or the features narrowed to 16 bits.
    const FeatureDtype dtype = spec.kind == SectionKind::kFeatures ? feature_dtype : FeatureDtype::kF32;
    const uint32_t plain = CodecOf(dtype, false), framed = CodecOf(dtype, true);
    if (dtype != FeatureDtype::kF32) {
      const bool bf16 = dtype == FeatureDtype::kBf16;
      std::vector<std::byte> narrow(raw.size() / 2);
      const uint16_t inf = bf16 ? 0x7f80 : 0x7c00;  // the exponent bits of infinity
      for (uint64_t k = 0; k < c.features.size(); ++k) {
        const float x = c.features[k];
        const uint16_t v = bf16 ? FloatToBf16(x) : FloatToF16(x);
        if ((v & inf) == inf && std::isfinite(x)) {
          const uint64_t row = k / c.feat_dim;
          return Status::InvalidInput(
              "cluster " + std::to_string(c.cluster_id) + ": node " + std::to_string(c.node_ids[row]) + " column " +
              std::to_string(k % c.feat_dim) + ": feature value " + std::to_string(x) + " does not fit " +
              FeatureDtypeName(feature_dtype) + " (largest finite: " + (bf16 ? "3.39e38" : "65504") +
              "); store the features as " + (bf16 ? "f32" : "bf16 or f32") + " (--feature-dtype)");
        }
        std::memcpy(narrow.data() + 2 * k, &v, 2);
      }
      raw = std::move(narrow);
    }
    stored[i].resize(ZSTD_compressBound(raw.size()));
    const size_t r = ZSTD_compress(stored[i].data(), stored[i].size(), raw.data(), raw.size(), zstd_level);
    if (ZSTD_isError(r)) return Status::Internal(std::string("ZSTD_compress failed: ") + ZSTD_getErrorName(r));
    stored[i].resize(r);
    codec[i] = framed;
    // A section zstd barely shrinks is stored as it is: decoding it is then a checksum and a
    // copy (or a widening) instead of a decompression on every epoch (empty sections stay zstd
    // frames, so no section is ever 0 bytes).
    if ((spec.codecs & CodecBit(plain)) && !raw.empty() &&
        static_cast<double>(raw.size()) < min_ratio * static_cast<double>(r)) {
      stored[i] = std::move(raw);
      codec[i] = plain;
    }
  }

  // The header, each field at its place in the tables.
  std::byte header[kShardHeaderBytes] = {};
  auto put = [&header](size_t base, const FieldSpec& field, auto value) {
    assert(sizeof value == field.size);
    std::memcpy(header + base + field.offset, &value, sizeof value);
  };
  namespace f = shard_header;
  namespace e = section_entry;
  std::memcpy(header + f::kMagic.offset, kShardMagic, f::kMagic.size);
  put(0, f::kVersion, kShardVersion);
  put(0, f::kHeaderBytes, static_cast<uint32_t>(kShardHeaderBytes));
  put(0, f::kClusterId, c.cluster_id);
  put(0, f::kNumClusters, c.num_clusters);
  put(0, f::kNumNodes, c.num_nodes);
  put(0, f::kFeatDim, c.feat_dim);
  put(0, f::kNumClasses, c.num_classes);
  put(0, f::kNumSections, kNumSections);
  put(0, f::kIntraEntries, h.intra_entries);
  put(0, f::kInterEntries, h.inter_entries);
  put(0, f::kNumInterGroups, h.num_inter_groups);
  put(0, f::kLabelTasks, c.label_tasks);
  uint64_t offset = kShardHeaderBytes;
  for (uint32_t i = 0; i < kNumSections; ++i) {
    const size_t at = SectionEntryOffset(i);
    put(at, e::kKind, static_cast<uint32_t>(kSections[i].kind));
    put(at, e::kCodec, codec[i]);
    put(at, e::kOffset, offset);
    put(at, e::kStoredSize, uint64_t{stored[i].size()});
    put(at, e::kRawSize, raw_size[i]);
    put(at, e::kChecksum, Checksum64(stored[i]));
    offset += stored[i].size();
  }
  const uint64_t header_sum = Checksum64(header, kHeaderChecksumOffset);
  std::memcpy(header + kHeaderChecksumOffset, &header_sum, sizeof header_sum);

  std::vector<std::byte> out;
  out.reserve(offset);
  out.insert(out.end(), header, header + kShardHeaderBytes);
  for (const auto& st : stored) out.insert(out.end(), st.begin(), st.end());
  return out;
}

Result<ShardHeader> ParseShardHeader(std::span<const std::byte> file, const std::string& name) {
  namespace f = shard_header;
  namespace e = section_entry;
  if (file.size() < kShardHeaderBytes)
    return Status::Corruption(name + ": truncated: " + std::to_string(file.size()) + " bytes, a shard header needs " +
                              std::to_string(kShardHeaderBytes));
  auto u32 = [&file](size_t base, const FieldSpec& field) {
    assert(field.size == 4);
    return LoadU32(file.data() + base + field.offset);
  };
  auto u64 = [&file](size_t base, const FieldSpec& field) {
    assert(field.size == 8);
    return LoadU64(file.data() + base + field.offset);
  };
  auto bad = [&](const std::string& where, const std::string& what) {
    return Status::Corruption(name + ": " + where + ": " + what);
  };
  if (std::memcmp(file.data() + f::kMagic.offset, kShardMagic, f::kMagic.size) != 0)
    return bad(At(f::kMagic), "bad magic, expected \"CGCNSHRD\" (not a cgcn shard file)");
  ShardHeader h;
  h.version = u32(0, f::kVersion);
  if (h.version < kOldestShardVersion || h.version > kShardVersion)
    return bad(At(f::kVersion), "unsupported shard version " + std::to_string(h.version) + " (this build reads " +
                                    std::to_string(kOldestShardVersion) + " to " + std::to_string(kShardVersion) + ")");
  const uint64_t stored_sum = LoadU64(file.data() + kHeaderChecksumOffset);
  const uint64_t actual_sum = Checksum64(file.data(), kHeaderChecksumOffset);
  if (stored_sum != actual_sum)
    return Status::Corruption(name + ": header checksum mismatch (byte " + std::to_string(kHeaderChecksumOffset) +
                              ": stored " + Hex64(stored_sum) + ", computed " + Hex64(actual_sum) + ")");
  h.header_checksum = stored_sum;
  const uint32_t header_bytes = u32(0, f::kHeaderBytes);
  h.cluster_id = u32(0, f::kClusterId);
  h.num_clusters = u32(0, f::kNumClusters);
  h.num_nodes = u32(0, f::kNumNodes);
  h.feat_dim = u32(0, f::kFeatDim);
  h.num_classes = u32(0, f::kNumClasses);
  const uint32_t num_sections = u32(0, f::kNumSections);
  h.intra_entries = u64(0, f::kIntraEntries);
  h.inter_entries = u64(0, f::kInterEntries);
  h.num_inter_groups = u32(0, f::kNumInterGroups);
  h.label_tasks = u32(0, f::kLabelTasks);
  if (header_bytes != kShardHeaderBytes)
    return bad(At(f::kHeaderBytes),
               "header size " + std::to_string(header_bytes) + ", expected " + std::to_string(kShardHeaderBytes));
  if (num_sections != kNumSections)
    return bad(At(f::kNumSections),
               "section count " + std::to_string(num_sections) + ", expected " + std::to_string(kNumSections));
  if (h.version == 1 && h.label_tasks != 0) return bad(At(f::kLabelTasks), "reserved field is not zero (version 1)");
  if (h.num_clusters == 0 || h.cluster_id >= h.num_clusters)
    return bad(At(f::kClusterId), "cluster id " + std::to_string(h.cluster_id) + " not below cluster count " +
                                      std::to_string(h.num_clusters));
  if (h.num_nodes > kMaxNodes)
    return bad(At(f::kNumNodes), "node count " + std::to_string(h.num_nodes) + " exceeds 2^31-1");
  if (h.feat_dim == 0 || h.feat_dim > kMaxFeatDim)
    return bad(At(f::kFeatDim), "feature dimension " + std::to_string(h.feat_dim) + " outside [1, 2^24]");
  if (h.num_classes == 0 || h.num_classes > kMaxClasses)
    return bad(At(f::kNumClasses), "class count " + std::to_string(h.num_classes) + " outside [1, 65536]");
  if (h.label_tasks != 0 && (h.label_tasks < 2 || h.label_tasks != h.num_classes))
    return bad(At(f::kLabelTasks), "label task count " + std::to_string(h.label_tasks) +
                                       ", expected 0 (multi-class) or the class count " +
                                       std::to_string(h.num_classes) + " (at least 2, multi-label)");
  if (h.intra_entries > kMaxEntries) return bad(At(f::kIntraEntries), "intra entry count exceeds 2^31-1");
  if (h.inter_entries > kMaxEntries) return bad(At(f::kInterEntries), "inter entry count exceeds 2^31-1");
  // No self loops and no repeated neighbour: a cluster of n nodes has at most n(n-1) intra entries.
  // Refused here, before Decode allocates for a count that no valid section can hold.
  const uint64_t max_intra = uint64_t{h.num_nodes} * (h.num_nodes == 0 ? 0 : h.num_nodes - 1);
  if (h.intra_entries > max_intra)
    return bad(At(f::kIntraEntries), "intra entry count " + std::to_string(h.intra_entries) + " exceeds n(n-1) = " +
                                         std::to_string(max_intra) + " for " + std::to_string(h.num_nodes) + " nodes");
  if (h.num_inter_groups >= h.num_clusters || h.num_inter_groups > h.inter_entries)
    return bad(At(f::kNumInterGroups), "inter group count " + std::to_string(h.num_inter_groups) +
                                           " inconsistent with " + std::to_string(h.num_clusters) + " clusters and " +
                                           std::to_string(h.inter_entries) + " entries");
  uint64_t expect_offset = kShardHeaderBytes;
  for (uint32_t i = 0; i < kNumSections; ++i) {
    const SectionSpec& spec = kSections[i];
    const size_t at = SectionEntryOffset(i);
    SectionEntry& en = h.sections[i];
    const uint32_t kind = u32(at, e::kKind);
    en.codec = u32(at, e::kCodec);
    en.offset = u64(at, e::kOffset);
    en.stored_size = u64(at, e::kStoredSize);
    en.raw_size = u64(at, e::kRawSize);
    en.checksum = u64(at, e::kChecksum);
    if (kind != static_cast<uint32_t>(spec.kind))
      return bad(At(i, e::kKind), "section " + std::to_string(i) + " has kind " + std::to_string(kind) + ", expected " +
                                      std::to_string(static_cast<uint32_t>(spec.kind)) + " (" + spec.name + ")");
    en.kind = spec.kind;
    const std::string sec = std::string("section '") + spec.name + "': ";
    // The 16-bit feature codecs exist since version 3.
    const uint32_t allowed = h.version >= 3 ? spec.codecs : spec.codecs & shard_format_detail::kRawOrZstd;
    if (en.codec >= 32 || !(allowed & CodecBit(en.codec)))
      return bad(At(i, e::kCodec), sec + "codec " + std::to_string(en.codec) + ", expected " + CodecList(allowed));
    const CodecSpec& codec = *FindCodec(en.codec);
    if (en.offset != expect_offset)
      return bad(At(i, e::kOffset),
                 sec + "offset " + std::to_string(en.offset) + ", expected " + std::to_string(expect_offset));
    const uint64_t want = spec.raw_bytes(h);
    if (en.raw_size != want || en.raw_size > kMaxSectionBytes)
      return bad(At(i, e::kRawSize), sec + "raw size " + std::to_string(en.raw_size) + ", expected " +
                                         std::to_string(want) + " from the header counts");
    const uint64_t values = codec.value_bytes(en.raw_size);  // stored values' bytes before zstd
    if (!codec.zstd ? en.stored_size != values || en.raw_size == 0
                    : en.stored_size == 0 || en.stored_size > ZSTD_compressBound(values))
      return bad(At(i, e::kStoredSize), sec + "stored size " + std::to_string(en.stored_size) + " impossible for " +
                                            std::to_string(en.raw_size) + " raw bytes with codec " +
                                            std::to_string(en.codec));
    if (en.stored_size > file.size() - std::min<uint64_t>(expect_offset, file.size()))
      return Status::Corruption(name + ": truncated: " + sec + "needs bytes [" + std::to_string(en.offset) + ", " +
                                std::to_string(en.offset + en.stored_size) + ") but the file has " +
                                std::to_string(file.size()));
    expect_offset += en.stored_size;
  }
  if (expect_offset != file.size())
    return Status::Corruption(name + ": " + std::to_string(file.size() - expect_offset) +
                              " trailing bytes after the last section (file has " + std::to_string(file.size()) +
                              " bytes, sections end at " + std::to_string(expect_offset) + ")");
  return h;
}

uint64_t ClusterData::PlannedBytes(const ShardInfo& s) { return s.raw_bytes; }

ShardDecoder::ShardDecoder() : dctx_(ZSTD_createDCtx()) {}
ShardDecoder::~ShardDecoder() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(dctx_)); }

namespace {

// Widens `count` 16-bit values at `src` (any alignment) to f32 at `dst`.
void Widen(FeatureDtype dtype, const std::byte* src, uint64_t count, float* dst) {
  if (dtype == FeatureDtype::kBf16) {
    for (uint64_t k = 0; k < count; ++k) {
      uint16_t v;
      std::memcpy(&v, src + 2 * k, 2);
      dst[k] = std::bit_cast<float>(uint32_t{v} << 16);
    }
  } else {
    uint64_t k = 0;
#ifdef __F16C__
    for (; k + 8 <= count; k += 8)
      _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * k))));
#endif
    for (; k < count; ++k) {
      uint16_t v;
      std::memcpy(&v, src + 2 * k, 2);
      dst[k] = F16ToFloat(v);
    }
  }
}

// Verifies the stored bytes' checksum and decompresses (or, raw, copies) exactly e.raw_size
// bytes into dst; a 16-bit feature codec's values are decompressed into `scratch` (when framed)
// and widened into dst.
Status Inflate(ZSTD_DCtx* dctx, std::span<const std::byte> file, const SectionEntry& e, const std::string& name,
               void* dst, std::vector<std::byte>& scratch) {
  const std::byte* src = file.data() + e.offset;
  const uint64_t sum = Checksum64(src, e.stored_size);
  if (sum != e.checksum)
    return Status::Corruption(Where(name, e.kind) + ": checksum mismatch over bytes [" + std::to_string(e.offset) +
                              ", " + std::to_string(e.offset + e.stored_size) + "): stored " + Hex64(e.checksum) +
                              ", computed " + Hex64(sum));
  const CodecSpec& codec = *FindCodec(e.codec);  // ParseShardHeader refused unknown codecs
  const uint64_t values = codec.value_bytes(e.raw_size);
  const bool narrow = codec.dtype != FeatureDtype::kF32;
  assert(!narrow || dst != scratch.data());  // only the features take 16-bit codecs, never into scratch
  if (!codec.zstd) {                         // ParseShardHeader checked stored_size == values
    if (narrow)
      Widen(codec.dtype, src, values / 2, static_cast<float*>(dst));
    else if (e.raw_size != 0)  // dst may be an empty vector's null data()
      std::memcpy(dst, src, e.raw_size);
    return Status::Ok();
  }
  const unsigned long long content = ZSTD_getFrameContentSize(src, e.stored_size);
  if (content != values)
    return Status::Corruption(Where(name, e.kind) + ": zstd frame declares " +
                              (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN
                                   ? std::string("no valid content size")
                                   : std::to_string(content) + " bytes") +
                              ", expected " + std::to_string(values));
  void* into = dst;
  if (narrow) {
    scratch.resize(values);
    into = scratch.data();
  }
  const size_t r = ZSTD_decompressDCtx(dctx, into, values, src, e.stored_size);
  if (ZSTD_isError(r)) return Status::Corruption(Where(name, e.kind) + ": zstd: " + ZSTD_getErrorName(r));
  if (r != values)
    return Status::Corruption(Where(name, e.kind) + ": decompressed to " + std::to_string(r) + " bytes, expected " +
                              std::to_string(values));
  if (narrow) Widen(codec.dtype, scratch.data(), values / 2, static_cast<float*>(dst));
  return Status::Ok();
}

}  // namespace

Status ShardDecoder::Decode(std::span<const std::byte> file, const std::string& name, const ShardExpectation& expect,
                            SectionMask mask, ClusterData& out) {
  if (expect.file_size != 0 && file.size() != expect.file_size)
    return Status::Corruption(name + ": file has " + std::to_string(file.size()) + " bytes, the manifest records " +
                              std::to_string(expect.file_size));
  CGCN_ASSIGN_OR_RETURN(const ShardHeader h, ParseShardHeader(file, name));
  auto mismatch = [&](const char* field, uint64_t got, uint64_t want) {
    return Status::Corruption(name + ": header " + field + " is " + std::to_string(got) + ", the manifest says " +
                              std::to_string(want));
  };
  if (expect.header_checksum != 0 && h.header_checksum != expect.header_checksum)
    return Status::Corruption(name + ": header checksum " + Hex64(h.header_checksum) + " differs from the manifest's " +
                              Hex64(expect.header_checksum) + " (shard file replaced or stale manifest)");
  if (h.cluster_id != expect.cluster_id) return mismatch("cluster id", h.cluster_id, expect.cluster_id);
  if (h.num_clusters != expect.num_clusters) return mismatch("cluster count", h.num_clusters, expect.num_clusters);
  if (h.num_nodes != expect.num_nodes) return mismatch("node count", h.num_nodes, expect.num_nodes);
  if (h.feat_dim != expect.feat_dim) return mismatch("feature dimension", h.feat_dim, expect.feat_dim);
  if (h.num_classes != expect.num_classes) return mismatch("class count", h.num_classes, expect.num_classes);
  if (h.label_tasks != expect.label_tasks) return mismatch("label task count", h.label_tasks, expect.label_tasks);

  auto* dctx = static_cast<ZSTD_DCtx*>(dctx_);
  const uint32_t n = h.num_nodes;
  out.cluster_id = h.cluster_id;
  out.num_clusters = h.num_clusters;
  out.num_nodes = n;
  out.feat_dim = h.feat_dim;
  out.num_classes = h.num_classes;
  out.label_tasks = h.label_tasks;
  // Sections not decoded are left empty. Those decoded are resized below without clearing first:
  // a buffer reused at the same size is then overwritten, not zero-filled and overwritten.
  if (!(mask & SectionBit(SectionKind::kNodes))) out.node_ids.clear();
  if (!(mask & SectionBit(SectionKind::kAdjacency))) {
    out.adj_offsets.clear();
    out.adj_neighbors.clear();
  }
  if (!(mask & SectionBit(SectionKind::kInter))) {
    out.inter_groups.clear();
    out.inter_src.clear();
    out.inter_dst.clear();
  }
  if (!(mask & SectionBit(SectionKind::kFeatures))) out.features.clear();
  if (!(mask & SectionBit(SectionKind::kLabels))) {
    out.labels.clear();
    out.label_bits.clear();
  }
  if (!(mask & SectionBit(SectionKind::kSplit))) out.split.clear();
  auto section = [&](SectionKind k) -> const SectionEntry& { return h.sections[static_cast<uint32_t>(k) - 1]; };
  auto invalid = [&](SectionKind k, const std::string& what) {
    return Status::Corruption(Where(name, k) + ": " + what);
  };

  if (mask & SectionBit(SectionKind::kNodes)) {
    out.node_ids.resize(n);
    CGCN_RETURN_IF_ERROR(Inflate(dctx, file, section(SectionKind::kNodes), name, out.node_ids.data(), scratch_));
    for (uint32_t i = 0; i < n; ++i) {
      if (out.node_ids[i] >= expect.total_nodes)
        return invalid(SectionKind::kNodes, "entry " + std::to_string(i) + ": node id " +
                                                std::to_string(out.node_ids[i]) + " not below the graph's " +
                                                std::to_string(expect.total_nodes) + " nodes");
      if (i > 0 && out.node_ids[i] <= out.node_ids[i - 1])
        return invalid(SectionKind::kNodes, "entry " + std::to_string(i) + ": ids not strictly ascending");
    }
  }
  if (mask & SectionBit(SectionKind::kAdjacency)) {
    const SectionEntry& e = section(SectionKind::kAdjacency);
    out.adj_offsets.resize(uint64_t{n} + 1);
    out.adj_neighbors.resize(h.intra_entries);
    scratch_.resize(e.raw_size);
    CGCN_RETURN_IF_ERROR(Inflate(dctx, file, e, name, scratch_.data(), scratch_));
    std::memcpy(out.adj_offsets.data(), scratch_.data(), 4 * (uint64_t{n} + 1));
    if (h.intra_entries != 0)  // an empty vector's data() may be null, which memcpy must not get
      std::memcpy(out.adj_neighbors.data(), scratch_.data() + 4 * (uint64_t{n} + 1), 4 * h.intra_entries);
    if (out.adj_offsets[0] != 0) return invalid(SectionKind::kAdjacency, "offsets[0] is not 0");
    if (out.adj_offsets[n] != h.intra_entries)
      return invalid(SectionKind::kAdjacency, "offsets[n] = " + std::to_string(out.adj_offsets[n]) + ", header says " +
                                                  std::to_string(h.intra_entries) + " entries");
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t b = out.adj_offsets[i], en = out.adj_offsets[i + 1];
      if (en < b || en > h.intra_entries)
        return invalid(SectionKind::kAdjacency, "offsets not ascending at row " + std::to_string(i));
      for (uint32_t k = b; k < en; ++k) {
        const uint32_t j = out.adj_neighbors[k];
        if (j >= n || j == i || (k > b && j <= out.adj_neighbors[k - 1]))
          return invalid(SectionKind::kAdjacency, "row " + std::to_string(i) + ": neighbour " + std::to_string(j) +
                                                      " out of range, a self loop, or not strictly ascending");
      }
    }
  }
  if (mask & SectionBit(SectionKind::kInter)) {
    const SectionEntry& e = section(SectionKind::kInter);
    // The (src, dst) pairs of a group are distinct (checked below), src < n and dst a node of
    // another cluster, so there are at most n x (N - n) of them: a larger count is refused before
    // anything is allocated for it.
    const uint64_t max_inter = uint64_t{n} * (expect.total_nodes > n ? expect.total_nodes - n : 0);
    if (h.inter_entries > max_inter)
      return invalid(SectionKind::kInter, "header claims " + std::to_string(h.inter_entries) +
                                              " entries, more than n x (N - n) = " + std::to_string(max_inter) +
                                              " distinct edges to other clusters");
    scratch_.resize(e.raw_size);
    CGCN_RETURN_IF_ERROR(Inflate(dctx, file, e, name, scratch_.data(), scratch_));
    const uint32_t groups = h.num_inter_groups;
    out.inter_groups.resize(groups);
    out.inter_src.resize(h.inter_entries);
    out.inter_dst.resize(h.inter_entries);
    uint64_t begin = 0;
    const std::byte* p = scratch_.data();
    for (uint32_t g = 0; g < groups; ++g) {
      InterGroup& ig = out.inter_groups[g];
      ig.cluster = LoadU32(p + 8 * uint64_t{g});
      ig.count = LoadU32(p + 8 * uint64_t{g} + 4);
      ig.begin = begin;
      if (ig.cluster >= h.num_clusters || ig.cluster == h.cluster_id ||
          (g > 0 && ig.cluster <= out.inter_groups[g - 1].cluster))
        return invalid(SectionKind::kInter, "group " + std::to_string(g) + ": cluster " + std::to_string(ig.cluster) +
                                                " out of range, this cluster, or not ascending");
      if (ig.count == 0 || ig.count > h.inter_entries - begin)
        return invalid(SectionKind::kInter, "group " + std::to_string(g) + ": edge count " + std::to_string(ig.count) +
                                                " is zero or exceeds the header's total");
      begin += ig.count;
    }
    if (begin != h.inter_entries)
      return invalid(SectionKind::kInter, "group counts sum to " + std::to_string(begin) + ", header says " +
                                              std::to_string(h.inter_entries));
    const std::byte* q = p + 8 * uint64_t{groups};
    for (const InterGroup& ig : out.inter_groups) {  // the checks above made every count non-zero
      std::memcpy(out.inter_src.data() + ig.begin, q, 4 * uint64_t{ig.count});
      q += 4 * uint64_t{ig.count};
      std::memcpy(out.inter_dst.data() + ig.begin, q, 4 * uint64_t{ig.count});
      q += 4 * uint64_t{ig.count};
      const uint64_t bound =
          expect.cluster_sizes.empty() ? std::numeric_limits<uint32_t>::max() : expect.cluster_sizes[ig.cluster];
      for (uint64_t k = ig.begin; k < ig.begin + ig.count; ++k) {
        if (out.inter_src[k] >= n)
          return invalid(SectionKind::kInter, "edge " + std::to_string(k) + ": source " +
                                                  std::to_string(out.inter_src[k]) + " not below " + std::to_string(n));
        if (k > ig.begin && (out.inter_src[k] < out.inter_src[k - 1] ||
                             (out.inter_src[k] == out.inter_src[k - 1] && out.inter_dst[k] <= out.inter_dst[k - 1])))
          return invalid(SectionKind::kInter, "edge " + std::to_string(k) + ": (source, target) pairs of cluster " +
                                                  std::to_string(ig.cluster) + "'s group not strictly ascending");
        if (out.inter_dst[k] >= bound)
          return invalid(SectionKind::kInter, "edge " + std::to_string(k) + ": target " +
                                                  std::to_string(out.inter_dst[k]) + " not below cluster " +
                                                  std::to_string(ig.cluster) + "'s " + std::to_string(bound) +
                                                  " nodes");
      }
    }
  }
  if (mask & SectionBit(SectionKind::kFeatures)) {
    out.features.resize(uint64_t{n} * h.feat_dim);
    CGCN_RETURN_IF_ERROR(Inflate(dctx, file, section(SectionKind::kFeatures), name, out.features.data(), scratch_));
    // A float is NaN or +-inf exactly when its exponent bits are all ones; on the bits the loop
    // vectorizes (std::isfinite does not), which matters on a path that sees every feature.
    uint32_t non_finite = 0;
    for (const float f : out.features)
      non_finite |= static_cast<uint32_t>((std::bit_cast<uint32_t>(f) & 0x7f800000u) == 0x7f800000u);
    if (non_finite) {
      const auto it = std::find_if(out.features.begin(), out.features.end(), [](float f) { return !std::isfinite(f); });
      const auto idx = static_cast<uint64_t>(it - out.features.begin());
      return invalid(SectionKind::kFeatures, "row " + std::to_string(idx / h.feat_dim) + " column " +
                                                 std::to_string(idx % h.feat_dim) + ": not a finite number");
    }
  }
  if (mask & SectionBit(SectionKind::kLabels)) {
    const SectionEntry& e = section(SectionKind::kLabels);
    out.labels.resize(n);
    out.label_bits.resize(uint64_t{n} * LabelWords(h.label_tasks));
    if (h.label_tasks == 0) {
      CGCN_RETURN_IF_ERROR(Inflate(dctx, file, e, name, out.labels.data(), scratch_));
    } else {
      scratch_.resize(e.raw_size);
      CGCN_RETURN_IF_ERROR(Inflate(dctx, file, e, name, scratch_.data(), scratch_));
      if (n != 0) std::memcpy(out.labels.data(), scratch_.data(), 4 * uint64_t{n});  // n = 0: data() may be null
      if (!out.label_bits.empty())
        std::memcpy(out.label_bits.data(), scratch_.data() + 4 * uint64_t{n}, 4 * out.label_bits.size());
    }
    const uint32_t bound = h.label_tasks == 0 ? h.num_classes : 1;
    for (uint32_t i = 0; i < n; ++i)
      if (out.labels[i] >= bound && out.labels[i] != kNoLabel)
        return invalid(SectionKind::kLabels,
                       "row " + std::to_string(i) + ": label " + std::to_string(out.labels[i]) + " not below " +
                           std::to_string(bound) +
                           (h.label_tasks == 0 ? " classes" : " (a multi-label row's label is 0)") +
                           " (nor 0xffffffff, unlabeled)");
    if (const std::string why = CheckLabelBits(out.label_bits.data(), out.labels.data(), n, h.label_tasks);
        !why.empty())
      return invalid(SectionKind::kLabels, why);
  }
  if (mask & SectionBit(SectionKind::kSplit)) {
    out.split.resize(n);
    CGCN_RETURN_IF_ERROR(Inflate(dctx, file, section(SectionKind::kSplit), name, out.split.data(), scratch_));
    for (uint32_t i = 0; i < n; ++i) {
      const uint8_t s = out.split[i];
      if (SplitName(s) == nullptr)
        return invalid(SectionKind::kSplit,
                       "row " + std::to_string(i) + ": value " + std::to_string(s) + " is not 0, 1, 2 or 4");
    }
    // An unlabeled node counts in no metric: it may be in no split.
    if (mask & SectionBit(SectionKind::kLabels)) {
      for (uint32_t i = 0; i < n; ++i)
        if (out.labels[i] == kNoLabel && out.split[i] != 0)
          return invalid(SectionKind::kSplit, "row " + std::to_string(i) + ": an unlabeled node in the " +
                                                  SplitName(out.split[i]) + " split");
    }
  }
  for (uint32_t i = 0; i < kNumSections; ++i)
    if (mask & SectionBit(kSections[i].kind)) decompressed_bytes_ += h.sections[i].raw_size;
  return Status::Ok();
}

}  // namespace cgcn
