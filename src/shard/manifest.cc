#include "cgcn/manifest.h"

#include <cstdio>
#include <cstring>
#include <limits>

#include "cgcn/checksum.h"
#include "util/bytes.h"

namespace cgcn {
namespace {
constexpr size_t kFixedBytes = 108;  // through the split name length
constexpr size_t kShardEntryBytes = 48;
constexpr uint32_t kMaxParts = 1u << 24;
constexpr uint32_t kMaxSplitName = 255;
constexpr uint32_t kMaxInputFiles = 64;
constexpr uint32_t kMaxInputName = 4096;
}  // namespace

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
  std::vector<std::byte> out;
  ByteWriter w(out);
  w.Raw(kManifestMagic, 8);
  w.U32(kManifestVersion);
  w.U32(m.num_parts);
  w.U64(m.num_nodes);
  w.U64(m.num_edges);
  w.U32(m.feat_dim);
  w.U32(m.num_classes);
  w.I64(m.seed);
  w.U32(static_cast<uint32_t>(m.zstd_level));
  w.U32(0);  // reserved
  w.U64(m.edge_cut);
  w.U64(m.num_train);
  w.U64(m.num_valid);
  w.U64(m.num_test);
  w.U64(m.input_fingerprint);
  w.U64(m.input_bytes);
  w.U32(static_cast<uint32_t>(m.split_name.size()));
  w.Raw(m.split_name.data(), m.split_name.size());
  w.U32(static_cast<uint32_t>(m.input_files.size()));
  for (const InputFileDigest& f : m.input_files) {
    w.U32(static_cast<uint32_t>(f.relative.size()));
    w.Raw(f.relative.data(), f.relative.size());
    w.U64(f.size);
    w.U64(f.checksum);
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
  if (std::memcmp(bytes.data(), kManifestMagic, 8) != 0)
    return corrupt("byte 0: bad magic, expected \"CGCNMANI\" (not a cgcn manifest)");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  const uint64_t computed = Checksum64(bytes.data(), bytes.size() - 8);
  if (stored != computed)
    return corrupt("checksum mismatch (last 8 bytes: stored " + Hex64(stored) + ", computed " + Hex64(computed) + ")");
  Manifest m;
  ByteReader r(bytes.first(bytes.size() - 8));
  char magic[8];
  uint32_t zstd_level = 0, reserved = 0, name_len = 0;
  (void)r.Raw(magic, 8);
  (void)r.U32(&m.version);
  if (m.version != kManifestVersion)
    return corrupt("byte 8: unsupported manifest version " + std::to_string(m.version) + " (this build reads " +
                   std::to_string(kManifestVersion) + ")");
  (void)r.U32(&m.num_parts);
  (void)r.U64(&m.num_nodes);
  (void)r.U64(&m.num_edges);
  (void)r.U32(&m.feat_dim);
  (void)r.U32(&m.num_classes);
  (void)r.I64(&m.seed);
  (void)r.U32(&zstd_level);
  (void)r.U32(&reserved);
  (void)r.U64(&m.edge_cut);
  (void)r.U64(&m.num_train);
  (void)r.U64(&m.num_valid);
  (void)r.U64(&m.num_test);
  (void)r.U64(&m.input_fingerprint);
  (void)r.U64(&m.input_bytes);
  (void)r.U32(&name_len);
  m.zstd_level = static_cast<int32_t>(zstd_level);
  if (m.num_parts == 0 || m.num_parts > kMaxParts)
    return corrupt("byte 12: part count " + std::to_string(m.num_parts) + " outside [1, 2^24]");
  if (m.num_nodes == 0 || m.num_nodes >= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
    return corrupt("byte 16: node count " + std::to_string(m.num_nodes) + " outside [1, 2^31-2]");
  if (m.num_edges > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) / 2)
    return corrupt("byte 24: edge count " + std::to_string(m.num_edges) + " exceeds METIS's limit");
  if (m.feat_dim == 0 || m.feat_dim > (1u << 24))
    return corrupt("byte 32: feature dimension " + std::to_string(m.feat_dim) + " outside [1, 2^24]");
  if (m.num_classes == 0 || m.num_classes > (1u << 16))
    return corrupt("byte 36: class count " + std::to_string(m.num_classes) + " outside [1, 65536]");
  if (reserved != 0) return corrupt("byte 52: reserved field is not zero");
  if (m.edge_cut > m.num_edges) return corrupt("byte 56: edge cut exceeds the edge count");
  // Compared one at a time: the sum of three untrusted u64 can wrap around to a small value.
  if (m.num_train > m.num_nodes || m.num_valid > m.num_nodes - m.num_train ||
      m.num_test > m.num_nodes - m.num_train - m.num_valid)
    return corrupt("bytes 64-87: split sizes exceed the node count");
  if (name_len > kMaxSplitName)
    return corrupt("byte 104: split name length " + std::to_string(name_len) + " exceeds 255");
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
  }
  if (nodes != m.num_nodes)
    return corrupt("shard node counts sum to " + std::to_string(nodes) + ", header says " +
                   std::to_string(m.num_nodes));
  if (intra + inter != 2 * m.num_edges || inter != 2 * m.edge_cut)
    return corrupt("shard edge counts (intra " + std::to_string(intra) + ", inter " + std::to_string(inter) +
                   ") disagree with " + std::to_string(m.num_edges) + " edges and edge cut " +
                   std::to_string(m.edge_cut));
  return m;
}

}  // namespace cgcn
