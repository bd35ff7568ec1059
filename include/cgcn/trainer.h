// Stage 7: training, full-graph evaluation, checkpoints and predictions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/batch_stream.h"
#include "cgcn/byte_size.h"
#include "cgcn/gcn.h"
#include "cgcn/progress.h"
#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

// Memory for full-graph evaluation (EvaluateFullGraph). The per-layer activations (two
// [num_nodes x width] float arrays) stay in memory when they fit in memory_bytes together with
// the evaluation's other buffers; otherwise they go to an unlinked, memory-mapped temporary file
// in tmp_dir and are read in chunks, so resident memory stays within memory_bytes.
struct EvalOptions {
  uint64_t memory_bytes = 0;  // 0: no limit, activations in memory
  std::string tmp_dir;        // empty: $TMPDIR, else the system temporary directory
};

// How an evaluation will use memory (PlanEvaluation; every figure in bytes).
struct EvalPlan {
  bool spill = false;             // activations in a temporary file instead of memory
  uint64_t activation_bytes = 0;  // both activation arrays: 2 x num_nodes x width x 4
  uint64_t fixed_bytes = 0;       // degrees, predictions, per-thread decode buffers and mapped shards
  uint64_t block_bytes = 0;       // limit for one block of clusters' work (structure, sums, new rows)
  uint64_t chunk_bytes = 0;       // spilled activations resident at once (0 in memory)
  uint64_t peak_bytes = 0;        // planned peak of all of the above
  uint64_t min_bytes = 0;         // the least memory_bytes that works (spilling, one cluster per block)
  std::vector<uint32_t> blocks;   // first cluster of each block, then num_clusters
};
// Sizes evaluation from the manifest. Fails with kInvalidArgument and the numbers when even one
// cluster cannot be evaluated within options.memory_bytes.
Result<EvalPlan> PlanEvaluation(const Manifest& m, const GcnConfig& config, const EvalOptions& options,
                                bool with_predictions, uint32_t threads);

struct EvalStats {
  EvalPlan plan;
  uint64_t spill_read_bytes = 0;  // activation bytes read back from the temporary files
};

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

struct Accuracy {
  double train = 0, valid = 0, test = 0;
};

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

// Full-graph inference: every edge, GCN normalization with full-graph degrees, computed
// layer by layer over the shards. predictions (optional) gets [num_nodes] pairs
// (original id, class) in cluster order.
struct Prediction {
  uint32_t node_id;
  uint32_t label;
};
// Exactly the same predictions whether or not activations spill: each output row sums its
// neighbors in ascending node order, in memory or chunk by chunk from the file.
Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, bool row_normalize,
                                   std::vector<Prediction>* predictions = nullptr, const ProgressFn& progress = {},
                                   const EvalOptions& options = {}, EvalStats* stats = nullptr);

// ---- Bounded memory (cgcn-train --mem-budget).

// Budgets are parsed by ParseByteSize (cgcn/byte_size.h).

// What training and evaluation need within a budget (bytes). The model's parameters,
// gradients and Adam state are outside the budget (model_bytes reports them).
struct MemoryPlan {
  uint64_t budget = 0;
  uint32_t prefetch = 0;  // batches in flight: the requested number, or fewer to fit
  uint32_t requested_prefetch = 0;
  uint64_t batch_bytes = 0;      // one batch in flight: decoded clusters + assembled batch (q largest shards)
  uint64_t decode_bytes = 0;     // per decoding thread: mapped shard and zstd state, times threads
  uint64_t compute_bytes = 0;    // training step's per-layer buffers for the largest batch
  uint64_t runtime_bytes = 0;    // the process itself (code, allocator, thread stacks)
  uint64_t train_bytes = 0;      // planned training peak: runtime + decode + compute + prefetch x batch
  uint64_t model_bytes = 0;      // parameters, gradients, Adam m and v (not in the budget)
  EvalPlan eval;                 // evaluation within budget - runtime - compute
  EvalOptions eval_options;      // what evaluation gets
  std::string Describe() const;  // one line
};
Result<MemoryPlan> PlanMemory(const Manifest& m, const TrainOptions& options, uint64_t budget, uint32_t threads,
                              const std::string& tmp_dir, bool with_predictions);

// The GCN a training run builds: the manifest's feature and class counts with the options'
// layers, hidden width and dropout.
GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options);

// Trains `model` (already initialized with matching dims) for options.epochs epochs.
// on_epoch is called after every epoch (after evaluation when there is one); on_step after
// every optimizer step with the global step number (from 1) and the batch's mean loss.
using StepFn = std::function<void(uint64_t step, uint32_t epoch, uint64_t batch, double loss)>;
Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch = {}, const ProgressFn& progress = {},
                          const StepFn& on_step = {});

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
