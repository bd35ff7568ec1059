// Stage 7: training, full-graph evaluation, checkpoints and predictions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cgcn/batch_stream.h"
#include "cgcn/gcn.h"
#include "cgcn/progress.h"
#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

struct TrainOptions {
  uint32_t clusters_per_batch = 2;
  uint32_t epochs = 200;
  uint32_t layers = 2;
  uint32_t hidden = 128;
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  float dropout = 0.5f;
  uint64_t seed = 0;
  uint32_t prefetch = 2;
  uint32_t eval_every = 0;  // 0 = only at the end
  bool row_normalize = true;
  // Checkpoints: every `checkpoint_every` training steps (0 = never) the complete training
  // state goes to checkpoint_dir/checkpoint.cgcn (atomically). With resume, training continues
  // from that file and produces the same per-step losses as an uninterrupted run.
  std::string checkpoint_dir;
  uint64_t checkpoint_every = 0;
  bool resume = false;
  // The options that must not change between a checkpoint and its resume, as text.
  std::string Signature() const;
};

struct Accuracy {
  double train = 0, valid = 0, test = 0;
};

struct EpochRecord {
  uint32_t epoch = 0;
  double loss = 0;          // mean over the epoch's training nodes
  double epoch_s = 0;       // training wall time (no evaluation)
  EpochStats stats;
  bool evaluated = false;
  Accuracy acc;
  double eval_s = 0;
};

struct TrainReport {
  std::vector<EpochRecord> epochs;
  Accuracy final_acc;
  double mean_epoch_s = 0;
  uint32_t best_epoch = 0;        // by validation accuracy among evaluated epochs
  Accuracy best_acc;
};

// Full-graph inference: every edge, GCN normalization with full-graph degrees, computed
// layer by layer over the shards. predictions (optional) gets [num_nodes] pairs
// (original id, class) in cluster order.
struct Prediction {
  uint32_t node_id;
  uint32_t label;
};
Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, bool row_normalize,
                                   std::vector<Prediction>* predictions = nullptr,
                                   const ProgressFn& progress = {});

// Trains `model` (already initialized with matching dims) for options.epochs epochs.
// on_epoch is called after every epoch (after evaluation when there is one); on_step after
// every optimizer step with the global step number (from 1) and the batch's mean loss.
using StepFn = std::function<void(uint64_t step, uint32_t epoch, uint64_t batch, double loss)>;
Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch = {},
                          const ProgressFn& progress = {}, const StepFn& on_step = {});

// The complete training state at a batch boundary (docs/FORMAT.md, "Checkpoint file").
struct Checkpoint {
  std::string signature;    // TrainOptions::Signature() + the shard directory's identity
  uint32_t epoch = 1;       // epoch to continue
  uint64_t next_batch = 0;  // first batch of `epoch` not yet trained
  uint64_t step = 0;        // optimizer steps taken
  double loss_sum = 0;      // the epoch's running loss (sum over training nodes) ...
  uint64_t loss_count = 0;  // ... and node count
  std::vector<float> params, adam_m, adam_v;
};
inline constexpr const char* kCheckpointFileName = "checkpoint.cgcn";
Status SaveCheckpoint(const std::string& dir, const Checkpoint& checkpoint);
Result<Checkpoint> LoadCheckpoint(const std::string& dir);

// Model files (docs/FORMAT.md): magic, version, config, row_normalize, parameters, checksum.
// Written to a temporary sibling and renamed.
Status SaveModel(const std::string& path, const Gcn& model, bool row_normalize);
Result<Gcn> LoadModel(const std::string& path, bool* row_normalize);

// CSV "node_id,label" sorted by node id, written atomically.
Status WritePredictions(const std::string& path, std::vector<Prediction> predictions);

}  // namespace cgcn
