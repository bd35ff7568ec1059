// Model files (docs/FORMAT.md, "Model file").
#include "cgcn/model_file.h"

#include <cstring>

#include "cgcn/checksum.h"
#include "util/bytes.h"
#include "util/file_util.h"

namespace cgcn {
namespace {
constexpr char kModelMagic[8] = {'C', 'G', 'C', 'N', 'M', 'O', 'D', 'L'};
constexpr uint32_t kModelVersion = 1;
constexpr size_t kModelHeaderBytes = 48;
}  // namespace

Status SaveModel(const std::string& path, const Gcn& model, bool row_normalize) {
  const GcnConfig& c = model.config();
  std::vector<std::byte> out;
  out.reserve(kModelHeaderBytes + model.params().size() * sizeof(float) + 8);
  ByteWriter w(out);
  w.Raw(kModelMagic, 8);
  w.U32(kModelVersion);
  w.U32(c.in_dim);
  w.U32(c.hidden);
  w.U32(c.out_dim);
  w.U32(c.layers);
  w.F32(c.dropout);
  w.U32(row_normalize ? 1 : 0);
  w.U32(0);  // reserved
  w.U64(model.params().size());
  w.Raw(model.params().data(), model.params().size() * sizeof(float));
  w.U64(Checksum64(out.data(), out.size()));
  return WriteFileAtomic(path, out);
}

Result<Gcn> LoadModel(const std::string& path, bool* row_normalize) {
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ReadWholeFile(path));
  auto corrupt = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  if (bytes.size() < kModelHeaderBytes + 8) return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes");
  if (std::memcmp(bytes.data(), kModelMagic, 8) != 0) return corrupt("byte 0: bad magic, expected \"CGCNMODL\"");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  if (stored != Checksum64(bytes.data(), bytes.size() - 8)) return corrupt("checksum mismatch");
  ByteReader r(bytes);
  char magic[8];
  uint32_t version = 0, norm = 0, reserved = 0;
  uint64_t count = 0;
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
  if (version != kModelVersion) return corrupt("unsupported model version " + std::to_string(version));
  if (c.layers == 0 || c.layers > 64 || c.in_dim == 0 || c.out_dim == 0 || c.hidden == 0 || c.in_dim > (1u << 24) ||
      c.hidden > (1u << 16) || c.out_dim > (1u << 16))
    return corrupt("implausible model dimensions");
  Gcn model(c, 0);
  if (count != model.params().size() || r.remaining() != count * sizeof(float) + 8)
    return corrupt("parameter count " + std::to_string(count) + " does not match the dimensions (" +
                   std::to_string(model.params().size()) + ")");
  (void)r.Raw(model.params().data(), count * sizeof(float));
  if (row_normalize) *row_normalize = norm != 0;
  return model;
}

}  // namespace cgcn
