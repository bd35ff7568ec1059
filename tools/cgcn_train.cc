// cgcn-train: flags and printing around RunTraining (cgcn/train_run.h), which opens the shards,
// checks the options and every output path, trains, evaluates and writes the outputs.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "cgcn/byte_size.h"
#include "cgcn/checkpoint.h"
#include "cgcn/cli.h"
#include "cgcn/interrupt.h"
#include "cgcn/train_run.h"

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  CLI::App app{
      "Trains a GCN with Cluster-GCN mini-batches streamed from a shard directory made by cgcn-preprocess. "
      "Each step takes q random clusters with every edge among them; a oneTBB pipeline maps, verifies and "
      "decodes the next batches while the current one trains. Accuracy is measured by exact full-graph "
      "inference over the shards. Every output path is checked before training starts. The last line on "
      "stdout is a JSON summary, printed (with \"errors\") even when an output could not be written.",
      "cgcn-train"};
  TrainRunOptions run;
  TrainOptions& o = run.train;
  std::string feature_norm = "row", mem_budget;
  app.add_option("--shards", run.shards_dir, "shard directory written by cgcn-preprocess")->required();
  cli::AddNumber(app, "--clusters-per-batch,-q", &o.clusters_per_batch, "clusters per batch q (at most the clusters)");
  cli::AddNumber(app, "--epochs", &o.epochs, "training epochs (at least 1)");
  cli::AddNumber(app, "--layers", &o.layers, "GCN layers (1 to 16)");
  cli::AddNumber(app, "--hidden", &o.hidden, "hidden units per layer (1 to 65536)");
  cli::AddNumber(app, "--lr", &o.lr, "Adam learning rate (greater than 0)");
  cli::AddNumber(app, "--weight-decay", &o.weight_decay, "L2 weight decay (added to the gradient, as torch Adam)");
  cli::AddNumber(app, "--dropout", &o.dropout, "dropout after every hidden layer (0 to 0.99)");
  cli::AddNumber(app, "--seed", &o.seed, "seed for initialization, batch order and dropout");
  cli::AddNumber(app, "--prefetch", &o.prefetch, "batches in flight in the pipeline (1 to 64; bounds memory)");
  app.add_option("--mem-budget", mem_budget,
                 "bound memory to SIZE (512M, 2G, 1.5GiB; K/M/G/T are powers of 1024): batches in flight, decoding, "
                 "the training step and evaluation stay within it (prefetch is lowered to fit; evaluation spills "
                 "activations to --tmp-dir when they do not fit; decoded shards leave the page cache); the model and "
                 "Adam state come on top. Prints the plan; fails with the numbers when one batch cannot fit");
  app.add_option("--tmp-dir", o.tmp_dir,
                 "directory for evaluation's spilled activations (default: $TMPDIR, else the system temporary "
                 "directory); the files are unlinked at creation");
  cli::AddNumber(app, "--eval-every", &o.eval_every, "full-graph evaluation every N epochs (0: only at the end)");
  app.add_option("--feature-norm", feature_norm,
                 "input feature normalization: row (divide by row sum, as PyG NormalizeFeatures) or none")
      ->check(CLI::IsMember({"row", "none"}))
      ->capture_default_str();
  app.add_option("--metrics-out", run.metrics_out, "write one JSON record per epoch to this file (JSON Lines)");
  app.add_option("--save-model", run.save_model, "write the trained model here (docs/FORMAT.md)");
  app.add_option("--predict-out", run.predict_out, "write 'node_id,label' predictions for every node here");
  app.add_option("--checkpoint", o.checkpoint_dir,
                 "directory for checkpoints (checkpoint.cgcn, written atomically after every epoch); a fresh run "
                 "refuses a directory that already holds one");
  cli::AddNumber(app, "--checkpoint-every", &o.checkpoint_every,
                 "also write a checkpoint every N training steps (0: after every epoch only)");
  app.add_flag("--resume", o.resume,
               "continue from the checkpoint in --checkpoint DIR (same options and shards required)");
  app.add_flag("--log-steps", run.log_steps,
               "also write one record per training step (step, epoch, batch, loss) to --metrics-out");
  app.add_option("--check-input", run.check_input,
                 "refuse to train unless RAW_DIR is, file for file, the input the shards were built from");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  const char* kTool = "cgcn-train";
  o.row_normalize = feature_norm == "row";
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    o.mem_budget = *b;
  }
  run.threads = static_cast<uint32_t>(cli::ThreadCount(common));
  const bool quiet = common.quiet;
  cli::ProgressPrinter printer(quiet);

  TrainRunCallbacks cb;
  cb.progress = printer.Fn();
  cb.on_start = [&](const Manifest& m, uint32_t threads) {
    if (quiet) return;
    std::printf(
        "cgcn-train: %llu nodes, %llu edges, %u features, %u classes, %u clusters; q=%u, %u x %u GCN, %u epochs, "
        "%u threads\n",
        static_cast<unsigned long long>(m.num_nodes), static_cast<unsigned long long>(m.num_edges), m.feat_dim,
        m.num_classes, m.num_parts, o.clusters_per_batch, o.layers, o.hidden, o.epochs, threads);
    if (o.resume) std::printf("resuming from %s\n", CheckpointPath(o.checkpoint_dir).c_str());
    std::fflush(stdout);
  };
  cb.on_plan = [&](const MemoryPlan& plan) {
    if (quiet) return;
    std::printf("%s\n", plan.Describe().c_str());
    std::fflush(stdout);
  };
  cb.on_epoch = [&](const EpochRecord& r) {
    printer.Finish();
    if (quiet) return;
    char times[160];
    std::snprintf(times, sizeof times, "(wait %.3f, decode %.3f, assemble %.3f, compute %.3f)", r.stats.input_wait_s,
                  r.stats.decode_s, r.stats.assemble_s, r.stats.consume_s);
    if (r.evaluated) {
      std::printf("epoch %4u  loss %.4f  %.3f s  %s  eval %.2f s%s  train %.4f  valid %.4f  test %.4f%s\n", r.epoch,
                  r.loss, r.epoch_s, times, r.eval_s, r.eval_stats.plan.spill ? " (spilled)" : "", r.acc.train,
                  r.acc.valid, r.acc.test, r.acc.label_tasks != 0 ? " (micro-F1 at 0.5)" : "");
      if (r.acc.label_tasks != 0) {
        const MultiLabelMetrics& v = r.acc.multi_label[1];
        const MultiLabelMetrics& t = r.acc.multi_label[2];
        std::printf(
            "            valid macro-F1 %.4f  top-k micro %.4f macro %.4f  ROC-AUC %.4f | test macro-F1 %.4f  top-k "
            "micro %.4f macro %.4f  ROC-AUC %.4f\n",
            v.macro_f1, v.topk_micro_f1, v.topk_macro_f1, v.roc_auc, t.macro_f1, t.topk_micro_f1, t.topk_macro_f1,
            t.roc_auc);
      }
    } else if (r.epoch % std::max<uint32_t>(1, o.epochs / 20) == 0)
      std::printf("epoch %4u  loss %.4f  %.3f s  %s\n", r.epoch, r.loss, r.epoch_s, times);
    std::fflush(stdout);
  };

  Result<TrainRunReport> rep = RunTraining(run, cb);
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  if (!quiet) {
    if (rep->train.epochs.empty())
      std::printf("nothing left to train: the checkpoint is after epoch %u; evaluated the restored model\n",
                  rep->train.final_epoch);
    if (rep->model_written) std::printf("model written to %s\n", run.save_model.c_str());
    if (rep->predictions_written)
      std::printf("predictions for %llu nodes written to %s\n", static_cast<unsigned long long>(rep->num_nodes),
                  run.predict_out.c_str());
  }
  int exit_code = 0;
  for (const Status& e : rep->errors) {
    const int code = cli::Fail(kTool, e);
    if (exit_code == 0) exit_code = code;
  }
  std::printf("%s\n", rep->summary_json.c_str());
  return exit_code;
}
