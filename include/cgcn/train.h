// Training: Cluster-GCN mini-batches streamed from the shards through a GCN, with full-graph
// evaluations and checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cgcn/batch_stream.h"
#include "cgcn/evaluate.h"
#include "cgcn/gcn.h"
#include "cgcn/memory_plan.h"
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
  EvalOptions eval;  // memory for the evaluations during training
  // The options that must not change between a checkpoint and its resume, as text.
  std::string Signature() const;
};

// The GCN a training run builds: the manifest's feature and class counts with the options'
// layers, hidden width and dropout.
GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options);

struct EpochRecord {
  uint32_t epoch = 0;
  double loss = 0;               // mean over the epoch's training nodes
  double epoch_s = 0;            // training wall time (no evaluation)
  double train_peak_rss_mb = 0;  // the process's peak resident set so far, before this epoch's evaluation
  EpochStats stats;
  bool evaluated = false;
  Accuracy acc;
  double eval_s = 0;
  EvalStats eval_stats;
};

struct TrainReport {
  std::vector<EpochRecord> epochs;
  Accuracy final_acc;
  double mean_epoch_s = 0;
  uint32_t best_epoch = 0;  // by validation accuracy among evaluated epochs
  Accuracy best_acc;
};

// Trains `model` (already initialized with matching dims) for options.epochs epochs.
// on_epoch is called after every epoch (after evaluation when there is one); on_step after
// every optimizer step with the global step number (from 1) and the batch's mean loss.
using StepFn = std::function<void(uint64_t step, uint32_t epoch, uint64_t batch, double loss)>;
Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch = {}, const ProgressFn& progress = {},
                          const StepFn& on_step = {});

}  // namespace cgcn
