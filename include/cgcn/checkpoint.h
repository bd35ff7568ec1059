// Checkpoints: the complete training state at a batch boundary (docs/FORMAT.md, "Checkpoint
// file"), so that a resumed run reproduces the uninterrupted run's every step.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "cgcn/lr_schedule.h"
#include "cgcn/status.h"

namespace cgcn {

struct Checkpoint {
  std::string signature;    // TrainOptions::Signature() + the shard directory's identity
  uint32_t epoch = 1;       // epoch to continue
  uint64_t next_batch = 0;  // first batch of `epoch` not yet trained
  uint64_t step = 0;        // optimizer steps taken
  double loss_sum = 0;      // the epoch's running loss (sum over training nodes) ...
  uint64_t loss_count = 0;  // ... and node count
  std::vector<float> params, adam_m, adam_v;
  std::vector<float> buffers;  // the model's buffers (batch norm running statistics; version 2)
  // Version 2: the plateau schedule's state and model selection's (--eval-every, --patience).
  PlateauState plateau;
  uint32_t best_epoch = 0;  // 0: no evaluation has improved yet
  // Evaluations in a row with neither a better validation metric nor a lower validation loss
  // (what --patience counts).
  uint32_t evals_without_progress = 0;
  std::array<double, 6> best_metrics{};  // train, valid, test accuracy; train, valid, test loss
  double lowest_valid_loss = std::numeric_limits<double>::infinity();  // over this run's evaluations
  std::vector<float> best_params;   // the best epoch's parameters (empty, or params.size())
  std::vector<float> best_buffers;  // and its buffers (empty when best_params is, else buffers.size())
};

// The file in the checkpoint directory.
inline constexpr const char* kCheckpointFileName = "checkpoint.cgcn";
// dir/checkpoint.cgcn.
std::string CheckpointPath(const std::string& dir);

// Writes dir/checkpoint.cgcn atomically (WriteFileAtomic); `dir` must exist.
Status SaveCheckpoint(const std::string& dir, const Checkpoint& checkpoint);
Result<Checkpoint> LoadCheckpoint(const std::string& dir);
// The file's bytes, and back (`path` names the file in messages). Rank 0 of a data-parallel
// run reads the file and sends these bytes to the other ranks.
std::vector<std::byte> EncodeCheckpoint(const Checkpoint& checkpoint);
Result<Checkpoint> DecodeCheckpoint(std::span<const std::byte> bytes, const std::string& path);

}  // namespace cgcn
