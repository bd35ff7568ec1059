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
// on_epoch is called after every epoch (after evaluation when there is one).
Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch = {},
                          const ProgressFn& progress = {});

// Model files (docs/FORMAT.md): magic, version, config, row_normalize, parameters, checksum.
// Written to a temporary sibling and renamed.
Status SaveModel(const std::string& path, const Gcn& model, bool row_normalize);
Result<Gcn> LoadModel(const std::string& path, bool* row_normalize);

// CSV "node_id,label" sorted by node id, written atomically.
Status WritePredictions(const std::string& path, std::vector<Prediction> predictions);

}  // namespace cgcn
