// cgcn-preprocess: raw OGB-layout graph -> METIS partition -> shard directory (cgcn/preprocess.h).
#include <tbb/global_control.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cgcn/byte_size.h"
#include "cgcn/cli.h"
#include "cgcn/interrupt.h"
#include "cgcn/preprocess.h"

namespace {
double MBps(uint64_t bytes, double seconds) { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0; }
double Pct(uint64_t a, uint64_t b) { return b ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0; }
}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  InstallInterruptCleanup();
  CLI::App app{
      "Reads a graph in the OGB node-property-prediction raw layout (DIR/raw/*.csv[.gz], "
      "DIR/split/NAME/*.csv[.gz], or raw/data.npz and raw/node-label.npz as ogbn-papers100M ships them), validates "
      "it, builds the symmetric CSR on disk, partitions it into P clusters (METIS in memory, or an out-of-core "
      "multilevel partitioner for graphs METIS cannot hold) and writes a "
      "shard directory: one zstd-compressed, checksummed file per cluster plus a MANIFEST (docs/FORMAT.md).\n\n"
      "OUT is checked and locked (OUT.cgcn-lock) before any input is read; the directory is built in a marked "
      "temporary sibling (OUT.cgcn-tmp.*) and swapped into place only when complete. --overwrite replaces only "
      "a shard directory (nothing but MANIFEST and shard files); OUT may not be, contain or lie inside the "
      "input; a symbolic link at OUT is followed and kept. Ctrl-C removes the temporary and exits with 130. "
      "Progress goes to stderr; the last line on stdout is a JSON summary.",
      "cgcn-preprocess"};
  PreprocessOptions o;
  std::string mem_budget;
  app.add_option("--input", o.read.dir, "raw graph directory (holds raw/ and split/)")->required();
  app.add_option("--out", o.write.out_dir, "shard directory to create")->required();
  cli::AddNumber(app, "--parts", &o.parts, "number of clusters P (1 to 16777216)")->required();
  std::string partitioner = "auto";
  app.add_option("--partitioner", partitioner,
                 "metis: METIS_PartGraphKway in memory (its arrays, 4 bytes per node and per adjacency entry, plus "
                 "a workspace measured at about 10 times them; at most 2^31-1 adjacency entries). external: "
                 "size-constrained label propagation over the on-disk CSR, METIS on the coarse graph, refinement "
                 "on the fine graph; 4 bytes per node plus a coarse graph within --mem-budget. auto: metis when it "
                 "fits --mem-budget (or, without one, this machine's RAM) and the 32-bit limit, external otherwise. "
                 "The report says which ran and why.")
      ->check(CLI::IsMember({"auto", "metis", "external"}))
      ->capture_default_str();
  app.add_option("--split", o.read.split_name, "split name under DIR/split (default: the only one present)");
  cli::AddNumber(app, "--seed", &o.write.seed,
                 "partitioning seed (METIS's, and the label propagation's order), 0 to 2147483647; recorded in the "
                 "manifest");
  cli::AddNumber(app, "--zstd-level", &o.write.zstd_level, "zstd compression level (1 to 19)");
  cli::AddNumber(app, "--min-compression-ratio", &o.write.min_compression_ratio,
                 "store a section uncompressed when zstd makes it less than this many times smaller: decoding it is "
                 "then a checksum and a copy instead of a decompression every epoch (1 = compress whatever shrinks)");
  std::string feature_dtype = "f32";
  app.add_option("--feature-dtype", feature_dtype,
                 "element type the features are stored in: f32 (exact), bf16 or f16 (half the bytes, rounded to "
                 "nearest; bf16 keeps f32's range with 8 significant bits, f16 keeps 11 bits but only magnitudes "
                 "up to 65504, and a larger value stops preprocessing with its node and column). Training and "
                 "evaluation widen the values back to f32 as they decode them")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}))
      ->capture_default_str();
  app.add_option("--mem-budget", mem_budget,
                 "memory for cgcn's own arrays and buffers, e.g. 512M, 2G, 1.5GiB (default: no limit). The CSR is "
                 "built on disk in buckets that fit; the partitioner must fit (see --partitioner); the "
                 "graph-sized arrays of the writer (partition, layout, split: 13 bytes per node) must fit, and the "
                 "rest bounds how many clusters are gathered and encoded at once. Too small: it stops with the "
                 "numbers before the long work. The page cache of the mapped CSR is not counted (the kernel "
                 "reclaims it). With the external partitioner the shards do not depend on it.");
  std::string features = "auto", fastrp_weights = "0,0,1,1";
  int64_t fastrp_seed = -1;
  bool no_standardize = false;
  app.add_option("--features", features,
                 "node features: file (DIR/raw/node-feat, required), fastrp (computed from the graph, ignoring any "
                 "file), or auto: the file when there is one, else fastrp. FastRP (Chen et al., CIKM 2019): a very "
                 "sparse random N x dim projection R (entries +-sqrt(s) with probability 1/(2s) each, s = sqrt(N) "
                 "by default), N_1 = P diag(deg^beta) R and N_i = P N_(i-1) with P = D^-1 A, features = sum_i "
                 "weight_i * (N_i with L2-normalized rows), then each column standardized (mean 0, variance 1). "
                 "Computed out of core over the on-disk CSR (2 x N x dim x 4 bytes of scratch disk, block buffers "
                 "within --mem-budget); the same for any thread count. The manifest records the source and "
                 "parameters.")
      ->check(CLI::IsMember({"auto", "file", "fastrp"}))
      ->capture_default_str();
  cli::AddNumber(app, "--fastrp-dim", &o.fastrp.dim, "FastRP dimension (1 to 1048576)");
  app.add_option("--fastrp-weights", fastrp_weights,
                 "FastRP iteration weights, comma-separated, one per power of P (their count is the number of "
                 "iterations)")
      ->capture_default_str();
  cli::AddNumber(app, "--fastrp-beta", &o.fastrp.beta,
                 "FastRP degree exponent beta of the normalization diag(deg^beta)");
  cli::AddNumber(app, "--fastrp-sparsity", &o.fastrp.sparsity,
                 "FastRP projection sparsity s (>= 1; 0 = sqrt(N), Li et al.'s very sparse projection)");
  app.add_option("--fastrp-seed", fastrp_seed, "FastRP projection seed (default: --seed)");
  app.add_flag("--fastrp-no-standardize", no_standardize, "do not standardize the FastRP columns");
  app.add_flag("--fastrp-log-degree", o.fastrp.log_degree, "add log(1 + degree) as one more FastRP column");
  app.add_flag("--overwrite", o.write.overwrite,
               "replace OUT if it is a shard directory (only after the new one is complete)");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  const char* kTool = "cgcn-preprocess";
  o.partitioner = *ParsePartitionerKind(partitioner);         // CLI::IsMember checked the name
  o.write.feature_dtype = *ParseFeatureDtype(feature_dtype);  // likewise
  o.features = features == "file"     ? PreprocessOptions::Features::kFile
               : features == "fastrp" ? PreprocessOptions::Features::kFastRp
                                      : PreprocessOptions::Features::kAuto;
  o.fastrp.standardize = !no_standardize;
  o.fastrp.seed = static_cast<uint64_t>(fastrp_seed >= 0 ? fastrp_seed : o.write.seed);
  o.fastrp.weights.clear();
  for (size_t start = 0; start <= fastrp_weights.size();) {
    size_t comma = fastrp_weights.find(',', start);
    if (comma == std::string::npos) comma = fastrp_weights.size();
    const std::string field = fastrp_weights.substr(start, comma - start);
    char* end = nullptr;
    const float w = std::strtof(field.c_str(), &end);
    if (field.empty() || end != field.c_str() + field.size())
      return cli::Fail(kTool, Status::InvalidArgument("--fastrp-weights: expected comma-separated numbers, found '" +
                                                      field + "' in '" + fastrp_weights + "'"));
    o.fastrp.weights.push_back(w);
    start = comma + 1;
  }
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    o.write.mem_budget = *b;
  }
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(cli::ThreadCount(common)));
  cli::ProgressPrinter printer(common.quiet);
  Result<PreprocessReport> rep = Preprocess(o, printer.Fn(), [&](int step, int steps, std::string_view what) {
    printer.Line("[" + std::to_string(step) + "/" + std::to_string(steps) + "] " + std::string(what));
  });
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  const PreprocessReport& r = *rep;
  const Manifest& m = r.write.manifest;
  if (!common.quiet) {
    std::printf("shard directory %s\n", r.out_dir.c_str());
    std::printf("  nodes            %llu, %u features, %u classes\n", static_cast<unsigned long long>(m.num_nodes),
                m.feat_dim, m.num_classes);
    std::printf("  features         %s%s\n", m.feature_source.Describe().c_str(),
                r.features_s > 0 ? (" (" + std::to_string(r.features_s) + " s)").c_str() : "");
    if (m.multi_label()) std::printf("  labels           multi-label, %u tasks\n", m.label_tasks);
    std::printf("  edges            %llu undirected from %llu lines (%llu self loops, %llu duplicates removed)\n",
                static_cast<unsigned long long>(m.num_edges), static_cast<unsigned long long>(r.num_edge_lines),
                static_cast<unsigned long long>(r.csr.self_loops_removed),
                static_cast<unsigned long long>(r.csr.duplicates_removed));
    std::printf("  split            '%s': %llu train, %llu valid, %llu test\n", r.split_name.c_str(),
                static_cast<unsigned long long>(r.num_train), static_cast<unsigned long long>(r.num_valid),
                static_cast<unsigned long long>(r.num_test));
    std::printf("  partitioner      %s: %s\n", PartitionerName(r.partitioner), r.partitioner_reason.c_str());
    if (r.partitioner == PartitionerKind::kExternal)
      std::printf(
          "                   %d level%s to %llu coarse nodes (%llu entries); cut %llu after METIS, %llu after "
          "%d refinement round%s; coarsen %.2f s, contract %.2f s, METIS %.2f s, refine %.2f s\n",
          r.external.levels, r.external.levels == 1 ? "" : "s",
          static_cast<unsigned long long>(r.external.coarse_nodes),
          static_cast<unsigned long long>(r.external.coarse_entries),
          static_cast<unsigned long long>(r.external.cut_projected),
          static_cast<unsigned long long>(r.external.edge_cut), r.external.refine_rounds_run,
          r.external.refine_rounds_run == 1 ? "" : "s", r.external.coarsen_s, r.external.contract_s, r.external.metis_s,
          r.external.refine_s);
    std::printf("  edge cut         %llu (%.1f%%); largest cluster %u nodes, %.3f x the mean\n",
                static_cast<unsigned long long>(m.edge_cut), Pct(m.edge_cut, m.num_edges), r.max_cluster_nodes,
                r.part_balance);
    std::printf("  clusters         %u, nodes per cluster min %u / mean %.1f / max %u%s\n", m.num_parts,
                r.min_cluster_nodes, static_cast<double>(m.num_nodes) / m.num_parts, r.max_cluster_nodes,
                r.empty_clusters ? (", " + std::to_string(r.empty_clusters) + " empty").c_str() : "");
    std::printf(
        "  bytes            input %s, shards raw %s, compressed %s (ratio %.2f)\n", FormatBytes(m.input_bytes).c_str(),
        FormatBytes(r.write.raw_bytes).c_str(), FormatBytes(r.write.stored_bytes).c_str(),
        static_cast<double>(r.write.raw_bytes) / static_cast<double>(std::max<uint64_t>(1, r.write.stored_bytes)));
    std::printf("  seconds          read %.2f, symmetrize %.2f, partition %.2f, write %.2f, total %.2f\n", r.read_s,
                r.csr_s, r.partition_s, r.write_s, r.total_s);
    const PreprocessReport::Throughput mbps = r.PhaseMBps();
    std::printf(
        "  MB/s             read %.0f (input as stored), symmetrize %.0f (edge list), partition %.0f (CSR "
        "files), write %.0f (shards as stored); parse",
        mbps.read, mbps.symmetrize, mbps.partition, mbps.write);
    for (const RawPhaseStats& ph : r.phases)
      std::printf("%s %s %.0f", &ph == &r.phases.front() ? "" : ",", ph.name.c_str(), MBps(ph.text_bytes, ph.seconds));
    std::printf("; %u cluster%s written at once\n", r.write.memory.clusters_in_flight,
                r.write.memory.clusters_in_flight == 1 ? "" : "s");
    std::printf("  CSR              on disk, %u bucket%s, planned peak %s%s%s; files %s (mapped: page cache)\n",
                r.csr.buckets, r.csr.buckets == 1 ? "" : "s", FormatBytes(r.csr.planned_peak_bytes).c_str(),
                r.csr_mem_budget ? " within " : "", r.csr_mem_budget ? FormatBytes(r.csr_mem_budget).c_str() : "",
                FormatBytes(r.csr.csr_file_bytes).c_str());
    std::printf("  memory budget    %s; graph-sized arrays %s, largest cluster <= %s\n",
                r.write.memory.budget ? FormatBytes(r.write.memory.budget).c_str() : "none",
                FormatBytes(r.write.memory.graph_bytes).c_str(), FormatBytes(r.write.memory.largest_cluster).c_str());
    std::printf("  peak RSS         %.0f MiB (heap %.0f MiB, the rest mapped page cache); features %s\n", r.peak_rss_mb,
                r.peak_anon_mb, FormatBytes(uint64_t{m.num_nodes} * m.feat_dim * sizeof(float)).c_str());
    if (r.partitioner == PartitionerKind::kMetis)
      std::printf("  METIS            %s (arrays %s + workspace ~%s); RSS outside METIS %s at most\n",
                  FormatBytes(r.metis_array_bytes + r.metis_workspace_bytes).c_str(),
                  FormatBytes(r.metis_array_bytes).c_str(), FormatBytes(r.metis_workspace_bytes).c_str(),
                  FormatBytes(r.rss_outside_metis_bytes).c_str());
    else
      std::printf("  external         planned peak %s\n", FormatBytes(r.external.peak_bytes_planned).c_str());
  }
  std::printf("%s\n", r.SummaryJson().c_str());
  return 0;
}
