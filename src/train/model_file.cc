// Model files (docs/FORMAT.md, "Model file").
#include "cgcn/model_file.h"

#include <cmath>
#include <cstring>
#include <functional>

#include "cgcn/checksum.h"
#include "util/bytes.h"
#include "util/file_util.h"

namespace cgcn {
namespace {
constexpr char kModelMagic[8] = {'C', 'G', 'C', 'N', 'M', 'O', 'D', 'L'};
constexpr uint32_t kModelVersion = 2;       // written; 1 is still read (a plain GCN)
constexpr size_t kModelHeaderBytesV1 = 48;  // through K
constexpr size_t kModelHeaderBytes = 80;    // version 2: K, then the layer fields and B

// --- Feature normalization (wt-flow): the field at byte 32 is a FeatureNormKind (0 none, 1 row,
// 2 standard); with 2, in_dim f32 means and in_dim f32 inverse standard deviations follow the
// parameters.
uint64_t NormBlockBytes(uint32_t kind, uint32_t in_dim) {
  return kind == static_cast<uint32_t>(FeatureNormKind::kStandard) ? uint64_t{8} * in_dim : 0;
}
void WriteNormBlock(ByteWriter& w, const FeatureNorm& norm) {
  if (norm.kind != FeatureNormKind::kStandard) return;
  w.Raw(norm.mean.data(), norm.mean.size() * sizeof(float));
  w.Raw(norm.inv_std.data(), norm.inv_std.size() * sizeof(float));
}
// Reads the block at `offset` (the reader is there); every value must be finite.
Status ReadNormBlock(ByteReader& r, uint32_t kind, uint32_t in_dim, size_t offset, FeatureNorm* norm,
                     const std::function<Status(size_t, const std::string&)>& at) {
  FeatureNorm n;
  n.kind = static_cast<FeatureNormKind>(kind);
  if (n.kind == FeatureNormKind::kStandard) {
    n.mean.resize(in_dim);
    n.inv_std.resize(in_dim);
    (void)r.Raw(n.mean.data(), in_dim * sizeof(float));
    (void)r.Raw(n.inv_std.data(), in_dim * sizeof(float));
    for (uint32_t i = 0; i < 2 * in_dim; ++i) {
      const float v = i < in_dim ? n.mean[i] : n.inv_std[i - in_dim];
      if (!std::isfinite(v))
        return at(offset + 4 * uint64_t{i}, std::string(i < in_dim ? "feature mean " : "feature inverse std ") +
                                                std::to_string(i % in_dim) + " is not finite");
    }
  }
  if (norm) *norm = std::move(n);
  return Status::Ok();
}
// --- end of the feature normalization block

}  // namespace

Status SaveModel(const std::string& path, const Gcn& model, const FeatureNorm& norm) {
  const GcnConfig& c = model.config();
  std::vector<std::byte> out;
  out.reserve(kModelHeaderBytes + (model.params().size() + model.buffers().size()) * sizeof(float) + 8);
  ByteWriter w(out);
  w.Raw(kModelMagic, 8);
  w.U32(kModelVersion);
  w.U32(c.in_dim);
  w.U32(c.hidden);
  w.U32(c.out_dim);
  w.U32(c.layers);
  w.F32(c.dropout);
  if (norm.kind == FeatureNormKind::kStandard && (norm.mean.size() != c.in_dim || norm.inv_std.size() != c.in_dim))
    return Status::Internal(path + ": feature standardization has the wrong width for the model");
  w.U32(static_cast<uint32_t>(norm.kind));
  w.U32(0);  // reserved
  w.U64(model.params().size());
  w.U32(static_cast<uint32_t>(c.kind));
  w.F32(c.diag_lambda);
  w.U32(c.residual ? 1 : 0);
  w.U32(static_cast<uint32_t>(c.norm));
  w.U32(c.heads);
  w.U32(0);  // reserved
  w.U64(model.buffers().size());
  w.Raw(model.params().data(), model.params().size() * sizeof(float));
  w.Raw(model.buffers().data(), model.buffers().size() * sizeof(float));
  WriteNormBlock(w, norm);
  w.U64(Checksum64(out.data(), out.size()));
  return WriteFileAtomic(path, out);
}

Result<Gcn> LoadModel(const std::string& path, FeatureNorm* feature_norm) {
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ReadWholeFile(path));
  auto corrupt = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  auto at = [&](size_t offset, const std::string& what) {
    return corrupt("byte " + std::to_string(offset) + ": " + what);
  };
  if (bytes.size() < kModelHeaderBytesV1 + 8)
    return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes, expected at least " +
                   std::to_string(kModelHeaderBytesV1 + 8));
  if (std::memcmp(bytes.data(), kModelMagic, 8) != 0) return at(0, "bad magic, expected \"CGCNMODL\"");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  if (stored != Checksum64(bytes.data(), bytes.size() - 8)) return corrupt("checksum mismatch");
  ByteReader r(std::span<const std::byte>(bytes).first(bytes.size() - 8));
  char magic[8];
  uint32_t version = 0, norm = 0, reserved = 0;
  uint64_t count = 0, buffer_count = 0;
  GcnConfig c;
  (void)r.Raw(magic, 8);
  (void)r.U32(&version);
  (void)r.U32(&c.in_dim);
  (void)r.U32(&c.hidden);
  (void)r.U32(&c.out_dim);
  (void)r.U32(&c.layers);
  (void)r.F32(&c.dropout);
  (void)r.U32(&norm);
  (void)r.U32(&reserved);
  (void)r.U64(&count);
  if (version != 1 && version != kModelVersion)
    return at(
        8, "unsupported model version " + std::to_string(version) + ", expected 1 or " + std::to_string(kModelVersion));
  // Version 1: a plain GCN. Version 2 adds the layer fields and the buffer count B.
  size_t header = kModelHeaderBytesV1;
  if (version == 2) {
    header = kModelHeaderBytes;
    if (bytes.size() < kModelHeaderBytes + 8)
      return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes, expected at least " +
                     std::to_string(kModelHeaderBytes + 8) + " for version 2");
    uint32_t kind = 0, residual = 0, norm_kind = 0, reserved2 = 0;
    (void)r.U32(&kind);
    (void)r.F32(&c.diag_lambda);
    (void)r.U32(&residual);
    (void)r.U32(&norm_kind);
    (void)r.U32(&c.heads);
    (void)r.U32(&reserved2);
    (void)r.U64(&buffer_count);
    if (kind > static_cast<uint32_t>(LayerKind::kGat))
      return at(48, "layer kind " + std::to_string(kind) + ", expected 0 (gcn), 1 (cluster-gcn), 2 (sage) or 3 (gat)");
    if (!std::isfinite(c.diag_lambda)) return at(52, "diag lambda is not finite");
    if (residual > 1) return at(56, "residual flag " + std::to_string(residual) + ", expected 0 or 1");
    if (norm_kind > static_cast<uint32_t>(NormKind::kBatch))
      return at(60, "norm " + std::to_string(norm_kind) + ", expected 0 (none), 1 (layer) or 2 (batch)");
    if (c.heads < 1 || c.heads > 64 ||
        (kind == static_cast<uint32_t>(LayerKind::kGat) ? c.hidden % c.heads != 0 : c.heads != 1))
      return at(64, "heads " + std::to_string(c.heads) +
                        (kind == static_cast<uint32_t>(LayerKind::kGat)
                             ? ", expected 1 to 64 dividing the " + std::to_string(c.hidden) + " hidden units"
                             : std::string(", expected 1 for this layer kind")));
    if (reserved2 != 0) return at(68, "reserved field " + std::to_string(reserved2) + ", expected 0");
    c.kind = static_cast<LayerKind>(kind);
    c.residual = residual != 0;
    c.norm = static_cast<NormKind>(norm_kind);
  }
  auto in_range = [&](size_t offset, const char* what, uint32_t v, uint32_t max) -> Status {
    if (v >= 1 && v <= max) return Status::Ok();
    return at(offset, std::string(what) + " " + std::to_string(v) + " out of range [1, " + std::to_string(max) + "]");
  };
  CGCN_RETURN_IF_ERROR(in_range(12, "input dimension", c.in_dim, 1u << 24));
  CGCN_RETURN_IF_ERROR(in_range(16, "hidden units", c.hidden, 1u << 16));
  CGCN_RETURN_IF_ERROR(in_range(20, "output dimension", c.out_dim, 1u << 16));
  CGCN_RETURN_IF_ERROR(in_range(24, "layer count", c.layers, 64));
  if (!(c.dropout >= 0.0f && c.dropout <= 1.0f))  // also false for NaN
    return at(28, "dropout " + std::to_string(c.dropout) + " is not in [0, 1]");
  if (norm > (version == 1 ? 1u : 2u))  // version 1 had a row-normalization flag
    return at(32, "feature normalization " + std::to_string(norm) +
                      (version == 1 ? ", expected 0 (none) or 1 (row) in a version 1 file"
                                    : ", expected 0 (none), 1 (row) or 2 (standard)"));
  if (reserved != 0) return at(36, "reserved field " + std::to_string(reserved) + ", expected 0");
  // The parameter and buffer counts the dimensions give, checked against K, B and the file size
  // before anything is allocated for them (at most 2 x (2^24 x 2^16 + 63 x 2^32) + ...: far
  // below 2^64).
  const uint64_t expected = Gcn::ParamCount(c);
  if (count != expected)
    return at(40, "parameter count " + std::to_string(count) + " does not match the dimensions (" +
                      std::to_string(c.in_dim) + " inputs, " + std::to_string(c.layers) + " " + LayerKindName(c.kind) +
                      " layers of " + std::to_string(c.hidden) + " hidden units, " + std::to_string(c.out_dim) +
                      " outputs" +
                      (c.norm != NormKind::kNone ? std::string(", ") + NormKindName(c.norm) + " norm" : "") + ": " +
                      std::to_string(expected) + " parameters)");
  const uint64_t expected_buffers = Gcn::BufferCount(c);
  if (buffer_count != expected_buffers)
    return at(72, "buffer count " + std::to_string(buffer_count) + " does not match the layers (" +
                      std::to_string(expected_buffers) + " running statistics)");
  const uint64_t norm_bytes = NormBlockBytes(norm, c.in_dim);
  if (r.remaining() != (count + buffer_count) * sizeof(float) + norm_bytes)
    return at(header, "expected " + std::to_string(count) + " parameters" +
                          (buffer_count ? ", " + std::to_string(buffer_count) + " buffers" : std::string()) +
                          (norm_bytes ? ", the feature standardization" : "") + " and the checksum (" +
                          std::to_string((count + buffer_count) * sizeof(float) + norm_bytes + 8) + " bytes), found " +
                          std::to_string(r.remaining() + 8) + " bytes");
  Gcn model(c, 0);
  if (model.params().size() != count || model.buffers().size() != buffer_count)
    return Status::Internal(path + ": model parameter count disagrees with the file");
  (void)r.Raw(model.params().data(), count * sizeof(float));
  (void)r.Raw(model.buffers().data(), buffer_count * sizeof(float));
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(model.params()[i]))
      return at(header + 4 * i, "parameter " + std::to_string(i) + " is not finite");
  // Buffers: running means and variances, layer by layer; a variance is never negative.
  for (size_t i = 0; i < buffer_count; ++i) {
    const float v = model.buffers()[i];
    if (!std::isfinite(v)) return at(header + 4 * (count + i), "buffer " + std::to_string(i) + " is not finite");
  }
  for (uint32_t l = 0; l < c.layers; ++l) {
    if (!c.Normalized(l) || c.norm != NormKind::kBatch) continue;
    const auto var = model.running_var(l);
    for (Eigen::Index j = 0; j < var.size(); ++j)
      if (var(j) < 0.0f) {
        const size_t i = static_cast<size_t>(var.data() + j - model.buffers().data());
        return at(header + 4 * (count + i), "buffer " + std::to_string(i) + " (a running variance) is negative");
      }
  }
  CGCN_RETURN_IF_ERROR(ReadNormBlock(r, norm, c.in_dim, header + 4 * (count + buffer_count), feature_norm, at));
  return model;
}

}  // namespace cgcn
