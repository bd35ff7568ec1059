// cgcn-synth: writes a synthetic graph with community structure in the OGB raw layout.
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cgcn/byte_size.h"
#include "cgcn/cli.h"
#include "cgcn/interrupt.h"
#include "cgcn/synth.h"

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  CLI::App app{
      "Writes a synthetic graph in the OGB node-property-prediction raw layout (RAW_DIR/raw/*.csv[.gz], "
      "RAW_DIR/split/NAME/*.csv[.gz]), for tests and benchmarks: many small communities (a degree-corrected "
      "block model with Chung-Lu sampling and Pareto-tailed degrees), labels that follow the communities, "
      "features = class mean + Gaussian noise, and a random split. The same options and seed give the same "
      "bytes whatever the thread count. The directory is built beside RAW_DIR and renamed into place when "
      "complete.",
      "cgcn-synth"};
  SynthOptions o;
  int threads = 0;
  bool plain = false, gzip = false, quiet = false;
  cli::AddNumber(app, "--nodes", &o.num_nodes, "number of nodes N")->required();
  cli::AddNumber(app, "--avg-degree", &o.avg_degree, "average degree D: about N * D / 2 undirected edges")->required();
  cli::AddNumber(app, "--features", &o.feat_dim, "feature dimension F")->required();
  cli::AddNumber(app, "--classes", &o.num_classes, "number of classes C")->required();
  app.add_option("--out", o.out_dir, "raw directory to create (RAW_DIR)")->required();
  cli::AddNumber(app, "--seed", &o.seed, "random seed");
  cli::AddNumber(app, "--communities", &o.num_communities,
                 "number of communities K (default: max(1, round(N / 1000)))");
  cli::AddNumber(app, "--intra-fraction", &o.intra_fraction, "share of edge samples that stay inside the community");
  cli::AddNumber(app, "--degree-exponent", &o.degree_exponent, "power-law exponent of the degree tail (> 2)");
  cli::AddNumber(app, "--label-purity", &o.label_purity, "chance that a node has its community's dominant class");
  cli::AddNumber(app, "--noise", &o.noise, "standard deviation of the feature noise (class means are N(0, 1))");
  cli::AddNumber(app, "--decimals", &o.feature_decimals, "digits after the point in node-feat.csv");
  app.add_option("--split-name", o.split_name, "split directory name under RAW_DIR/split")->capture_default_str();
  cli::AddNumber(app, "--train-frac", &o.train_frac, "share of nodes in train");
  cli::AddNumber(app, "--valid-frac", &o.valid_frac, "share of nodes in valid (test gets the rest)");
  auto* gz = app.add_flag("--gzip", gzip, "write *.csv.gz, one gzip member per block (the default)");
  app.add_flag("--plain", plain, "write plain *.csv")->excludes(gz);
  cli::AddNumber(app, "--gzip-level", &o.gzip_level, "gzip compression level");
  app.add_flag("--overwrite", o.overwrite, "replace RAW_DIR if it exists (only once the new one is complete)");
  std::string mem_budget;
  app.add_option("--mem-budget", mem_budget,
                 "memory for the generator, e.g. 512M, 2G, 1.5GiB (default: the per-node arrays + 1 GiB). The "
                 "per-node arrays (40 bytes per node, plus 8 * classes * features for the class means) must fit, "
                 "with at least 4 MiB to spare, else it stops with the numbers; the edge keys go to scratch files "
                 "in the directory being built, in as many passes as the rest needs. Output bytes do not depend "
                 "on it.");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  threads = common.threads;
  quiet = common.quiet;
  o.gzip = !plain;
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail("cgcn-synth", Status::InvalidArgument("--mem-budget: " + b.status().message()));
    o.mem_budget = *b;
  }

  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  cli::ProgressPrinter printer(quiet);
  Result<SynthReport> rep = GenerateSynthGraph(o, printer.Fn());
  printer.Finish();
  if (!rep.ok()) return cli::Fail("cgcn-synth", rep.status());

  const SynthReport& r = *rep;
  const auto pct = [](uint64_t a, uint64_t b) {
    return b ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0;
  };
  if (!quiet) {
    std::printf("synthetic graph %s\n", o.out_dir.c_str());
    std::printf("  nodes            %u in %u communities (seed %llu)\n", r.num_nodes, r.num_communities,
                static_cast<unsigned long long>(o.seed));
    std::printf("  edges            %llu undirected (target %llu), %.1f%% inside a community\n",
                static_cast<unsigned long long>(r.num_edges), static_cast<unsigned long long>(r.target_edges),
                pct(r.intra_edges, r.num_edges));
    std::printf("  degrees          mean %.2f, max %u, %llu isolated nodes\n",
                2.0 * static_cast<double>(r.num_edges) / r.num_nodes, r.max_degree,
                static_cast<unsigned long long>(r.isolated_nodes));
    std::printf("  sampling         %llu samples in %u rounds: %llu self loops, %llu repeats dropped\n",
                static_cast<unsigned long long>(r.samples), r.rounds,
                static_cast<unsigned long long>(r.self_loops_dropped),
                static_cast<unsigned long long>(r.duplicates_dropped));
    std::printf("  features         %u, %u classes\n", o.feat_dim, o.num_classes);
    std::printf("  split            '%s': %llu train, %llu valid, %llu test\n", o.split_name.c_str(),
                static_cast<unsigned long long>(r.num_train), static_cast<unsigned long long>(r.num_valid),
                static_cast<unsigned long long>(r.num_test));
    std::printf("  bytes            %s of text, %s on disk (%s)\n", FormatBytes(r.text_bytes).c_str(),
                FormatBytes(r.stored_bytes).c_str(), o.gzip ? "gzip" : "plain");
    std::printf("  seconds          setup %.2f, edges %.2f, write %.2f, total %.2f (%d threads)\n", r.seconds_setup,
                r.seconds_edges, r.seconds_write, r.seconds_setup + r.seconds_edges + r.seconds_write, nthreads);
    std::printf("  memory           peak RSS %.0f MiB, budget %s; %s of edge keys through scratch files in %u waves\n",
                r.peak_rss_mb, FormatBytes(r.mem_budget).c_str(), FormatBytes(r.scratch_bytes).c_str(), r.sample_waves);
  }
  std::printf("%s\n", r.SummaryJson(o).c_str());
  return 0;
}
