// cgcn-preprocess: raw OGB-layout graph -> METIS partition -> shard directory (cgcn/preprocess.h).
#include <tbb/global_control.h>

#include <algorithm>
#include <cstdio>

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
      "DIR/split/NAME/*.csv[.gz]), validates it, partitions it with METIS into P clusters and writes a "
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
  cli::AddNumber(app, "--parts", &o.parts, "number of METIS clusters P (1 to 16777216)")->required();
  app.add_option("--split", o.read.split_name, "split name under DIR/split (default: the only one present)");
  cli::AddNumber(app, "--seed", &o.write.seed, "METIS seed, 0 to 2147483647 (recorded in the manifest)");
  cli::AddNumber(app, "--zstd-level", &o.write.zstd_level, "zstd compression level (1 to 19)");
  cli::AddNumber(app, "--min-compression-ratio", &o.write.min_compression_ratio,
                 "store a section uncompressed when zstd makes it less than this many times smaller: decoding it is "
                 "then a checksum and a copy instead of a decompression every epoch (1 = compress whatever shrinks)");
  app.add_option("--mem-budget", mem_budget,
                 "memory for cgcn's own arrays and buffers, e.g. 512M, 2G, 1.5GiB (default: no limit). The "
                 "graph-sized arrays (METIS's CSR: 4 bytes per node + 8 per edge; partition, layout, split: 13 "
                 "bytes per node) must fit, else it stops with the numbers; the rest bounds how many clusters "
                 "are gathered and encoded at once. METIS's own workspace is measured, not bounded. Output "
                 "bytes do not depend on it.");
  app.add_flag("--overwrite", o.write.overwrite,
               "replace OUT if it is a shard directory (only after the new one is complete)");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  const char* kTool = "cgcn-preprocess";
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
    std::printf("  edges            %llu undirected from %llu lines (%llu self loops, %llu duplicates removed)\n",
                static_cast<unsigned long long>(m.num_edges), static_cast<unsigned long long>(r.num_edge_lines),
                static_cast<unsigned long long>(r.csr.self_loops_removed),
                static_cast<unsigned long long>(r.csr.duplicates_removed));
    std::printf("  split            '%s': %llu train, %llu valid, %llu test\n", r.split_name.c_str(),
                static_cast<unsigned long long>(r.num_train), static_cast<unsigned long long>(r.num_valid),
                static_cast<unsigned long long>(r.num_test));
    std::printf("  edge cut         %llu (%.1f%%)\n", static_cast<unsigned long long>(m.edge_cut),
                Pct(m.edge_cut, m.num_edges));
    std::printf("  clusters         %u, nodes per cluster min %u / mean %.1f / max %u%s\n", m.num_parts,
                r.min_cluster_nodes, static_cast<double>(m.num_nodes) / m.num_parts, r.max_cluster_nodes,
                r.empty_clusters ? (", " + std::to_string(r.empty_clusters) + " empty").c_str() : "");
    std::printf(
        "  bytes            input %s, shards raw %s, compressed %s (ratio %.2f)\n", FormatBytes(m.input_bytes).c_str(),
        FormatBytes(r.write.raw_bytes).c_str(), FormatBytes(r.write.stored_bytes).c_str(),
        static_cast<double>(r.write.raw_bytes) / static_cast<double>(std::max<uint64_t>(1, r.write.stored_bytes)));
    std::printf("  seconds          read %.2f, symmetrize %.2f, partition %.2f, write %.2f, total %.2f\n", r.read_s,
                r.csr_s, r.partition_s, r.write_s, r.total_s);
    std::printf("  MB/s             parse");
    for (const RawPhaseStats& ph : r.phases)
      std::printf("%s %s %.0f", &ph == &r.phases.front() ? "" : ",", ph.name.c_str(), MBps(ph.text_bytes, ph.seconds));
    std::printf("; write %.0f (raw shard bytes), %u cluster%s in flight\n", MBps(r.write.raw_bytes, r.write_s),
                r.write.memory.clusters_in_flight, r.write.memory.clusters_in_flight == 1 ? "" : "s");
    std::printf("  CSR              on disk, %u bucket%s, planned peak %s%s%s; files %s (mapped: page cache)\n",
                r.csr.buckets, r.csr.buckets == 1 ? "" : "s", FormatBytes(r.csr.planned_peak_bytes).c_str(),
                r.csr_mem_budget ? " within " : "", r.csr_mem_budget ? FormatBytes(r.csr_mem_budget).c_str() : "",
                FormatBytes(r.csr.csr_file_bytes).c_str());
    std::printf("  memory budget    %s; graph-sized arrays %s, largest cluster <= %s\n",
                r.write.memory.budget ? FormatBytes(r.write.memory.budget).c_str() : "none",
                FormatBytes(r.write.memory.graph_bytes).c_str(), FormatBytes(r.write.memory.largest_cluster).c_str());
    const double metis_mb = static_cast<double>(r.metis_array_bytes + r.metis_workspace_bytes) / (1 << 20);
    std::printf(
        "  peak RSS         %.0f MiB, of which METIS %.0f MiB (%.0f%%: arrays %s + workspace ~%s); features %s\n",
        r.peak_rss_mb, metis_mb, r.peak_rss_mb > 0 ? 100.0 * metis_mb / r.peak_rss_mb : 0.0,
        FormatBytes(r.metis_array_bytes).c_str(), FormatBytes(r.metis_workspace_bytes).c_str(),
        FormatBytes(uint64_t{m.num_nodes} * m.feat_dim * sizeof(float)).c_str());
    std::printf("  RSS outside METIS %s at most (sampled every 2 ms while reading, building the CSR and writing)\n",
                FormatBytes(r.rss_outside_metis_bytes).c_str());
  }
  std::printf("%s\n", r.SummaryJson().c_str());
  return 0;
}
