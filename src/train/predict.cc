// Inference with a saved model (cgcn/predict.h).
#include "cgcn/predict.h"

#include <tbb/global_control.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "cgcn/byte_size.h"
#include "cgcn/memory_plan.h"
#include "cgcn/model_file.h"
#include "cgcn/predictions.h"
#include "cgcn/shard_directory.h"
#include "train/eval_json.h"
#include "util/output_path.h"
#include "util/peak_rss.h"
#include "util/threads.h"

namespace cgcn {
namespace {

nlohmann::json Num(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

}  // namespace

Result<PredictReport> RunPredict(const PredictOptions& options, const ProgressFn& progress) {
  std::optional<tbb::global_control> threads_limit;
  if (options.threads > 0) threads_limit.emplace(tbb::global_control::max_allowed_parallelism, options.threads);
  CGCN_RETURN_IF_ERROR(CheckDenseBackend(options.gemm, options.compute));
  const ScopedDenseBackend gemm({.backend = options.gemm, .compute = options.compute});
  PredictReport rep;
  CGCN_ASSIGN_OR_RETURN(Gcn model, LoadModel(options.model_path, &rep.feature_norm));
  CGCN_ASSIGN_OR_RETURN(ShardDirectory shards, ShardDirectory::Open(options.shards_dir));
  const Manifest& m = shards.manifest();
  const GcnConfig& cfg = model.config();
  if (cfg.in_dim != m.feat_dim)
    return Status::InvalidArgument(options.model_path + ": the model takes " + std::to_string(cfg.in_dim) +
                                   " features per node, the shards in " + options.shards_dir + " hold " +
                                   std::to_string(m.feat_dim));
  if (m.num_classes > cfg.out_dim)
    return Status::InvalidArgument(options.shards_dir + ": labels of " + std::to_string(m.num_classes) +
                                   " classes, more than the model's " + std::to_string(cfg.out_dim) + " (" +
                                   options.model_path + ")");
  OutputPaths paths;
  paths.AddInputDirectory("the shard directory", options.shards_dir);
  paths.AddInputFile("the model (--model)", options.model_path);
  paths.AddFile("--out", options.out);
  CGCN_RETURN_IF_ERROR(paths.Check());
  CGCN_RETURN_IF_ERROR(CheckPredictionsPath("--out", options.out));

  const bool predict = !options.out.empty();
  EvalOptions eval;
  eval.tmp_dir = options.tmp_dir;
  eval.probabilities = predict && options.probabilities;
  if (options.mem_budget > 0) {
    const uint64_t fixed = ProcessRuntimeBytes() + Gcn::PlannedBytes(cfg);
    if (options.mem_budget <= fixed)
      return Status::InvalidArgument("--mem-budget " + FormatBytes(options.mem_budget) +
                                     " cannot hold the process and the model (" + FormatBytes(fixed) + ")");
    eval.memory_bytes = options.mem_budget - fixed;
    // Refused here, before anything is read, when even one cluster cannot be evaluated.
    CGCN_ASSIGN_OR_RETURN(EvalPlan plan, PlanEvaluation(m, cfg, eval, predict, RunnableThreads()));
    if (plan.spill) {
      const std::string dir = SpillDirectory(eval);
      CGCN_RETURN_IF_ERROR(CheckScratchDirectory(
          options.tmp_dir.empty() ? "temporary directory " + dir + " (for spilled activations; set --tmp-dir)"
                                  : "--tmp-dir " + dir,
          dir));
    }
    shards.set_drop_page_cache(true);
  }
  std::vector<Prediction> predictions;
  std::vector<float> probabilities;
  CGCN_ASSIGN_OR_RETURN(
      rep.acc, EvaluateFullGraph(shards, model, rep.feature_norm, predict ? &predictions : nullptr, progress, eval,
                                 &rep.eval, eval.probabilities ? &probabilities : nullptr));
  rep.num_nodes = m.num_nodes;
  rep.classes = cfg.out_dim;
  if (predict) {
    CGCN_RETURN_IF_ERROR(
        WritePredictions(options.out, std::move(predictions), probabilities, eval.probabilities ? cfg.out_dim : 0)
            .WithContext("--out " + options.out));
    rep.written = true;
  }
  nlohmann::json j = {{"nodes", rep.num_nodes},
                      {"classes", rep.classes},
                      {"feature_norm", std::string(rep.feature_norm.Name())},
                      {"labeled_nodes", rep.acc.labeled_nodes},
                      {"labeled_acc", Num(rep.acc.labeled)},
                      {"train_acc", Num(rep.acc.train)},
                      {"valid_acc", Num(rep.acc.valid)},
                      {"test_acc", Num(rep.acc.test)},
                      {"valid_loss", Num(rep.acc.valid_loss)},
                      {"eval_spilled", rep.eval.plan.spill},
                      {"eval_phases", EvalPhasesJson(rep.eval)},
                      {"planned_eval_mb", static_cast<double>(rep.eval.plan.peak_bytes) / 1048576.0},
                      {"peak_rss_mb", PeakRssMb()},
                      {"written", rep.written}};
  if (options.mem_budget > 0) j["mem_budget_mb"] = static_cast<double>(options.mem_budget) / 1048576.0;
  rep.summary_json = j.dump();
  return rep;
}

}  // namespace cgcn
