#include "cgcn/manifest.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cgcn/checksum.h"
#include "cgcn/shard_format.h"
#include "util/bytes.h"

namespace cgcn {
namespace {
// The fixed part of MANIFEST, in file order (docs/FORMAT.md), named in messages:
// "byte 16 (manifest field num_nodes): ...".
namespace field {
constexpr FieldSpec kMagic{0, 8, "magic"};
constexpr FieldSpec kVersion{8, 4, "version"};
constexpr FieldSpec kNumParts{12, 4, "num_parts"};
constexpr FieldSpec kNumNodes{16, 8, "num_nodes"};
constexpr FieldSpec kNumEdges{24, 8, "num_edges"};
constexpr FieldSpec kFeatDim{32, 4, "feat_dim"};
constexpr FieldSpec kNumClasses{36, 4, "num_classes"};
constexpr FieldSpec kSeed{40, 8, "seed"};
constexpr FieldSpec kZstdLevel{48, 4, "zstd_level"};
constexpr FieldSpec kLabelTasks{52, 4, "label_tasks"};  // version 1-2: "reserved", 0
constexpr FieldSpec kEdgeCut{56, 8, "edge_cut"};
constexpr FieldSpec kNumTrain{64, 8, "num_train"};
constexpr FieldSpec kNumValid{72, 8, "num_valid"};
constexpr FieldSpec kNumTest{80, 8, "num_test"};
constexpr FieldSpec kInputFingerprint{88, 8, "input_fingerprint"};
constexpr FieldSpec kInputBytes{96, 8, "input_bytes"};
constexpr FieldSpec kSplitNameLength{104, 4, "split_name_length"};
}  // namespace field
constexpr size_t kFixedBytes = field::kSplitNameLength.offset + field::kSplitNameLength.size;  // 108
std::string At(const FieldSpec& f) { return "byte " + std::to_string(f.offset) + " (manifest field " + f.name + ")"; }
constexpr size_t kShardEntryBytes = 48;
constexpr uint32_t kMaxParts = 1u << 24;
constexpr uint32_t kMaxSplitName = 255;
constexpr uint32_t kMaxInputFiles = 64;
constexpr uint32_t kMaxInputName = 4096;
constexpr uint32_t kMaxFastRpWeights = 64;
}  // namespace

uint64_t Manifest::LargestCluster() const {
  uint64_t largest = 0;
  for (const ShardInfo& s : shards) largest = std::max<uint64_t>(largest, s.num_nodes);
  return largest;
}

double Manifest::Balance() const {
  if (num_nodes == 0 || num_parts == 0) return 0.0;
  return static_cast<double>(LargestCluster()) * num_parts / static_cast<double>(num_nodes);
}

double Manifest::CutFraction() const {
  return num_edges == 0 ? 0.0 : static_cast<double>(edge_cut) / static_cast<double>(num_edges);
}

std::vector<uint64_t> Manifest::ClusterOffsets() const {
  std::vector<uint64_t> offsets(shards.size() + 1, 0);
  for (size_t i = 0; i < shards.size(); ++i) offsets[i + 1] = offsets[i] + shards[i].num_nodes;
  return offsets;
}

std::string ShardFileName(uint32_t cluster) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%06u.cgs", cluster);
  return buf;
}

std::vector<std::byte> EncodeManifest(const Manifest& m) {
  // The fixed part, each field at its place; the variable-length rest follows in order.
  std::vector<std::byte> out(kFixedBytes);
  auto put = [&out](const FieldSpec& f, auto value) {
    static_assert(std::is_trivially_copyable_v<decltype(value)>);
    assert(sizeof value == f.size);
    std::memcpy(out.data() + f.offset, &value, sizeof value);
  };
  std::memcpy(out.data() + field::kMagic.offset, kManifestMagic, field::kMagic.size);
  put(field::kVersion, kManifestVersion);
  put(field::kNumParts, m.num_parts);
  put(field::kNumNodes, m.num_nodes);
  put(field::kNumEdges, m.num_edges);
  put(field::kFeatDim, m.feat_dim);
  put(field::kNumClasses, m.num_classes);
  put(field::kSeed, m.seed);
  put(field::kZstdLevel, m.zstd_level);
  put(field::kLabelTasks, m.label_tasks);
  put(field::kEdgeCut, m.edge_cut);
  put(field::kNumTrain, m.num_train);
  put(field::kNumValid, m.num_valid);
  put(field::kNumTest, m.num_test);
  put(field::kInputFingerprint, m.input_fingerprint);
  put(field::kInputBytes, m.input_bytes);
  put(field::kSplitNameLength, static_cast<uint32_t>(m.split_name.size()));
  ByteWriter w(out);
  w.Raw(m.split_name.data(), m.split_name.size());
  w.U32(static_cast<uint32_t>(m.input_files.size()));
  for (const InputFileDigest& f : m.input_files) {
    w.U32(static_cast<uint32_t>(f.relative.size()));
    w.Raw(f.relative.data(), f.relative.size());
    w.U64(f.size);
    w.U64(f.checksum);
  }
  // Version 3: the feature source.
  w.U32(static_cast<uint32_t>(m.feature_source.kind));
  if (m.feature_source.kind == FeatureSourceKind::kFastRp) {
    const FastRpParams& p = m.feature_source.fastrp;
    w.U32(p.dim);
    w.U32(static_cast<uint32_t>(p.weights.size()));
    for (const float x : p.weights) w.U32(std::bit_cast<uint32_t>(x));
    w.U32(std::bit_cast<uint32_t>(p.beta));
    w.U64(std::bit_cast<uint64_t>(p.sparsity));
    w.U64(p.seed);
    w.U32((p.standardize ? 1u : 0u) | (p.log_degree ? 2u : 0u));
  }
  for (const ShardInfo& s : m.shards) {
    w.U32(s.num_nodes);
    w.U32(0);  // reserved
    w.U64(s.intra_entries);
    w.U64(s.inter_entries);
    w.U64(s.raw_bytes);
    w.U64(s.file_size);
    w.U64(s.header_checksum);
  }
  w.U64(Checksum64(out.data(), out.size()));
  return out;
}

Result<Manifest> DecodeManifest(std::span<const std::byte> bytes, const std::string& name) {
  auto corrupt = [&](const std::string& what) { return Status::Corruption(name + ": " + what); };
  if (bytes.size() < kFixedBytes + 8)
    return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes, a manifest needs at least " +
                   std::to_string(kFixedBytes + 8));
  if (std::memcmp(bytes.data() + field::kMagic.offset, kManifestMagic, field::kMagic.size) != 0)
    return corrupt(At(field::kMagic) + ": bad magic, expected \"CGCNMANI\" (not a cgcn manifest)");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  const uint64_t computed = Checksum64(bytes.data(), bytes.size() - 8);
  if (stored != computed)
    return corrupt("checksum mismatch (last 8 bytes: stored " + Hex64(stored) + ", computed " + Hex64(computed) + ")");
  // The fixed part (bytes.size() >= kFixedBytes + 8), each field from its place.
  auto get = [&bytes](const FieldSpec& f, auto* value) {
    assert(sizeof *value == f.size);
    std::memcpy(value, bytes.data() + f.offset, sizeof *value);
  };
  Manifest m;
  uint32_t reserved = 0, name_len = 0;  // reserved: the shard entries' field
  get(field::kVersion, &m.version);
  // Version 1 is read too: it differs from 2 only in bounding 2E by 2^31 - 1, which a version-1
  // file meets (docs/FORMAT.md, change log).
  if (m.version < kOldestManifestVersion || m.version > kManifestVersion)
    return corrupt(At(field::kVersion) + ": unsupported manifest version " + std::to_string(m.version) +
                   " (this build reads " + std::to_string(kOldestManifestVersion) + " to " +
                   std::to_string(kManifestVersion) + ")");
  get(field::kNumParts, &m.num_parts);
  get(field::kNumNodes, &m.num_nodes);
  get(field::kNumEdges, &m.num_edges);
  get(field::kFeatDim, &m.feat_dim);
  get(field::kNumClasses, &m.num_classes);
  get(field::kSeed, &m.seed);
  get(field::kZstdLevel, &m.zstd_level);
  get(field::kLabelTasks, &m.label_tasks);
  get(field::kEdgeCut, &m.edge_cut);
  get(field::kNumTrain, &m.num_train);
  get(field::kNumValid, &m.num_valid);
  get(field::kNumTest, &m.num_test);
  get(field::kInputFingerprint, &m.input_fingerprint);
  get(field::kInputBytes, &m.input_bytes);
  get(field::kSplitNameLength, &name_len);
  // The variable-length rest, in order, checksum excluded.
  ByteReader r(bytes.first(bytes.size() - 8));
  (void)r.Skip(kFixedBytes);
  if (m.num_parts == 0 || m.num_parts > kMaxParts)
    return corrupt(At(field::kNumParts) + ": part count " + std::to_string(m.num_parts) + " outside [1, 2^24]");
  if (m.num_nodes == 0 || m.num_nodes >= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
    return corrupt(At(field::kNumNodes) + ": node count " + std::to_string(m.num_nodes) + " outside [1, 2^31-2]");
  // A simple graph has at most N(N-1)/2 edges (< 2^61 for N < 2^31 - 1, so 2E cannot wrap).
  if (m.num_edges > m.num_nodes * (m.num_nodes - 1) / 2)
    return corrupt(At(field::kNumEdges) + ": edge count " + std::to_string(m.num_edges) +
                   " exceeds N(N-1)/2 = " + std::to_string(m.num_nodes * (m.num_nodes - 1) / 2) + " for " +
                   std::to_string(m.num_nodes) + " nodes");
  if (m.feat_dim == 0 || m.feat_dim > (1u << 24))
    return corrupt(At(field::kFeatDim) + ": feature dimension " + std::to_string(m.feat_dim) + " outside [1, 2^24]");
  if (m.num_classes == 0 || m.num_classes > (1u << 16))
    return corrupt(At(field::kNumClasses) + ": class count " + std::to_string(m.num_classes) + " outside [1, 65536]");
  if (m.version < 3 && m.label_tasks != 0)
    return corrupt(At(field::kLabelTasks) + ": reserved field is not zero (version " + std::to_string(m.version) + ")");
  if (m.label_tasks != 0 && (m.label_tasks < 2 || m.label_tasks != m.num_classes))
    return corrupt(At(field::kLabelTasks) + ": label task count " + std::to_string(m.label_tasks) +
                   ", expected 0 (multi-class) or the class count " + std::to_string(m.num_classes) +
                   " (at least 2, multi-label)");
  if (m.edge_cut > m.num_edges) return corrupt(At(field::kEdgeCut) + ": edge cut exceeds the edge count");
  // Compared one at a time: the sum of three untrusted u64 can wrap around to a small value.
  if (m.num_train > m.num_nodes || m.num_valid > m.num_nodes - m.num_train ||
      m.num_test > m.num_nodes - m.num_train - m.num_valid)
    return corrupt("bytes " + std::to_string(field::kNumTrain.offset) + "-" +
                   std::to_string(field::kNumTest.offset + field::kNumTest.size - 1) +
                   " (manifest fields num_train, num_valid, num_test): split sizes exceed the node count");
  if (name_len > kMaxSplitName)
    return corrupt(At(field::kSplitNameLength) + ": split name length " + std::to_string(name_len) + " exceeds 255");
  if (r.remaining() < name_len + 4) return corrupt("truncated in the split name");
  m.split_name.resize(name_len);
  (void)r.Raw(m.split_name.data(), name_len);
  uint32_t num_files = 0;
  (void)r.U32(&num_files);
  if (num_files > kMaxInputFiles)
    return corrupt("byte " + std::to_string(r.pos() - 4) + ": input file count " + std::to_string(num_files) +
                   " exceeds 64");
  m.input_files.resize(num_files);
  for (InputFileDigest& f : m.input_files) {
    uint32_t len = 0;
    if (!r.U32(&len) || len > kMaxInputName || r.remaining() < len + 16)
      return corrupt("byte " + std::to_string(r.pos()) + ": input file entry truncated or name too long");
    f.relative.resize(len);
    (void)r.Raw(f.relative.data(), len);
    (void)r.U64(&f.size);
    (void)r.U64(&f.checksum);
  }
  if (m.version >= 3) {
    const size_t at = r.pos();
    uint32_t kind = 0;
    if (!r.U32(&kind)) return corrupt("byte " + std::to_string(at) + ": truncated in the feature source");
    if (kind == static_cast<uint32_t>(FeatureSourceKind::kFastRp)) {
      FastRpParams& p = m.feature_source.fastrp;
      uint32_t count = 0, beta = 0, flags = 0;
      uint64_t s = 0;
      if (!r.U32(&p.dim) || !r.U32(&count) || count == 0 || count > kMaxFastRpWeights ||
          r.remaining() < 4 * uint64_t{count} + 4 + 8 + 8 + 4)
        return corrupt("byte " + std::to_string(at) + ": FastRP feature source truncated or with " +
                       std::to_string(count) + " iteration weights (expected 1 to 64)");
      p.weights.resize(count);
      for (float& x : p.weights) {
        uint32_t bits = 0;
        (void)r.U32(&bits);
        x = std::bit_cast<float>(bits);
      }
      (void)r.U32(&beta);
      (void)r.U64(&s);
      (void)r.U64(&p.seed);
      (void)r.U32(&flags);
      p.beta = std::bit_cast<float>(beta);
      p.sparsity = std::bit_cast<double>(s);
      p.standardize = (flags & 1u) != 0;
      p.log_degree = (flags & 2u) != 0;
      if (flags > 3)
        return corrupt("byte " + std::to_string(r.pos() - 4) + ": FastRP flags " + std::to_string(flags) +
                       ", expected bits 0 (standardize) and 1 (log-degree) only");
      if (p.width() != m.feat_dim || !(p.sparsity >= 1.0))
        return corrupt("byte " + std::to_string(at) + ": FastRP feature source of width " + std::to_string(p.width()) +
                       " and s " + std::to_string(p.sparsity) + " disagrees with the feature dimension " +
                       std::to_string(m.feat_dim) + " (or s < 1)");
      m.feature_source.kind = FeatureSourceKind::kFastRp;
    } else if (kind != static_cast<uint32_t>(FeatureSourceKind::kFile)) {
      return corrupt("byte " + std::to_string(at) + ": feature source " + std::to_string(kind) +
                     ", expected 0 (file) or 1 (fastrp)");
    }
  }
  const uint64_t want = r.pos() + uint64_t{m.num_parts} * kShardEntryBytes + 8;
  if (bytes.size() != want)
    return corrupt("size " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(want) + " for " +
                   std::to_string(m.num_parts) + " shards");
  m.shards.resize(m.num_parts);
  uint64_t nodes = 0, intra = 0, inter = 0;
  for (uint32_t k = 0; k < m.num_parts; ++k) {
    ShardInfo& s = m.shards[k];
    const size_t at = r.pos();
    (void)r.U32(&s.num_nodes);
    (void)r.U32(&reserved);
    (void)r.U64(&s.intra_entries);
    (void)r.U64(&s.inter_entries);
    (void)r.U64(&s.raw_bytes);
    (void)r.U64(&s.file_size);
    (void)r.U64(&s.header_checksum);
    if (reserved != 0)
      return corrupt("byte " + std::to_string(at + 4) + ": shard " + std::to_string(k) +
                     ": reserved field is not zero");
    if (s.num_nodes > m.num_nodes || s.intra_entries > 2 * m.num_edges || s.inter_entries > 2 * m.num_edges)
      return corrupt("byte " + std::to_string(at) + ": shard " + std::to_string(k) +
                     ": counts exceed the graph's totals");
    nodes += s.num_nodes;
    intra += s.intra_entries;
    inter += s.inter_entries;
    if (intra + inter > 2 * m.num_edges) break;  // refused below; stopping here keeps the sums from wrapping
  }
  const auto edge_counts_disagree = [&] {
    return corrupt("shard edge counts (intra " + std::to_string(intra) + ", inter " + std::to_string(inter) +
                   ") disagree with " + std::to_string(m.num_edges) + " edges and edge cut " +
                   std::to_string(m.edge_cut));
  };
  if (intra + inter > 2 * m.num_edges) return edge_counts_disagree();
  if (nodes != m.num_nodes)
    return corrupt("shard node counts sum to " + std::to_string(nodes) + ", header says " +
                   std::to_string(m.num_nodes));
  if (intra + inter != 2 * m.num_edges || inter != 2 * m.edge_cut) return edge_counts_disagree();
  return m;
}

std::string FeatureSource::Describe() const {
  if (kind == FeatureSourceKind::kFile) return "file";
  const FastRpParams& p = fastrp;
  std::string w;
  for (const float x : p.weights) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%g", w.empty() ? "" : ",", static_cast<double>(x));
    w += b;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "fastrp(dim %u, weights [%s], beta %g, s %.6g, seed %llu%s%s)", p.dim, w.c_str(),
                static_cast<double>(p.beta), p.sparsity, static_cast<unsigned long long>(p.seed),
                p.standardize ? ", standardize" : "", p.log_degree ? ", log-degree" : "");
  return buf;
}

std::string DescribeInputDifferences(const std::vector<InputFileDigest>& recorded,
                                     const std::vector<InputFileDigest>& actual) {
  std::string d;
  auto add = [&](const std::string& s) { d += (d.empty() ? "" : "; ") + s; };
  for (const InputFileDigest& r : recorded) {
    auto it =
        std::find_if(actual.begin(), actual.end(), [&](const InputFileDigest& a) { return a.relative == r.relative; });
    if (it == actual.end())
      add(r.relative + ": missing now");
    else if (it->size != r.size)
      add(r.relative + ": " + std::to_string(r.size) + " -> " + std::to_string(it->size) + " bytes");
    else if (it->checksum != r.checksum)
      add(r.relative + ": same size, content differs");
  }
  for (const InputFileDigest& a : actual)
    if (std::none_of(recorded.begin(), recorded.end(),
                     [&](const InputFileDigest& r) { return r.relative == a.relative; }))
      add(a.relative + ": not part of the recorded input");
  return d;
}

}  // namespace cgcn
