// Training: Cluster-GCN mini-batches streamed from the shards through a GCN, with full-graph
// evaluations, checkpoints and a memory budget.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cgcn/batch_stream.h"
#include "cgcn/evaluate.h"
#include "cgcn/feature_norm.h"
#include "cgcn/gcn.h"
#include "cgcn/lr_schedule.h"
#include "cgcn/memory_plan.h"
#include "cgcn/predictions.h"
#include "cgcn/progress.h"
#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

struct TrainOptions {
  uint32_t clusters_per_batch = 2;
  uint32_t epochs = 200;
  uint32_t layers = 2;
  uint32_t hidden = 128;
  // The layers (GcnConfig): --model, --diag-lambda, --heads, --residual, --norm.
  LayerKind layer_kind = LayerKind::kGcn;
  float diag_lambda = 0.0f;
  uint32_t heads = 1;
  bool residual = false;
  NormKind norm = NormKind::kNone;
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  float dropout = 0.5f;
  float input_dropout = 0.0f;  // dropout on the input features (GcnConfig::input_dropout)
  uint64_t seed = 0;
  uint32_t prefetch = 2;
  // Full-graph evaluation every eval_every epochs and after the last; 0: after the last only.
  uint32_t eval_every = 5;
  // Input features: auto chooses row or standard from the data (cgcn/feature_norm.h).
  FeatureNormMode feature_norm = FeatureNormMode::kAuto;
  // Model selection: with eval_every > 0 and validation nodes in the shards, the returned model
  // (and the predictions) are those of the evaluation with the best validation metric (ties: the
  // lower validation loss; then the earlier). With patience > 0, training stops after that many
  // evaluations in a row with neither a better validation metric nor a lower validation loss (the
  // rule of GAT's training: on multi-label graphs micro-F1 at 0.5 can stay flat for many epochs
  // while the loss still falls). Without eval_every, or without validation nodes, patience has
  // nothing to count and the model is the last epoch's.
  uint32_t patience = 10;
  // Learning-rate schedule (cgcn/lr_schedule.h); lr is the base rate.
  LrSchedule lr_schedule = LrSchedule::kNone;
  uint32_t lr_step_size = 50;
  float lr_gamma = 0.5f;
  uint32_t lr_patience = 5;
  float grad_clip = 0;     // > 0: gradients scaled so their global L2 norm is at most this
  bool inductive = false;  // training batches hold training nodes and the edges among them only
  // Gradient accumulation: each optimizer step averages the gradients of `accumulate` batches
  // (in epoch order). Under mpirun with N ranks a step averages N x accumulate batches, each rank
  // training `accumulate` of them (BatchOwner); N ranks equal one process with accumulate N.
  uint32_t accumulate = 1;
  // Checkpoints: with a checkpoint_dir (created if missing), the complete training state goes to
  // checkpoint_dir/checkpoint.cgcn (atomically) after every epoch and, with checkpoint_every > 0,
  // also every checkpoint_every training steps. With resume, training continues from that file
  // and produces the same per-step losses as an uninterrupted run.
  std::string checkpoint_dir;
  uint64_t checkpoint_every = 0;
  bool resume = false;
  // Memory: with mem_budget > 0 (bytes), Train plans the run (PlanMemory) and applies the plan:
  // fewer batches in flight if needed, evaluation within the budget (activations spilled to
  // tmp_dir when they do not fit) and decoded shards dropped from the page cache.
  uint64_t mem_budget = 0;
  std::string tmp_dir;  // spilled activations (empty: $TMPDIR, else the system temporary directory)
  // Decoded clusters kept in memory across epochs (StreamOptions::cache_bytes), in bytes; they
  // change no result. kAutoCache: with mem_budget, what the budget leaves beside training's planned
  // peak (MemoryPlan::cache_bytes); without, the whole decoded graph when it takes at most a
  // quarter of the memory this process may use (MemoryLimitBytes; under mpirun, a quarter shared
  // by the ranks), else that quarter. With mem_budget the cache is emptied before each
  // evaluation, which plans with the whole budget.
  static constexpr uint64_t kAutoCache = UINT64_MAX;
  uint64_t cache_bytes = kAutoCache;
  // The final evaluation also returns every node's prediction (TrainReport::predictions); the
  // memory plan counts them.
  bool predict = false;

  // Every option within its bounds, in the flags' words ("--lr must be greater than 0, found 0",
  // "--clusters-per-batch must be from 1 to 12, found 20 (the shards hold 12 clusters)");
  // kInvalidArgument otherwise. Train calls it.
  Status Validate(uint32_t num_clusters) const;
  // The options that must not change between a checkpoint and its resume, as text.
  std::string Signature() const;
};

// The model a training run builds: the manifest's feature and class counts with the options'
// layers (count, kind, norm, residual), hidden width and dropout.
GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options);

struct EpochRecord {
  uint32_t epoch = 0;
  double loss = 0;               // mean over the epoch's training nodes
  double epoch_s = 0;            // training wall time (no evaluation)
  double train_peak_rss_mb = 0;  // the process's peak resident set so far, before this epoch's evaluation
  EpochStats stats;
  float lr = 0;  // the learning rate the epoch trained with
  bool evaluated = false;
  Accuracy acc;
  double eval_s = 0;
  EvalStats eval_stats;
  // Data parallelism (cgcn/comm.h; zero in a single process): gradient allreduce calls, bytes
  // and seconds of this rank over the epoch, and the parameters' checksum after it, which every
  // rank has checked to be its own too.
  uint64_t allreduce_calls = 0, allreduce_bytes = 0;
  double allreduce_s = 0;
  uint64_t param_checksum = 0;
};

struct TrainReport {
  // The epochs this run trained, in order. A run resumed mid-epoch trains the rest of that
  // epoch first (its record covers those batches; its loss is the whole epoch's).
  std::vector<EpochRecord> epochs;
  bool resumed = false;
  uint32_t resumed_epoch = 0;  // where the checkpoint continued (with resumed)
  uint64_t resumed_batch = 0;
  uint32_t final_epoch = 0;      // the last epoch the returned model was trained in (with model
                                 // selection the best epoch, else options.epochs)
  uint32_t trained_through = 0;  // the last epoch trained (before options.epochs when stopped early)
  bool stopped_early = false;    // by --patience
  bool selected = false;         // the returned model is the best evaluation's, restored
  std::string selection_note;    // why there was no model selection, when --eval-every asked for it
  Accuracy final_acc;            // of the returned model
  EvalStats final_eval;          // the evaluation that gave final_acc
  double eval_s = 0;             // every evaluation of this run, seconds
  double mean_epoch_s = 0;       // over `epochs` (0 when there are none)
  uint32_t best_epoch = 0;       // by validation accuracy among the evaluations of this run
  Accuracy best_acc;
  FeatureNorm feature_norm;             // what the run normalized features with
  std::string feature_norm_reason;      // why (auto's choice and the statistics)
  std::optional<MemoryPlan> plan;       // with options.mem_budget
  uint64_t cache_bytes = 0;             // the decoded-cluster cache's limit (options.cache_bytes resolved)
  uint64_t eval_kept_bytes = 0;         // what evaluations keep for the next one (EvalReuse; 0: nothing)
  std::vector<Prediction> predictions;  // with options.predict: every node's, cluster order
};

// on_step: after every optimizer step, with the global step number (from 1) and the batch's mean loss.
using StepFn = std::function<void(uint64_t step, uint32_t epoch, uint64_t batch, double loss)>;
struct TrainCallbacks {
  std::function<void(const MemoryPlan&)> on_plan;    // once, before the first epoch (with a budget)
  std::function<void(const EpochRecord&)> on_epoch;  // after every epoch (after its evaluation)
  ProgressFn progress;
  StepFn on_step;
};

// Trains `model` (built with ModelConfig, or with matching dimensions) through epoch
// options.epochs, after checking the options (Validate) and, with a budget, planning memory
// (then `shards` drops decoded shards from the page cache until Train returns). The last epoch
// is evaluated; so is every eval_every-th. A run resumed from a checkpoint that has no epoch
// left to train evaluates the restored model (an empty `epochs`). A checkpoint beyond
// options.epochs is refused.
Result<TrainReport> Train(ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const TrainCallbacks& callbacks = {});

}  // namespace cgcn
