// libFuzzer target: DecodeManifest on arbitrary bytes, as given and with the checksum repaired.
// It must never crash, leak or allocate beyond the input's size; whatever it accepts must
// satisfy every rule of docs/FORMAT.md and encode back to the very same bytes (an older version:
// to bytes of the current version that decode to the same manifest).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "cgcn/manifest.h"
#include "cgcn/raw_reader.h"
#include "fuzz/fuzz_util.h"

namespace cgcn::fuzz {
namespace {

void CheckAccepted(const Manifest& m, std::span<const std::byte> bytes) {
  CGCN_FUZZ_CHECK(m.version >= kOldestManifestVersion && m.version <= kManifestVersion);
  CGCN_FUZZ_CHECK(m.num_parts >= 1 && m.num_parts <= (1u << 24));
  CGCN_FUZZ_CHECK(m.shards.size() == m.num_parts);
  CGCN_FUZZ_CHECK(m.num_nodes >= 1 && m.num_nodes < (uint64_t{1} << 31) - 1);
  CGCN_FUZZ_CHECK(m.num_edges <= m.num_nodes * (m.num_nodes - 1) / 2);
  CGCN_FUZZ_CHECK(m.feat_dim >= 1 && m.feat_dim <= (1u << 24));
  CGCN_FUZZ_CHECK(m.num_classes >= 1 && m.num_classes <= 65536);
  CGCN_FUZZ_CHECK(m.edge_cut <= m.num_edges);
  // train + valid + test <= N, in arithmetic that cannot wrap.
  const unsigned __int128 split = static_cast<unsigned __int128>(m.num_train) + m.num_valid + m.num_test;
  CGCN_FUZZ_CHECK(split <= m.num_nodes);
  CGCN_FUZZ_CHECK(m.split_name.size() <= 255);
  uint64_t nodes = 0, intra = 0, inter = 0;
  for (const ShardInfo& s : m.shards) {
    nodes += s.num_nodes;
    intra += s.intra_entries;
    inter += s.inter_entries;
  }
  CGCN_FUZZ_CHECK(nodes == m.num_nodes);
  CGCN_FUZZ_CHECK(intra + inter == 2 * m.num_edges);
  CGCN_FUZZ_CHECK(inter == 2 * m.edge_cut);
  const std::vector<uint64_t> offsets = m.ClusterOffsets();
  CGCN_FUZZ_CHECK(offsets.size() == m.num_parts + 1 && offsets.back() == m.num_nodes);
  // 108 fixed bytes + split name + K records (+ feature source) + shard table + checksum (docs/FORMAT.md).
  CGCN_FUZZ_CHECK(m.input_files.size() <= 64);
  uint64_t size = 108 + m.split_name.size() + 4 + 48 * uint64_t{m.num_parts} + 8;
  for (const InputFileDigest& f : m.input_files) {
    CGCN_FUZZ_CHECK(f.relative.size() <= 4096);
    size += 4 + f.relative.size() + 16;
  }
  if (m.version >= 3) {  // the feature source: its kind, and FastRP's parameters
    size += 4;
    if (m.feature_source.kind == FeatureSourceKind::kFastRp) {
      const FastRpParams& p = m.feature_source.fastrp;
      size += 4 + 4 + 4 * uint64_t{p.weights.size()} + 4 + 8 + 8 + 4;
      CGCN_FUZZ_CHECK(p.width() == m.feat_dim && p.sparsity >= 1.0 && !p.weights.empty());
    }
  } else {
    CGCN_FUZZ_CHECK(m.feature_source.kind == FeatureSourceKind::kFile && m.label_tasks == 0);
  }
  CGCN_FUZZ_CHECK(m.label_tasks == 0 || (m.label_tasks >= 2 && m.label_tasks == m.num_classes));
  CGCN_FUZZ_CHECK(bytes.size() == size);
  const std::vector<std::byte> again = EncodeManifest(m);
  if (m.version == kManifestVersion) {
    CGCN_FUZZ_CHECK(again.size() == bytes.size() && std::memcmp(again.data(), bytes.data(), bytes.size()) == 0);
    return;
  }
  // An older version is written back as the current one (EncodeManifest writes only that): the
  // result decodes to the same manifest, now at the current version, and is a fixed point.
  Result<Manifest> upgraded = DecodeManifest(again, "MANIFEST");
  CGCN_FUZZ_CHECK(upgraded.ok() && upgraded->version == kManifestVersion);
  Manifest older = m;
  older.version = kManifestVersion;
  const std::vector<std::byte> twice = EncodeManifest(*upgraded);
  CGCN_FUZZ_CHECK(twice == again && EncodeManifest(older) == again);
  CGCN_FUZZ_CHECK(upgraded->num_nodes == m.num_nodes && upgraded->num_edges == m.num_edges &&
                  upgraded->shards.size() == m.shards.size() && upgraded->split_name == m.split_name);
}

void DecodeOne(std::span<const std::byte> bytes) {
  Result<Manifest> m = DecodeManifest(bytes, "MANIFEST");
  if (m.ok()) {
    CheckAccepted(*m, bytes);
  } else {
    CGCN_FUZZ_CHECK(m.status().code() == StatusCode::kCorruption);
    CGCN_FUZZ_CHECK(m.status().message().rfind("MANIFEST: ", 0) == 0);
  }
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  cgcn::fuzz::DecodeOne(std::span(bytes, size));
  if (size >= 8) {
    std::vector<std::byte> repaired(bytes, bytes + size);
    cgcn::fuzz::RepairTrailingChecksum(repaired);
    cgcn::fuzz::DecodeOne(repaired);
  }
  return 0;
}
