// cgcn-predict: flags and printing around RunPredict (cgcn/predict.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cgcn/byte_size.h"
#include "cgcn/cli.h"
#include "cgcn/interrupt.h"
#include "cgcn/predict.h"

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  CLI::App app{
      "Runs a model saved by cgcn-train --save-model on a shard directory made by cgcn-preprocess: the graph it "
      "was trained on or another with the same feature width (new nodes need no retraining, only preprocessing). "
      "Inference is exact (every edge, layer by layer over the shards) and out of core. Features are normalized as "
      "in training. Accuracy is reported where the shards have labels. The last line on stdout is a JSON summary.",
      "cgcn-predict"};
  PredictOptions o;
  std::string mem_budget;
  app.add_option("--model", o.model_path, "model file written by cgcn-train --save-model")->required();
  app.add_option("--shards", o.shards_dir, "shard directory written by cgcn-preprocess")->required();
  app.add_option("--out", o.out,
                 "write predictions here: 'node_id,label' per node, sorted by id (atomically; an existing file is "
                 "replaced only if it is a predictions file)");
  app.add_flag("--probabilities", o.probabilities, "also write each class's softmax probability (p0, p1, ...)");
  app.add_option("--mem-budget", mem_budget,
                 "bound memory to SIZE (512M, 2G): evaluation spills activations to --tmp-dir when they do not fit");
  app.add_option("--tmp-dir", o.tmp_dir, "directory for spilled activations (default: $TMPDIR, else /tmp)");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  cli::AddGemmFlag(app, &o.gemm);
  cli::AddComputeFlag(app, &o.compute);
  CGCN_PARSE_FLAGS(app, argc, argv);
  const char* kTool = "cgcn-predict";
  if (o.probabilities && o.out.empty())
    return cli::Fail(kTool, Status::InvalidArgument("--probabilities needs --out FILE"));
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    o.mem_budget = *b;
  }
  o.threads = static_cast<uint32_t>(cli::ThreadCount(common));
  cli::ProgressPrinter printer(common.quiet);
  Result<PredictReport> rep = RunPredict(o, printer.Fn());
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  if (!common.quiet) {
    std::printf("cgcn-predict: %llu nodes, %u classes, features normalized: %s%s\n",
                static_cast<unsigned long long>(rep->num_nodes), rep->classes,
                std::string(rep->feature_norm.Name()).c_str(), rep->eval.plan.spill ? ", activations spilled" : "");
    if (rep->acc.labeled_nodes > 0)
      std::printf("accuracy %.4f over %llu labeled nodes (train %.4f  valid %.4f  test %.4f)\n", rep->acc.labeled,
                  static_cast<unsigned long long>(rep->acc.labeled_nodes), rep->acc.train, rep->acc.valid,
                  rep->acc.test);
    else
      std::printf("no labeled nodes: predictions only\n");
    if (rep->written) std::printf("predictions written to %s\n", o.out.c_str());
  }
  std::printf("%s\n", rep->summary_json.c_str());
  return 0;
}
