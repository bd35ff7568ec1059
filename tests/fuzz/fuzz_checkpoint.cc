// libFuzzer target: LoadCheckpoint on arbitrary bytes (written as checkpoint.cgcn in the
// process's scratch directory), as given and with the trailing checksum repaired (fuzz_util.h
// says why). It must never crash, leak or allocate for parameters the file does not hold; a
// refusal is a kCorruption naming the file. Whatever it accepts must follow docs/FORMAT.md
// ("Checkpoint file") field by field (checked here against the bytes) and be written back by
// SaveCheckpoint as the very same bytes. An accepted checkpoint written for the run of
// fuzz_training.h (the seeds are) is then resumed by Train, as cgcn-train --resume would: that
// must finish or fail with a message, never crash.
#include <tbb/global_control.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cgcn/checkpoint.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_training.h"
#include "fuzz/fuzz_util.h"

namespace cgcn::fuzz {
namespace {

// The tiny shard directory and the signature of the run that resumes from accepted checkpoints.
struct ResumeSetup {
  std::unique_ptr<ShardDirectory> shards;
  std::string signature;
  ResumeSetup() {
    const std::string raw = ScratchDir() + "/raw", out = ScratchDir() + "/shards";
    if (Status s = BuildTinyShards(raw, out); !s.ok()) HarnessFailure("BuildTinyShards: " + s.ToString());
    Result<ShardDirectory> d = ShardDirectory::Open(out);
    if (!d.ok()) HarnessFailure("ShardDirectory::Open: " + d.status().ToString());
    shards = std::make_unique<ShardDirectory>(std::move(d).value());
    // The signature Train computes: the options' part and the shards' identity. The identity is
    // read from a checkpoint of a real run, so the harness does not restate how it is made.
    const std::string ckpt = ScratchDir() + "/reference-run";
    std::filesystem::create_directories(ckpt);
    TrainOptions o = CheckpointRunOptions(ckpt);
    o.epochs = 1;
    Gcn model = CheckpointRunModel(shards->manifest(), o);
    if (Status s = Train(*shards, o, model).status(); !s.ok()) HarnessFailure("reference run: " + s.ToString());
    Result<Checkpoint> c = LoadCheckpoint(ckpt);
    if (!c.ok()) HarnessFailure("reference checkpoint: " + c.status().ToString());
    signature = c->signature;
  }
};

const ResumeSetup& Setup() {
  static const ResumeSetup setup;
  return setup;
}

void CheckAccepted(const Checkpoint& c, std::span<const std::byte> bytes) {
  // docs/FORMAT.md, version 2: 60 fixed bytes, the u64 buffer count B, the signature, 3 x K f32,
  // B f32, the schedule and selection state (92 bytes, the last 8 the best parameter count K'),
  // K' f32 best parameters and (with K' = K) B f32 best buffers, the u64 checksum.
  CGCN_FUZZ_CHECK(std::memcmp(bytes.data(), "CGCNCKPT", 8) == 0);
  uint32_t version, epoch, sig_len;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&epoch, bytes.data() + 12, 4);
  std::memcpy(&sig_len, bytes.data() + 56, 4);
  CGCN_FUZZ_CHECK(version == 2 && epoch == c.epoch);
  CGCN_FUZZ_CHECK(ReadU64(bytes.data() + 16) == c.next_batch && ReadU64(bytes.data() + 24) == c.step &&
                  std::memcmp(bytes.data() + 32, &c.loss_sum, 8) == 0 && ReadU64(bytes.data() + 40) == c.loss_count);
  const uint64_t k = ReadU64(bytes.data() + 48);
  const uint64_t b = ReadU64(bytes.data() + 60);
  CGCN_FUZZ_CHECK(c.params.size() == k && c.adam_m.size() == k && c.adam_v.size() == k && c.buffers.size() == b);
  const uint64_t best_k = c.best_params.size();
  CGCN_FUZZ_CHECK((best_k == 0 && c.best_buffers.empty()) || (best_k == k && c.best_buffers.size() == b));
  CGCN_FUZZ_CHECK(sig_len == c.signature.size() &&
                  bytes.size() == 68 + sig_len + 12 * k + 4 * b + 92 + 4 * (best_k + c.best_buffers.size()) + 8);
  const std::byte* p = bytes.data() + 68;
  CGCN_FUZZ_CHECK(std::memcmp(p, c.signature.data(), sig_len) == 0);
  p += sig_len;
  for (const std::vector<float>* v : {&c.params, &c.adam_m, &c.adam_v}) {
    CGCN_FUZZ_CHECK(k == 0 || std::memcmp(p, v->data(), 4 * k) == 0);
    p += 4 * k;
  }
  CGCN_FUZZ_CHECK(b == 0 || std::memcmp(p, c.buffers.data(), 4 * b) == 0);
  p += 4 * b;
  CGCN_FUZZ_CHECK(c.plateau.seen == (ReadU32(p + 16) == 1) && ReadU32(p + 16) <= 1);
  CGCN_FUZZ_CHECK(ReadU32(p + 20) == c.best_epoch && ReadU32(p + 24) == c.evals_without_progress);
  CGCN_FUZZ_CHECK(ReadU64(p + 84) == best_k);

  // Written back, it is the same file.
  const std::string again = ScratchDir() + "/again";
  std::filesystem::create_directories(again);
  CGCN_FUZZ_CHECK(SaveCheckpoint(again, c).ok());
  const std::vector<std::byte> written = ReadBytes(again + "/" + kCheckpointFileName);
  CGCN_FUZZ_CHECK(written.size() == bytes.size() && std::memcmp(written.data(), bytes.data(), bytes.size()) == 0);
}

// cgcn-train --resume from `dir` (which holds the checkpoint) on the tiny shards.
void Resume(const std::string& dir) {
  const ResumeSetup& setup = Setup();
  TrainOptions o = CheckpointRunOptions(dir);
  o.checkpoint_every = 0;  // no checkpoint per step (Train still writes one after each epoch)
  o.resume = true;
  Gcn model = CheckpointRunModel(setup.shards->manifest(), o);
  Result<TrainReport> r = Train(*setup.shards, o, model);
  if (!r.ok()) {
    CGCN_FUZZ_CHECK(!r.status().message().empty());
    return;
  }
  // Parameters may have left the finite range at the last step (a crafted state can do that,
  // e.g. huge first moments); only a later step would report the divergence.
  CGCN_FUZZ_CHECK(r->epochs.size() <= o.epochs);
}

void LoadOne(std::span<const std::byte> bytes) {
  const std::string dir = ScratchDir() + "/input";
  const std::string path = dir + "/" + kCheckpointFileName;
  WriteBytes(path, bytes);
  Result<Checkpoint> c = LoadCheckpoint(dir);
  if (!c.ok()) {
    CGCN_FUZZ_CHECK(c.status().code() == StatusCode::kCorruption);
    CGCN_FUZZ_CHECK(StartsWith(c.status().message(), path + ": "));
    return;
  }
  CheckAccepted(*c, bytes);
  if (c->signature == Setup().signature) Resume(dir);
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // One worker thread: the two fuzzers of a fuzz.sh round share 2 cores, and tiny batches gain
  // nothing from more.
  static tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  std::filesystem::create_directories(cgcn::fuzz::ScratchDir() + "/input");
  (void)cgcn::fuzz::Setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  cgcn::fuzz::LoadOne(std::span(bytes, size));
  if (size >= 8) {
    std::vector<std::byte> repaired(bytes, bytes + size);
    cgcn::fuzz::RepairTrailingChecksum(repaired);
    cgcn::fuzz::LoadOne(repaired);
  }
  return 0;
}
