// Inference with a saved model (cgcn-predict): exact out-of-core full-graph evaluation of a model
// file on any shard directory with the model's feature width, the graph it was trained on or
// another one, within a memory budget; the features are normalized as in training (the model
// file records how).
#pragma once

#include <cstdint>
#include <string>

#include "cgcn/dense.h"
#include "cgcn/evaluate.h"
#include "cgcn/feature_norm.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

struct PredictOptions {
  std::string model_path;      // written by cgcn-train --save-model
  std::string shards_dir;      // written by cgcn-preprocess
  std::string out;             // optional: predictions CSV (cgcn/predictions.h)
  bool probabilities = false;  // also every class's softmax probability per node in `out`
  uint64_t mem_budget = 0;     // bytes (0: no bound); evaluation spills activations to tmp_dir to fit
  std::string tmp_dir;
  uint32_t threads = 0;                       // 0: every core
  DenseBackend gemm = DefaultDenseBackend();  // the dense products' library (cgcn/dense.h)
  DenseCompute compute = DenseCompute::kF32;  // and their input type
};

struct PredictReport {
  uint64_t num_nodes = 0;
  uint32_t classes = 0;
  FeatureNorm feature_norm;  // as the model file gives it
  // On the shards' splits, and over every labeled node (NaN where there is none: a graph without
  // labels gets predictions only).
  Accuracy acc;
  EvalStats eval;
  bool written = false;
  std::string summary_json;  // one line
};

// Fails before any work, writing nothing, when the model or the shards cannot be read, the
// feature widths differ, the shards' classes exceed the model's, `out` cannot be written (as
// cgcn-train checks --predict-out: not inside the shard directory, not the model, not an
// existing file other than a cgcn predictions file) or the budget cannot hold one cluster's
// evaluation. `out` is written atomically.
Result<PredictReport> RunPredict(const PredictOptions& options, const ProgressFn& progress = {});

}  // namespace cgcn
