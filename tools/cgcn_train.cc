// cgcn-train: streams shard batches through a GCN, evaluates on the full graph,
// writes metrics, the model and predictions.
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cgcn/byte_size.h"
#include "cgcn/checkpoint.h"
#include "cgcn/cli.h"
#include "cgcn/evaluate.h"
#include "cgcn/interrupt.h"
#include "cgcn/memory_plan.h"
#include "cgcn/model_file.h"
#include "cgcn/predictions.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"

namespace {

nlohmann::json AccJson(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json EpochJson(const cgcn::EpochRecord& r) {
  nlohmann::json j = {
      {"epoch", r.epoch},
      {"loss", r.loss},
      {"epoch_s", r.epoch_s},
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
      {"disk_read_mb", static_cast<double>(r.stats.disk_read_bytes) / 1048576.0},
      {"major_faults", r.stats.major_faults},
      {"train_peak_rss_mb", r.train_peak_rss_mb},
      {"peak_rss_mb", cgcn::cli::PeakRssMb()}};
  if (r.evaluated) {
    j["train_acc"] = AccJson(r.acc.train);
    j["valid_acc"] = AccJson(r.acc.valid);
    j["test_acc"] = AccJson(r.acc.test);
    j["eval_s"] = r.eval_s;
    j["eval_spilled"] = r.eval_stats.plan.spill;
    j["eval_spill_read_bytes"] = r.eval_stats.spill_read_bytes;
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  CLI::App app{
      "Trains a GCN with Cluster-GCN mini-batches streamed from a shard directory made by cgcn-preprocess. "
      "Each step takes q random clusters with every edge among them; a oneTBB pipeline maps, verifies and "
      "decodes the next batches while the current one trains. Accuracy is measured by exact full-graph "
      "inference over the shards. The last line on stdout is a JSON summary.",
      "cgcn-train"};
  std::string dir, check_input, metrics_out, save_model, predict_out, feature_norm = "row", mem_budget, tmp_dir;
  TrainOptions o;
  int threads = 0;
  bool quiet = false, log_steps = false;
  app.add_option("--shards", dir, "shard directory written by cgcn-preprocess")->required();
  app.add_option("--clusters-per-batch,-q", o.clusters_per_batch, "clusters per batch q")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "training epochs")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--layers", o.layers, "GCN layers")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--hidden", o.hidden, "hidden units per layer")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--lr", o.lr, "Adam learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "L2 weight decay (added to the gradient, as torch Adam)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--dropout", o.dropout, "dropout after every hidden layer")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed for initialization, batch order and dropout")->capture_default_str();
  app.add_option("--prefetch", o.prefetch, "batches in flight in the pipeline (bounds memory)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--mem-budget", mem_budget,
                 "bound memory to SIZE (512M, 2G, 1.5GiB; K/M/G/T are powers of 1024): batches in flight, decoding, "
                 "the training step and evaluation stay within it (prefetch is lowered to fit; evaluation spills "
                 "activations to --tmp-dir when they do not fit; decoded shards leave the page cache); the model and "
                 "Adam state come on top. Prints the plan; fails with the numbers when one batch cannot fit");
  app.add_option("--tmp-dir", tmp_dir,
                 "directory for evaluation's spilled activations (default: $TMPDIR, else the system temporary "
                 "directory); the files are unlinked at creation");
  app.add_option("--eval-every", o.eval_every, "full-graph evaluation every N epochs (0: only at the end)")
      ->capture_default_str();
  app.add_option("--feature-norm", feature_norm,
                 "input feature normalization: row (divide by row sum, as PyG NormalizeFeatures) or none")
      ->check(CLI::IsMember({"row", "none"}))
      ->capture_default_str();
  app.add_option("--metrics-out", metrics_out, "write one JSON record per epoch to this file (JSON Lines)");
  app.add_option("--save-model", save_model, "write the trained model here (docs/FORMAT.md)");
  app.add_option("--predict-out", predict_out, "write 'node_id,label' predictions for every node here");
  app.add_option("--checkpoint", o.checkpoint_dir, "directory for checkpoints (checkpoint.cgcn, written atomically)");
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "write a checkpoint every N training steps (and after every epoch)");
  app.add_flag("--resume", o.resume,
               "continue from the checkpoint in --checkpoint DIR (same options and shards required)");
  app.add_flag("--log-steps", log_steps,
               "also write one record per training step (step, epoch, batch, loss) to --metrics-out");
  app.add_option("--check-input", check_input,
                 "refuse to train unless RAW_DIR is, file for file, the input the shards were built from");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  threads = common.threads;
  quiet = common.quiet;
  o.row_normalize = feature_norm == "row";
  const char* kTool = "cgcn-train";

  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  cli::ProgressPrinter printer(quiet);

  Result<ShardDirectory> shards = ShardDirectory::Open(dir);
  if (!shards.ok()) return cli::Fail(kTool, shards.status());
  if (!check_input.empty()) {
    Status s = shards->CheckInput(check_input);
    if (!s.ok()) return cli::Fail(kTool, s);
  }
  const Manifest& m = shards->manifest();
  if (o.clusters_per_batch > m.num_parts)
    return cli::Fail(kTool,
                     Status::InvalidArgument("--clusters-per-batch " + std::to_string(o.clusters_per_batch) +
                                             " exceeds the " + std::to_string(m.num_parts) + " clusters in " + dir));
  uint64_t budget = 0;
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    budget = *b;
  }
  MemoryPlan plan;
  o.eval.tmp_dir = tmp_dir;
  if (budget > 0) {
    Result<MemoryPlan> p = PlanMemory(m, o, budget, static_cast<uint32_t>(nthreads), tmp_dir, !predict_out.empty());
    if (!p.ok()) return cli::Fail(kTool, p.status());
    plan = std::move(p).value();
    o.prefetch = plan.prefetch;
    o.eval = plan.eval_options;
    shards->set_drop_page_cache(true);
  }
  std::ofstream metrics;
  if (!metrics_out.empty()) {
    metrics.open(metrics_out, o.resume ? std::ios::app : std::ios::trunc);
    if (!metrics) return cli::Fail(kTool, Status::IoError(metrics_out + ": cannot open for writing"));
  }
  std::printf(
      "cgcn-train: %llu nodes, %llu edges, %u features, %u classes, %u clusters; q=%u, %u x %u GCN, %u epochs, %d "
      "threads\n",
      static_cast<unsigned long long>(m.num_nodes), static_cast<unsigned long long>(m.num_edges), m.feat_dim,
      m.num_classes, m.num_parts, o.clusters_per_batch, o.layers, o.hidden, o.epochs, nthreads);
  if (budget > 0 && !quiet) std::printf("%s\n", plan.Describe().c_str());
  std::fflush(stdout);

  Gcn model(ModelConfig(m, o), o.seed);
  auto on_epoch = [&](const EpochRecord& r) {
    printer.Finish();
    if (metrics.is_open()) metrics << EpochJson(r).dump() << '\n' << std::flush;
    char times[160];
    std::snprintf(times, sizeof times, "(wait %.3f, decode %.3f, assemble %.3f, compute %.3f)", r.stats.input_wait_s,
                  r.stats.decode_s, r.stats.assemble_s, r.stats.consume_s);
    if (r.evaluated)
      std::printf("epoch %4u  loss %.4f  %.3f s  %s  eval %.2f s%s  train %.4f  valid %.4f  test %.4f\n", r.epoch,
                  r.loss, r.epoch_s, times, r.eval_s, r.eval_stats.plan.spill ? " (spilled)" : "", r.acc.train,
                  r.acc.valid, r.acc.test);
    else if (r.epoch % std::max<uint32_t>(1, o.epochs / 20) == 0)
      std::printf("epoch %4u  loss %.4f  %.3f s  %s\n", r.epoch, r.loss, r.epoch_s, times);
    std::fflush(stdout);
  };
  auto on_step = [&](uint64_t step, uint32_t epoch, uint64_t batch, double loss) {
    if (log_steps && metrics.is_open())
      metrics << nlohmann::json{{"step", step}, {"epoch", epoch}, {"batch", batch}, {"loss", loss}}.dump() << std::endl;
  };
  if (o.resume) std::printf("resuming from %s/%s\n", o.checkpoint_dir.c_str(), kCheckpointFileName);
  Result<TrainReport> rep = Train(*shards, o, model, on_epoch, printer.Fn(), on_step);
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  if (metrics.is_open() && !metrics) return cli::Fail(kTool, Status::IoError(metrics_out + ": write failed"));

  if (!save_model.empty()) {
    Status s = SaveModel(save_model, model, o.row_normalize);
    if (!s.ok()) return cli::Fail(kTool, s);
    std::printf("model written to %s\n", save_model.c_str());
  }
  if (!predict_out.empty()) {
    std::vector<Prediction> preds;
    Result<Accuracy> acc = EvaluateFullGraph(*shards, model, o.row_normalize, &preds, {}, o.eval);
    if (!acc.ok()) return cli::Fail(kTool, acc.status());
    Status s = WritePredictions(predict_out, std::move(preds));
    if (!s.ok()) return cli::Fail(kTool, s);
    std::printf("predictions for %llu nodes written to %s\n", static_cast<unsigned long long>(m.num_nodes),
                predict_out.c_str());
  }
  EpochStats total;
  for (const EpochRecord& r : rep->epochs) {
    total.decode_s += r.stats.decode_s;
    total.decode_cpu_s += r.stats.decode_cpu_s;
    total.input_wait_s += r.stats.input_wait_s;
    total.assemble_s += r.stats.assemble_s;
    total.consume_s += r.stats.consume_s;
    total.decompressed_bytes += r.stats.decompressed_bytes;
  }
  nlohmann::json summary = {
      {"train_acc", AccJson(rep->final_acc.train)},
      {"valid_acc", AccJson(rep->final_acc.valid)},
      {"test_acc", AccJson(rep->final_acc.test)},
      {"epochs", o.epochs},
      {"mean_epoch_s", rep->mean_epoch_s},
      {"best_epoch", rep->best_epoch},
      {"best_valid_acc", AccJson(rep->best_acc.valid)},
      {"test_acc_at_best_valid", AccJson(rep->best_acc.test)},
      {"decode_gb_per_s",
       total.decode_s > 0 ? static_cast<double>(total.decompressed_bytes) / total.decode_s / 1e9 : 0.0},
      {"decode_gb_per_core_s", total.DecodeGBPerCoreSecond()},
      {"input_wait_s", total.input_wait_s},
      {"decode_s", total.decode_s},
      {"decode_cpu_s", total.decode_cpu_s},
      {"assemble_s", total.assemble_s},
      {"compute_s", total.consume_s},
      {"peak_rss_mb", cli::PeakRssMb()},
      {"threads", nthreads}};
  if (budget > 0) {
    auto mb = [](uint64_t b) { return static_cast<double>(b) / 1048576.0; };
    summary["mem_budget_mb"] = mb(plan.budget);
    summary["prefetch"] = plan.prefetch;
    summary["planned_train_mb"] = mb(plan.train_bytes);
    summary["planned_eval_mb"] = mb(plan.eval.peak_bytes);
    summary["model_adam_mb"] = mb(plan.model_bytes);
    summary["eval_spilled"] = plan.eval.spill;
  }
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
