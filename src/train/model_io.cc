// Model files and prediction CSVs (docs/FORMAT.md, "Model file").
#include <algorithm>
#include <charconv>
#include <cstring>

#include "cgcn/checksum.h"
#include "cgcn/trainer.h"
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

namespace {
constexpr char kCheckpointMagic[8] = {'C', 'G', 'C', 'N', 'C', 'K', 'P', 'T'};
constexpr uint32_t kCheckpointVersion = 1;
}  // namespace

Status SaveCheckpoint(const std::string& dir, const Checkpoint& c) {
  std::vector<std::byte> out;
  out.reserve(128 + c.signature.size() + 4 * (c.params.size() + c.adam_m.size() + c.adam_v.size()));
  ByteWriter w(out);
  w.Raw(kCheckpointMagic, 8);
  w.U32(kCheckpointVersion);
  w.U32(c.epoch);
  w.U64(c.next_batch);
  w.U64(c.step);
  w.Raw(&c.loss_sum, 8);
  w.U64(c.loss_count);
  w.U64(c.params.size());
  w.U32(static_cast<uint32_t>(c.signature.size()));
  w.Raw(c.signature.data(), c.signature.size());
  w.Raw(c.params.data(), 4 * c.params.size());
  w.Raw(c.adam_m.data(), 4 * c.adam_m.size());
  w.Raw(c.adam_v.data(), 4 * c.adam_v.size());
  w.U64(Checksum64(out.data(), out.size()));
  return WriteFileAtomic(dir + "/" + kCheckpointFileName, out);
}

Result<Checkpoint> LoadCheckpoint(const std::string& dir) {
  const std::string path = dir + "/" + kCheckpointFileName;
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ReadWholeFile(path));
  auto corrupt = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  if (bytes.size() < 60 + 8) return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes");
  if (std::memcmp(bytes.data(), kCheckpointMagic, 8) != 0) return corrupt("byte 0: bad magic, expected \"CGCNCKPT\"");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  if (stored != Checksum64(bytes.data(), bytes.size() - 8)) return corrupt("checksum mismatch");
  ByteReader r(std::span<const std::byte>(bytes).first(bytes.size() - 8));
  Checkpoint c;
  char magic[8];
  uint32_t version = 0, sig_len = 0;
  uint64_t count = 0;
  (void)r.Raw(magic, 8);
  (void)r.U32(&version);
  (void)r.U32(&c.epoch);
  (void)r.U64(&c.next_batch);
  (void)r.U64(&c.step);
  (void)r.Raw(&c.loss_sum, 8);
  (void)r.U64(&c.loss_count);
  (void)r.U64(&count);
  (void)r.U32(&sig_len);
  if (version != kCheckpointVersion) return corrupt("unsupported checkpoint version " + std::to_string(version));
  if (sig_len > 4096 || count > (uint64_t{1} << 32) || r.remaining() != sig_len + 12 * count)
    return corrupt("sizes do not add up (" + std::to_string(count) + " parameters)");
  c.signature.resize(sig_len);
  (void)r.Raw(c.signature.data(), sig_len);
  for (auto* v : {&c.params, &c.adam_m, &c.adam_v}) {
    v->resize(count);
    (void)r.Raw(v->data(), 4 * count);
  }
  return c;
}

Status WritePredictions(const std::string& path, std::vector<Prediction> predictions) {
  std::sort(predictions.begin(), predictions.end(),
            [](const Prediction& a, const Prediction& b) { return a.node_id < b.node_id; });
  std::string text = "node_id,label\n";
  text.reserve(predictions.size() * 12 + 16);
  char buf[16];
  for (const Prediction& p : predictions) {
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.node_id).ptr);
    text.push_back(',');
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.label).ptr);
    text.push_back('\n');
  }
  return WriteFileAtomic(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace cgcn
