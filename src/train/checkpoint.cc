// Checkpoint files (docs/FORMAT.md, "Checkpoint file").
#include "cgcn/checkpoint.h"

#include <cstring>

#include "cgcn/checksum.h"
#include "util/bytes.h"
#include "util/file_util.h"

namespace cgcn {

std::string CheckpointPath(const std::string& dir) { return dir + "/" + kCheckpointFileName; }

namespace {
constexpr char kCheckpointMagic[8] = {'C', 'G', 'C', 'N', 'C', 'K', 'P', 'T'};
constexpr uint32_t kCheckpointVersion = 2;
// Bytes of the version 2 state after the buffers, before the best parameters: plateau lr, best,
// bad, seen; best epoch, evaluations without progress; six metrics; the lowest validation loss;
// the best parameter count.
constexpr uint64_t kStateBytes = 4 + 8 + 4 + 4 + 4 + 4 + 6 * 8 + 8 + 8;
}  // namespace

std::vector<std::byte> EncodeCheckpoint(const Checkpoint& c) {
  std::vector<std::byte> out;
  out.reserve(128 + c.signature.size() + 4 * (c.params.size() + c.adam_m.size() + c.adam_v.size() + c.buffers.size()));
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
  w.U64(c.buffers.size());
  w.Raw(c.signature.data(), c.signature.size());
  w.Raw(c.params.data(), 4 * c.params.size());
  w.Raw(c.adam_m.data(), 4 * c.adam_m.size());
  w.Raw(c.adam_v.data(), 4 * c.adam_v.size());
  w.Raw(c.buffers.data(), 4 * c.buffers.size());
  w.F32(c.plateau.lr);
  w.Raw(&c.plateau.best, 8);
  w.U32(c.plateau.bad);
  w.U32(c.plateau.seen ? 1 : 0);
  w.U32(c.best_epoch);
  w.U32(c.evals_without_progress);
  for (double v : c.best_metrics) w.Raw(&v, 8);
  w.Raw(&c.lowest_valid_loss, 8);
  w.U64(c.best_params.size());
  w.Raw(c.best_params.data(), 4 * c.best_params.size());
  w.Raw(c.best_buffers.data(), 4 * c.best_buffers.size());
  w.U64(Checksum64(out.data(), out.size()));
  return out;
}

Status SaveCheckpoint(const std::string& dir, const Checkpoint& c) {
  return WriteFileAtomic(CheckpointPath(dir), EncodeCheckpoint(c));
}

Result<Checkpoint> LoadCheckpoint(const std::string& dir) {
  const std::string path = CheckpointPath(dir);
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ReadWholeFile(path));
  return DecodeCheckpoint(bytes, path);
}

Result<Checkpoint> DecodeCheckpoint(std::span<const std::byte> bytes, const std::string& path) {
  auto corrupt = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  if (bytes.size() < 60 + 8) return corrupt("truncated: " + std::to_string(bytes.size()) + " bytes");
  if (std::memcmp(bytes.data(), kCheckpointMagic, 8) != 0) return corrupt("byte 0: bad magic, expected \"CGCNCKPT\"");
  const uint64_t stored = LoadU64(bytes.data() + bytes.size() - 8);
  if (stored != Checksum64(bytes.data(), bytes.size() - 8)) return corrupt("checksum mismatch");
  ByteReader r(std::span<const std::byte>(bytes).first(bytes.size() - 8));
  Checkpoint c;
  char magic[8];
  uint32_t version = 0, sig_len = 0;
  uint64_t count = 0, buffer_count = 0;
  (void)r.Raw(magic, 8);
  (void)r.U32(&version);
  (void)r.U32(&c.epoch);
  (void)r.U64(&c.next_batch);
  (void)r.U64(&c.step);
  (void)r.Raw(&c.loss_sum, 8);
  (void)r.U64(&c.loss_count);
  (void)r.U64(&count);
  (void)r.U32(&sig_len);
  if (version != kCheckpointVersion)
    return corrupt("byte 8: unsupported checkpoint version " + std::to_string(version) + ", expected " +
                   std::to_string(kCheckpointVersion));
  if (sig_len > 4096) return corrupt("byte 56: signature length " + std::to_string(sig_len) + " over 4096");
  if (!r.U64(&buffer_count)) return corrupt("truncated: no buffer count at byte 60");
  // K and B are checked against the file size before anything is allocated for them. The best
  // parameters and buffers are either absent or as many as the parameters and buffers.
  const uint64_t without_best = sig_len + 12 * count + 4 * buffer_count + kStateBytes;
  if (count > (uint64_t{1} << 32) || buffer_count > (uint64_t{1} << 32) ||
      (r.remaining() != without_best && r.remaining() != without_best + 4 * (count + buffer_count)))
    return corrupt("byte 48: " + std::to_string(count) + " parameters, " + std::to_string(buffer_count) +
                   " buffers and a " + std::to_string(sig_len) + "-byte signature do not fit the file's " +
                   std::to_string(bytes.size()) + " bytes");
  c.signature.resize(sig_len);
  (void)r.Raw(c.signature.data(), sig_len);
  for (auto* v : {&c.params, &c.adam_m, &c.adam_v}) {
    v->resize(count);
    (void)r.Raw(v->data(), 4 * count);
  }
  c.buffers.resize(buffer_count);
  (void)r.Raw(c.buffers.data(), 4 * buffer_count);
  uint32_t seen = 0;
  uint64_t best_count = 0;
  (void)r.F32(&c.plateau.lr);
  (void)r.Raw(&c.plateau.best, 8);
  (void)r.U32(&c.plateau.bad);
  (void)r.U32(&seen);
  (void)r.U32(&c.best_epoch);
  (void)r.U32(&c.evals_without_progress);
  for (double& v : c.best_metrics) (void)r.Raw(&v, 8);
  (void)r.Raw(&c.lowest_valid_loss, 8);
  (void)r.U64(&best_count);
  c.plateau.seen = seen != 0;
  if (seen > 1) return corrupt("plateau flag " + std::to_string(seen) + ", expected 0 or 1");
  if ((best_count != 0 && best_count != count) || r.remaining() != (best_count == 0 ? 0 : 4 * (count + buffer_count)))
    return corrupt("best parameter count " + std::to_string(best_count) + ", expected 0 or " + std::to_string(count));
  c.best_params.resize(best_count);
  (void)r.Raw(c.best_params.data(), 4 * best_count);
  c.best_buffers.resize(best_count == 0 ? 0 : buffer_count);
  (void)r.Raw(c.best_buffers.data(), 4 * c.best_buffers.size());
  return c;
}

}  // namespace cgcn
