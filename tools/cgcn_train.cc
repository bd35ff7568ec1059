// cgcn-train: flags and printing around RunTraining (cgcn/train_run.h), which opens the shards,
// checks the options and every output path, trains, evaluates and writes the outputs.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "cgcn/byte_size.h"
#include "cgcn/checkpoint.h"
#include "cgcn/cli.h"
#include "cgcn/comm.h"
#include "cgcn/interrupt.h"
#include "cgcn/train_run.h"

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  // Under mpirun: MPI_Init (after the signal mask is set, so MPI's threads inherit it).
  Comm::Init(&argc, &argv);
  // Rank 0 alone prints progress and the summary (and, in RunTraining, writes every output).
  const bool leader = Comm::World().rank() == 0;
  CLI::App app{
      "Trains a GCN with Cluster-GCN mini-batches streamed from a shard directory made by cgcn-preprocess. "
      "Each step takes q random clusters with every edge among them; a oneTBB pipeline maps, verifies and "
      "decodes the next batches while the current one trains. Accuracy is measured by exact full-graph "
      "inference over the shards. Every output path is checked before training starts. The last line on "
      "stdout is a JSON summary, printed (with \"errors\") even when an output could not be written. Under "
      "mpirun -n N it trains data-parallel: each step takes one batch per rank and averages their gradients "
      "(MPI_Allreduce), evaluation is split among the ranks, and rank 0 writes every output (README, \"Several "
      "processes or hosts\").",
      "cgcn-train"};
  TrainRunOptions run;
  TrainOptions& o = run.train;
  std::string feature_norm = "auto", lr_schedule = "none", mem_budget, cache = "auto", layer_kind = "gcn",
              norm = "none";
  app.add_option("--shards", run.shards_dir, "shard directory written by cgcn-preprocess")->required();
  cli::AddNumber(app, "--clusters-per-batch,-q", &o.clusters_per_batch, "clusters per batch q (at most the clusters)");
  cli::AddNumber(app, "--epochs", &o.epochs, "training epochs (at least 1)");
  cli::AddNumber(app, "--layers", &o.layers, "GCN layers (1 to 16)");
  cli::AddNumber(app, "--hidden", &o.hidden, "hidden units per layer (1 to 65536)");
  app.add_option("--model", layer_kind,
                 "layer kind: gcn (GCNConv), cluster-gcn (ClusterGCNConv: (A' + lambda diag(A')) X W + X W_root, A' = "
                 "(D + I)^-1 (A + I)), sage (GraphSAGE mean aggregation with a root weight), gat (GATConv: attention "
                 "over the neighbours and "
                 "the node itself, --heads); recorded in the model file")
      ->check(CLI::IsMember({"gcn", "cluster-gcn", "sage", "gat"}))
      ->capture_default_str();
  cli::AddNumber(app, "--diag-lambda", &o.diag_lambda, "cluster-gcn: the weight lambda of diag(A') (default 0)");
  cli::AddNumber(app, "--heads", &o.heads,
                 "gat: attention heads of the hidden layers, each hidden / heads units wide, concatenated; the last "
                 "layer has one head (1 to 64; --hidden a multiple of it)");
  app.add_flag(
      "--residual", o.residual,
      "add each hidden layer's input to its output where the widths match: h' = dropout(relu(norm(conv(h)))) + h");
  app.add_option("--norm", norm,
                 "normalization of every hidden layer's convolution output, before ReLU: none, layer (LayerNorm) or "
                 "batch (BatchNorm1d over the batch's nodes; running statistics in evaluation)")
      ->check(CLI::IsMember({"none", "layer", "batch"}))
      ->capture_default_str();
  cli::AddNumber(app, "--lr", &o.lr, "Adam learning rate (greater than 0)");
  cli::AddNumber(app, "--weight-decay", &o.weight_decay, "L2 weight decay (added to the gradient, as torch Adam)");
  cli::AddNumber(app, "--dropout", &o.dropout, "dropout after every hidden layer (0 to 0.99)");
  cli::AddNumber(app, "--input-dropout", &o.input_dropout,
                 "dropout on the input features in training, as Kipf & Welling's GCN and PyG's examples (0 to 0.99; "
                 "0: none). The full-graph evaluation never drops");
  cli::AddNumber(app, "--seed", &o.seed, "seed for initialization, batch order and dropout");
  cli::AddNumber(app, "--prefetch", &o.prefetch, "batches in flight in the pipeline (1 to 64; bounds memory)");
  app.add_option("--mem-budget", mem_budget,
                 "bound memory to SIZE (512M, 2G, 1.5GiB; K/M/G/T are powers of 1024): batches in flight, decoding, "
                 "the training step and evaluation stay within it (prefetch is lowered to fit; evaluation spills "
                 "activations to --tmp-dir when they do not fit; decoded shards leave the page cache); the model and "
                 "Adam state come on top. Prints the plan; fails with the numbers when one batch cannot fit");
  app.add_option("--cache", cache,
                 "decoded clusters kept in memory across epochs, so that later batches neither map, verify nor "
                 "decode their shards: SIZE (as --mem-budget), 0 (none) or auto: with --mem-budget, what the budget "
                 "leaves beside training (emptied before each evaluation); without, the whole decoded graph if it "
                 "takes at most a quarter of this machine's (or cgroup's) memory, else that quarter (under mpirun, "
                 "a quarter shared by the ranks). Results do "
                 "not depend on it")
      ->default_str("auto");
  app.add_option("--tmp-dir", o.tmp_dir,
                 "directory for evaluation's spilled activations (default: $TMPDIR, else the system temporary "
                 "directory); the files are unlinked at creation");
  cli::AddNumber(app, "--eval-every", &o.eval_every,
                 "exact full-graph evaluation every N epochs and after the last, for model selection and --patience "
                 "(0: only after the last epoch, no selection). Without --mem-budget, evaluations after the first "
                 "reuse the memory, rows and degrees the first one built, when they take at most a quarter of the "
                 "memory limit (eval_kept_mb in the summary)");
  app.add_option(
         "--feature-norm", feature_norm,
         "input feature normalization: row (divide by row sum, as PyG NormalizeFeatures), standard (per-feature "
         "mean and standard deviation, from a pass over the shards), none, or auto: row for sparse "
         "non-negative features (at most 10% non-zero, bag-of-words), standard otherwise. Recorded in the "
         "summary and the model file")
      ->check(CLI::IsMember({"auto", "row", "standard", "none"}))
      ->capture_default_str();
  CLI::Option* patience = cli::AddNumber(
      app, "--patience", &o.patience,
      "stop after N evaluations in a row with neither a better validation metric nor a lower validation loss "
      "(0: never; counts --eval-every's evaluations). With --eval-every the saved model and the predictions are "
      "those of the evaluation with the best validation metric. Without validation nodes in the shards neither "
      "applies (a note says so)");
  app.add_option("--lr-schedule", lr_schedule,
                 "learning-rate schedule: none; step (x --lr-gamma every --lr-step-size epochs); cosine (annealed to 0 "
                 "over --epochs); plateau (x --lr-gamma after more than --lr-patience evaluations without a lower "
                 "validation loss; needs --eval-every)")
      ->check(CLI::IsMember({"none", "step", "cosine", "plateau"}))
      ->capture_default_str();
  cli::AddNumber(app, "--lr-step-size", &o.lr_step_size, "epochs between step reductions (at least 1)");
  cli::AddNumber(app, "--lr-gamma", &o.lr_gamma, "learning-rate factor of step and plateau (above 0, at most 1)");
  cli::AddNumber(app, "--lr-patience", &o.lr_patience, "evaluations without improvement plateau tolerates");
  cli::AddNumber(app, "--accumulate", &o.accumulate,
                 "average the gradients of N batches (in epoch order) per optimizer step (1 to 4096). Under mpirun "
                 "with R ranks a step averages R x N batches, each rank training N of them and reading only their "
                 "shards; R ranks give the same steps as one process with --accumulate R");
  cli::AddNumber(app, "--grad-clip", &o.grad_clip,
                 "clip the gradients' global L2 norm to this before each step (0: no clipping)");
  app.add_flag("--inductive", o.inductive,
               "training batches hold only training nodes and the edges among them (evaluation uses the full graph)");
  app.add_option("--metrics-out", run.metrics_out, "write one JSON record per epoch to this file (JSON Lines)");
  app.add_option("--save-model", run.save_model, "write the trained model here (docs/FORMAT.md)");
  app.add_option("--predict-out", run.predict_out, "write 'node_id,label' predictions for every node here");
  app.add_option("--plot-out", run.plot_out,
                 "draw learning curves (training and validation loss; validation and test accuracy) into this SVG");
  cli::AddNumber(app, "--runs", &run.runs,
                 "train R times with seeds --seed .. --seed + R - 1; prints each run, then mean and standard "
                 "deviation; outputs come from the run with the best validation accuracy",
                 1u, 1000u);
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
  cli::AddGemmFlag(app, &run.gemm);
  cli::AddComputeFlag(app, &run.compute);
  CGCN_PARSE_FLAGS(app, argc, argv);
  const char* kTool = "cgcn-train";
  if (patience->count() > 0 && o.patience > 0 && o.eval_every == 0)
    return cli::Fail(kTool, Status::InvalidArgument("--patience " + std::to_string(o.patience) +
                                                    " counts evaluations, but --eval-every 0 evaluates only after "
                                                    "the last epoch: set --eval-every N"));
  o.feature_norm = *ParseFeatureNormMode(feature_norm);  // CLI::IsMember checked it
  o.lr_schedule = *ParseLrSchedule(lr_schedule);
  ParseLayerKind(layer_kind, &o.layer_kind);  // CLI::IsMember admitted only known names
  ParseNormKind(norm, &o.norm);
  if (cache == "0" || cache == "none") {
    o.cache_bytes = 0;
  } else if (cache != "auto") {
    Result<uint64_t> b = ParseByteSize(cache);
    if (!b.ok())
      return cli::Fail(kTool, Status::InvalidArgument("--cache: " + b.status().message() + " (or 0, or auto)"));
    o.cache_bytes = *b;
  }
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    o.mem_budget = *b;
  }
  run.threads = static_cast<uint32_t>(cli::ThreadCount(common));
  const bool quiet = common.quiet || !leader;
  cli::ProgressPrinter printer(quiet);

  TrainRunCallbacks cb;
  cb.progress = printer.Fn();
  cb.on_start = [&](const Manifest& m, uint32_t threads) {
    if (quiet) return;
    std::printf(
        "cgcn-train: %llu nodes, %llu edges, %u features, %u classes, %u clusters; q=%u, %u x %u %s%s%s%s, %u "
        "epochs, %u threads\n",
        static_cast<unsigned long long>(m.num_nodes), static_cast<unsigned long long>(m.num_edges), m.feat_dim,
        m.num_classes, m.num_parts, o.clusters_per_batch, o.layers, o.hidden, LayerKindName(o.layer_kind),
        o.norm != NormKind::kNone ? " + " : "", o.norm != NormKind::kNone ? NormKindName(o.norm) : "",
        o.norm != NormKind::kNone ? " norm" : "", o.epochs, threads);
    if (o.residual) std::printf("residual connections on the hidden layers\n");
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
    char times[224];
    char cached[64] = "";
    if (r.stats.cache_bytes > 0)
      std::snprintf(cached, sizeof cached, ", cache %llu hits, holds %s",
                    static_cast<unsigned long long>(r.stats.cache_hits), FormatBytes(r.stats.cache_bytes).c_str());
    std::snprintf(times, sizeof times, "(wait %.3f, decode %.3f, assemble %.3f, compute %.3f%s)", r.stats.input_wait_s,
                  r.stats.decode_s, r.stats.assemble_s, r.stats.consume_s, cached);
    if (r.evaluated) {
      std::printf("epoch %4u  loss %.4f  %.3f s  %s  eval %.2f s%s  train %.4f  valid %.4f (loss %.4f)  test %.4f%s\n",
                  r.epoch, r.loss, r.epoch_s, times, r.eval_s, r.eval_stats.plan.spill ? " (spilled)" : "", r.acc.train,
                  r.acc.valid, r.acc.valid_loss, r.acc.test, r.acc.label_tasks != 0 ? " (micro-F1 at 0.5)" : "");
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

  cb.on_run = [&](uint32_t r, uint64_t seed, const TrainReport& t) {
    if (quiet || run.runs < 2) return;
    std::printf("run %u (seed %llu): epoch %u  train %.4f  valid %.4f  test %.4f\n", r + 1,
                static_cast<unsigned long long>(seed), t.final_epoch, t.final_acc.train, t.final_acc.valid,
                t.final_acc.test);
    std::fflush(stdout);
  };
  Result<TrainRunReport> rep = RunTraining(run, cb);
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  if (!quiet) {
    if (rep->train.epochs.empty())
      std::printf("nothing left to train: the checkpoint is after epoch %u; evaluated the restored model\n",
                  rep->train.final_epoch);
    const TrainReport& t = rep->train;
    std::printf("features normalized: %s\n", t.feature_norm_reason.c_str());
    if (!t.selection_note.empty()) std::printf("note: %s\n", t.selection_note.c_str());
    if (t.stopped_early)
      std::printf(
          "stopped early after epoch %u: %u evaluations without a better validation metric or a lower "
          "validation loss (--patience %u)\n",
          t.trained_through, o.patience, o.patience);
    if (t.selected || (o.eval_every > 0 && t.selection_note.empty()))
      std::printf("model from epoch %u (best validation accuracy %.4f): train %.4f  valid %.4f  test %.4f\n",
                  t.final_epoch, t.best_acc.valid, t.final_acc.train, t.final_acc.valid, t.final_acc.test);
    if (rep->runs.size() > 1) {
      std::vector<double> va, te;
      for (const RunResult& r : rep->runs) va.push_back(r.acc.valid), te.push_back(r.acc.test);
      const MeanStd v = MeanAndStd(va), e = MeanStd(MeanAndStd(te));
      std::printf("%zu runs: valid %.4f +- %.4f  test %.4f +- %.4f (mean +- sample std); outputs from run %u\n",
                  rep->runs.size(), v.mean, v.std, e.mean, e.std, rep->selected_run + 1);
    }
    if (rep->plot_written) std::printf("learning curves drawn in %s\n", run.plot_out.c_str());
    if (rep->model_written) std::printf("model written to %s\n", run.save_model.c_str());
    if (rep->predictions_written)
      std::printf("predictions for %llu nodes written to %s\n", static_cast<unsigned long long>(rep->num_nodes),
                  run.predict_out.c_str());
  }
  int exit_code = 0;
  for (const Status& e : rep->errors) {
    const int code = cli::PrintError(kTool, e);
    if (exit_code == 0) exit_code = code;
  }
  if (leader) std::printf("%s\n", rep->summary_json.c_str());
  return exit_code;
}
