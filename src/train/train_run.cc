// A whole training run (cgcn/train_run.h): what cgcn-train does between parsing its flags and
// printing.
#include "cgcn/train_run.h"

#include <tbb/global_control.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "cgcn/checkpoint.h"
#include "cgcn/checksum.h"
#include "cgcn/comm.h"
#include "cgcn/model_file.h"
#include "cgcn/plot.h"
#include "cgcn/predictions.h"
#include "cgcn/shard_directory.h"
#include "train/eval_json.h"
#include "util/bytes.h"
#include "util/output_path.h"
#include "util/peak_rss.h"
#include "util/threads.h"

namespace cgcn {
namespace {

using nlohmann::json;

json AccJson(double v) { return std::isnan(v) ? json(nullptr) : json(v); }
// A multi-label evaluation's figures per split ("valid": {"micro_f1": ..., ...}); null when
// multi-class. The *_acc fields hold the headline, micro-F1 at 0.5, for a multi-label task.
json MultiLabelJson(const Accuracy& a) {
  if (a.label_tasks == 0) return json(nullptr);
  json j;
  const char* names[3] = {"train", "valid", "test"};
  for (int s = 0; s < 3; ++s) {
    const MultiLabelMetrics& m = a.multi_label[s];
    j[names[s]] = {{"micro_f1", AccJson(m.micro_f1)},
                   {"macro_f1", AccJson(m.macro_f1)},
                   {"topk_micro_f1", AccJson(m.topk_micro_f1)},
                   {"topk_macro_f1", AccJson(m.topk_macro_f1)},
                   {"roc_auc", AccJson(m.roc_auc)}};
  }
  return j;
}
double Mb(uint64_t bytes) { return static_cast<double>(bytes) / 1048576.0; }

// One --metrics-out record per epoch.
json EpochJson(const EpochRecord& r) {
  json j = {{"epoch", r.epoch},
            {"loss", r.loss},
            {"epoch_s", r.epoch_s},
            {"lr", r.lr},
            {"batches", r.stats.batches},
            {"input_wait_s", r.stats.input_wait_s},
            {"decode_s", r.stats.decode_s},
            {"decode_cpu_s", r.stats.decode_cpu_s},
            {"decode_gb_per_core_s", r.stats.DecodeGBPerCoreSecond()},
            {"assemble_s", r.stats.assemble_s},
            {"compute_s", r.stats.consume_s},
            {"read_ahead_s", r.stats.read_ahead_s},
            {"mean_batch_nodes",
             r.stats.batches ? static_cast<double>(r.stats.batch_nodes) / static_cast<double>(r.stats.batches) : 0.0},
            {"decompressed_bytes", r.stats.decompressed_bytes},
            {"cache_hits", r.stats.cache_hits},
            {"cache_mb", Mb(r.stats.cache_bytes)},
            {"disk_read_mb", Mb(r.stats.disk_read_bytes)},
            {"major_faults", r.stats.major_faults},
            {"train_peak_rss_mb", r.train_peak_rss_mb},
            {"peak_rss_mb", PeakRssMb()}};
  if (Comm::World().distributed()) {
    j["ranks"] = Comm::World().size();
    j["allreduce_calls"] = r.allreduce_calls;
    j["allreduce_bytes"] = r.allreduce_bytes;
    j["allreduce_s"] = r.allreduce_s;
    j["param_checksum"] = Hex64(r.param_checksum);
  }
  if (r.evaluated) {
    j["train_acc"] = AccJson(r.acc.train);
    j["valid_acc"] = AccJson(r.acc.valid);
    j["test_acc"] = AccJson(r.acc.test);
    j["train_loss_eval"] = AccJson(r.acc.train_loss);
    j["valid_loss"] = AccJson(r.acc.valid_loss);
    j["test_loss"] = AccJson(r.acc.test_loss);
    if (r.acc.label_tasks != 0) j["multi_label"] = MultiLabelJson(r.acc);
    j["eval_s"] = r.eval_s;
    j["eval_spilled"] = r.eval_stats.plan.spill;
    j["eval_spill_read_bytes"] = r.eval_stats.spill_read_bytes;
    j["eval_phases"] = EvalPhasesJson(r.eval_stats);
  }
  return j;
}

// The --metrics-out file, JSON Lines. Opened at the first record (truncated, or appended to
// when resuming), so a run that stops before training leaves an existing file as it was.
// Every record is flushed, so a killed run keeps what it logged. After the first failed write
// the writer keeps the error and drops later records.
class MetricsFile {
 public:
  MetricsFile(std::string path, bool append) : path_(std::move(path)), append_(append) {}
  ~MetricsFile() {
    if (f_) std::fclose(f_);
  }
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;

  void Write(const json& record) {
    if (path_.empty() || !error_.ok()) return;
    if (!f_) {
      f_ = std::fopen(path_.c_str(), append_ ? "a" : "w");
      if (!f_) return Fail("cannot open for writing");
    }
    const std::string line = record.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0) Fail("write failed");
  }
  // The first error, or one from closing the file.
  Status Close() {
    if (f_ && std::fclose(f_) != 0 && error_.ok()) Fail("close failed");
    f_ = nullptr;
    return error_;
  }

 private:
  void Fail(const char* what) {
    error_ = Status::IoError("--metrics-out " + path_ + ": " + what + ": " + std::strerror(errno));
  }
  std::string path_;
  bool append_;
  std::FILE* f_ = nullptr;
  Status error_;
};

// Every path the run will write, before it starts (cgcn/train_run.h lists the rules).
Status CheckOutputs(const TrainRunOptions& options, const ShardDirectory& shards) {
  OutputPaths paths;
  paths.AddInputDirectory("the shard directory", options.shards_dir);
  if (!options.check_input.empty())
    for (const InputFileDigest& f : shards.manifest().input_files)
      paths.AddInputFile("an input file of --check-input", options.check_input + "/" + f.relative);
  paths.AddFile("--metrics-out", options.metrics_out);
  paths.AddFile("--save-model", options.save_model);
  paths.AddFile("--predict-out", options.predict_out);
  paths.AddFile("--plot-out", options.plot_out);
  paths.AddDirectory("--checkpoint", options.train.checkpoint_dir, kCheckpointFileName);
  CGCN_RETURN_IF_ERROR(paths.Check());
  CGCN_RETURN_IF_ERROR(CheckPredictionsPath("--predict-out", options.predict_out));
  if (options.runs == 0) return Status::InvalidArgument("--runs must be at least 1, found 0");
  if (options.runs > 1 && !options.train.checkpoint_dir.empty())
    return Status::InvalidArgument("--runs " + std::to_string(options.runs) +
                                   " cannot be combined with --checkpoint (one checkpoint holds one run)");
  const std::string& ckpt = options.train.checkpoint_dir;
  std::error_code ec;
  if (!ckpt.empty() && !options.train.resume && std::filesystem::exists(CheckpointPath(ckpt), ec))
    return Status::InvalidArgument("--checkpoint " + ckpt + ": already holds " + kCheckpointFileName +
                                   " from an earlier run: pass --resume to continue it, or remove it (or choose "
                                   "another directory) to start afresh");
  return Status::Ok();
}

std::string Summary(const TrainRunReport& rep, const TrainOptions& o, uint32_t threads) {
  const TrainReport& t = rep.train;
  EpochStats total;
  for (const EpochRecord& r : t.epochs) {
    total.decode_s += r.stats.decode_s;
    total.decode_cpu_s += r.stats.decode_cpu_s;
    total.input_wait_s += r.stats.input_wait_s;
    total.assemble_s += r.stats.assemble_s;
    total.consume_s += r.stats.consume_s;
    total.decompressed_bytes += r.stats.decompressed_bytes;
    total.cache_hits += r.stats.cache_hits;
  }
  // The first epoch decodes every cluster (into the cache, when it has room); later ones may not.
  double later_s = 0;
  for (size_t i = 1; i < t.epochs.size(); ++i) later_s += t.epochs[i].epoch_s;
  json j = {{"train_acc", AccJson(t.final_acc.train)},
            {"valid_acc", AccJson(t.final_acc.valid)},
            {"test_acc", AccJson(t.final_acc.test)},
            {"epochs", t.epochs.size()},
            {"final_epoch", t.final_epoch},
            {"selected_epoch", t.final_epoch},
            {"model_selected", t.selected},
            {"trained_through", t.trained_through},
            {"stopped_early", t.stopped_early},
            {"eval_every", o.eval_every},
            {"patience", o.patience},
            {"valid_loss", AccJson(t.final_acc.valid_loss)},
            {"model", LayerKindName(o.layer_kind)},
            {"layers", o.layers},
            {"hidden", o.hidden},
            {"residual", o.residual},
            {"norm", NormKindName(o.norm)},
            {"dropout", o.dropout},
            {"input_dropout", o.input_dropout},
            {"feature_norm", std::string(t.feature_norm.Name())},
            {"feature_norm_reason", t.feature_norm_reason},
            {"mean_epoch_s", t.mean_epoch_s},
            {"first_epoch_s", t.epochs.empty() ? 0.0 : t.epochs[0].epoch_s},
            {"mean_later_epoch_s", t.epochs.size() > 1 ? later_s / static_cast<double>(t.epochs.size() - 1) : 0.0},
            {"cache_mb", Mb(t.cache_bytes)},
            {"cache_hits", total.cache_hits},
            {"eval_kept_mb", Mb(t.eval_kept_bytes)},
            {"best_epoch", t.best_epoch},
            {"best_valid_acc", AccJson(t.best_acc.valid)},
            {"test_acc_at_best_valid", AccJson(t.best_acc.test)},
            {"decode_gb_per_s",
             total.decode_s > 0 ? static_cast<double>(total.decompressed_bytes) / total.decode_s / 1e9 : 0.0},
            {"decode_gb_per_core_s", total.DecodeGBPerCoreSecond()},
            {"input_wait_s", total.input_wait_s},
            {"decode_s", total.decode_s},
            {"decode_cpu_s", total.decode_cpu_s},
            {"assemble_s", total.assemble_s},
            {"compute_s", total.consume_s},
            {"eval_s", t.eval_s},
            {"peak_rss_mb", PeakRssMb()},
            {"threads", threads},
            {"gemm", DenseBackendName(GetDenseBackend().backend)},
            {"compute", DenseComputeName(GetDenseBackend().compute)}};
  if (rep.runs.size() > 1) {
    json runs = json::array();
    std::vector<double> tr, va, te;
    for (const RunResult& r : rep.runs) {
      runs.push_back({{"seed", r.seed},
                      {"train_acc", AccJson(r.acc.train)},
                      {"valid_acc", AccJson(r.acc.valid)},
                      {"test_acc", AccJson(r.acc.test)},
                      {"final_epoch", r.final_epoch},
                      {"trained_through", r.trained_through}});
      if (r.acc.label_tasks != 0) runs.back()["multi_label"] = MultiLabelJson(r.acc);
      tr.push_back(r.acc.train);
      va.push_back(r.acc.valid);
      te.push_back(r.acc.test);
    }
    j["runs"] = runs;
    j["selected_run"] = rep.selected_run;
    for (auto [name, v] : {std::pair<const char*, const std::vector<double>*>{"train_acc", &tr},
                           {"valid_acc", &va},
                           {"test_acc", &te}}) {
      const MeanStd ms = MeanAndStd(*v);
      j[std::string(name) + "_mean"] = AccJson(ms.mean);
      j[std::string(name) + "_std"] = AccJson(ms.std);
    }
  }
  if (t.final_acc.label_tasks != 0) {
    j["metric"] = "micro_f1";  // what *_acc hold
    j["multi_label"] = MultiLabelJson(t.final_acc);
    j["multi_label_at_best_valid"] = MultiLabelJson(t.best_acc);
  } else {
    j["metric"] = "accuracy";
  }
  if (t.resumed) j["resumed_from"] = {{"epoch", t.resumed_epoch}, {"batch", t.resumed_batch}};
  j["final_eval_phases"] = EvalPhasesJson(t.final_eval);
  if (t.plan) {
    j["mem_budget_mb"] = Mb(t.plan->budget);
    j["prefetch"] = t.plan->prefetch;
    j["planned_train_mb"] = Mb(t.plan->train_bytes);
    j["planned_eval_mb"] = Mb(t.plan->eval.peak_bytes);
    j["model_adam_mb"] = Mb(t.plan->model_bytes);
    j["eval_spilled"] = t.plan->eval.spill;
  }
  if (!rep.errors.empty()) {
    json errors = json::array();
    for (const Status& s : rep.errors) errors.push_back(s.ToString());
    j["errors"] = errors;
  }
  return j.dump();
}

// Every rank of a data-parallel job must train on the same shard directory: the MANIFEST's
// checksum (which covers every shard's header checksum) is compared with rank 0's.
Status CheckSameShardsOnEveryRank(const ShardDirectory& shards, const std::string& dir) {
  Comm& comm = Comm::World();
  if (!comm.distributed()) return Status::Ok();
  const std::vector<std::byte> manifest = EncodeManifest(shards.manifest());
  const std::vector<std::string> sums = comm.Allgather(Hex64(Checksum64(manifest.data(), manifest.size())));
  const std::vector<std::string> hosts = comm.Allgather(comm.host()), dirs = comm.Allgather(dir);
  // "rank R on host H (--shards DIR): MANIFEST checksum C"
  const auto where = [&](uint32_t r) {
    return "rank " + std::to_string(r) + " on host " + hosts[r] + " (--shards " + dirs[r] + "): MANIFEST checksum " +
           sums[r];
  };
  std::string differ;
  for (uint32_t r = 1; r < sums.size(); ++r)
    if (sums[r] != sums[0]) differ += "\n  " + where(r);
  if (differ.empty()) return Status::Ok();
  return Status::InvalidArgument("every rank must train on the same shard directory, but they differ:\n  " + where(0) +
                                 differ);
}

}  // namespace

MeanStd MeanAndStd(const std::vector<double>& values) {
  double sum = 0;
  size_t n = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++n;
  if (n == 0) return {std::nan(""), std::nan("")};
  MeanStd r;
  r.mean = sum / static_cast<double>(n);
  double sq = 0;
  for (double v : values)
    if (std::isfinite(v)) sq += (v - r.mean) * (v - r.mean);
  r.std = n > 1 ? std::sqrt(sq / static_cast<double>(n - 1)) : 0.0;
  return r;
}

Result<TrainRunReport> RunTraining(const TrainRunOptions& options, const TrainRunCallbacks& callbacks) {
  std::optional<tbb::global_control> threads_limit;
  if (options.threads > 0) threads_limit.emplace(tbb::global_control::max_allowed_parallelism, options.threads);
  CGCN_RETURN_IF_ERROR(CheckDenseBackend(options.gemm, options.compute));
  const ScopedDenseBackend gemm({.backend = options.gemm, .compute = options.compute});
  CGCN_ASSIGN_OR_RETURN(ShardDirectory shards, ShardDirectory::Open(options.shards_dir));
  if (!options.check_input.empty()) CGCN_RETURN_IF_ERROR(shards.CheckInput(options.check_input));
  CGCN_RETURN_IF_ERROR(CheckSameShardsOnEveryRank(shards, options.shards_dir));
  // Rank 0 alone writes the outputs (and checkpoints: Train); the other ranks check none.
  TrainRunOptions mine = options;
  if (Comm::World().rank() != 0) mine.metrics_out = mine.save_model = mine.predict_out = mine.plot_out = "";
  TrainOptions o = options.train;
  o.predict = !mine.predict_out.empty();
  CGCN_RETURN_IF_ERROR(o.Validate(shards.num_clusters()));
  if (Comm::World().rank() == 0) CGCN_RETURN_IF_ERROR(CheckOutputs(options, shards));
  const Manifest& m = shards.manifest();
  const uint32_t threads = RunnableThreads();
  if (callbacks.on_start) callbacks.on_start(m, threads);

  TrainRunReport rep;
  rep.num_nodes = m.num_nodes;
  Gcn model(ModelConfig(m, o), o.seed);
  MetricsFile metrics(mine.metrics_out, o.resume);
  const bool several = options.runs > 1;
  uint32_t run = 0;
  TrainCallbacks tc;
  tc.on_plan = callbacks.on_plan;
  tc.progress = callbacks.progress;
  tc.on_epoch = [&](const EpochRecord& r) {
    json j = EpochJson(r);
    if (several) j["run"] = run;
    metrics.Write(j);
    if (callbacks.on_epoch) callbacks.on_epoch(r);
  };
  if (options.log_steps)
    tc.on_step = [&](uint64_t step, uint32_t epoch, uint64_t batch, double loss) {
      json j{{"step", step}, {"epoch", epoch}, {"batch", batch}, {"loss", loss}};
      if (several) j["run"] = run;
      metrics.Write(j);
    };
  // Several runs: the best by validation accuracy so far keeps its report and parameters.
  std::vector<float> selected_params;
  for (run = 0; run < options.runs; ++run) {
    TrainOptions ro = o;
    ro.seed = o.seed + run;
    Gcn run_model(ModelConfig(m, ro), ro.seed);
    CGCN_ASSIGN_OR_RETURN(TrainReport t, Train(shards, ro, run_model, tc));
    rep.runs.push_back(RunResult{ro.seed, t.final_acc, t.final_epoch, t.trained_through});
    if (callbacks.on_run) callbacks.on_run(run, ro.seed, t);
    if (run == 0 || t.final_acc.valid > rep.train.final_acc.valid) {
      rep.train = std::move(t);
      rep.selected_run = run;
      selected_params.assign(run_model.params().begin(), run_model.params().end());
    }
  }
  std::copy(selected_params.begin(), selected_params.end(), model.params().begin());

  // Every output that can be written is written; failures are collected, not returned.
  if (Status s = metrics.Close(); !s.ok()) rep.errors.push_back(s);
  if (!mine.save_model.empty()) {
    Status s = SaveModel(mine.save_model, model, rep.train.feature_norm);
    rep.model_written = s.ok();
    if (!s.ok()) rep.errors.push_back(s.WithContext("--save-model " + mine.save_model));
  }
  if (!mine.predict_out.empty()) {
    Status s = WritePredictions(mine.predict_out, std::move(rep.train.predictions));
    rep.train.predictions = {};
    rep.predictions_written = s.ok();
    if (!s.ok()) rep.errors.push_back(s.WithContext("--predict-out " + mine.predict_out));
  }
  if (!mine.plot_out.empty()) {
    const std::string title =
        "cgcn-train " + options.shards_dir + " (seed " + std::to_string(rep.runs[rep.selected_run].seed) + ")";
    Status s =
        WriteLearningCurves(mine.plot_out, rep.train.epochs, title, rep.train.selected ? rep.train.final_epoch : 0);
    rep.plot_written = s.ok();
    if (!s.ok()) rep.errors.push_back(s.WithContext("--plot-out " + mine.plot_out));
  }
  rep.summary_json = Summary(rep, options.train, threads);
  return rep;
}

}  // namespace cgcn
