// cgcn-preprocess: raw OGB-layout graph -> METIS partition -> shard directory.
#include <malloc.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cgcn/byte_size.h"
#include "cgcn/cli.h"
#include "cgcn/graph.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_writer.h"

namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Current resident set size in bytes (/proc/self/statm), 0 if unavailable.
uint64_t CurrentRssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &pages, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// Samples the RSS every 2 ms on a thread while alive; max() is the highest sample.
class RssSampler {
 public:
  RssSampler()
      : max_(CurrentRssBytes()), thread_([this] {
          while (!stop_.load()) {
            const uint64_t r = CurrentRssBytes();
            if (r > max_.load()) max_.store(r);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }) {}
  ~RssSampler() { Stop(); }
  uint64_t Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
      const uint64_t r = CurrentRssBytes();
      if (r > max_.load()) max_.store(r);
    }
    return max_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> max_;
  std::thread thread_;
};

double MBps(uint64_t bytes, double seconds) { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0; }
}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  CLI::App app{
      "Reads a graph in the OGB node-property-prediction raw layout (DIR/raw/*.csv[.gz], "
      "DIR/split/NAME/*.csv[.gz]), validates it, partitions it with METIS into P clusters and writes a "
      "shard directory: one zstd-compressed, checksummed file per cluster plus a MANIFEST "
      "(docs/FORMAT.md). The directory is built beside OUT and renamed into place only when complete. "
      "Edges, features and labels are streamed through scratch files inside that temporary directory: "
      "only the 32-bit CSR adjacency METIS needs and a few bytes per node stay in memory.",
      "cgcn-preprocess"};
  RawReadOptions read;
  ShardWriteOptions write;
  int32_t parts = 0;
  int64_t seed = 0;
  int threads = 0;
  bool quiet = false;
  std::string mem_budget;
  app.add_option("--input", read.dir, "raw graph directory (holds raw/ and split/)")->required();
  app.add_option("--out", write.out_dir, "shard directory to create")->required();
  app.add_option("--parts", parts, "number of METIS clusters P")->required()->check(CLI::Range(1, 1 << 24));
  app.add_option("--split", read.split_name, "split name under DIR/split (default: the only one present)");
  app.add_option("--seed", seed, "METIS seed (recorded in the manifest)")->capture_default_str();
  app.add_option("--zstd-level", write.zstd_level, "zstd compression level")
      ->check(CLI::Range(1, 19))
      ->capture_default_str();
  app.add_option("--min-compression-ratio", write.min_compression_ratio,
                 "store a section uncompressed when zstd makes it less than this many times smaller: decoding it is "
                 "then a checksum and a copy instead of a decompression every epoch (1 = compress whatever shrinks)")
      ->check(CLI::Range(1.0, 1000.0))
      ->capture_default_str();
  app.add_option("--mem-budget", mem_budget,
                 "memory for cgcn's own arrays and buffers, e.g. 512M, 2G, 1.5GiB (default: no limit). The "
                 "graph-sized arrays (METIS's CSR: 4 bytes per node + 8 per edge; partition, layout, split: 13 "
                 "bytes per node) must fit, else it stops with the numbers; the rest bounds how many clusters "
                 "are gathered and encoded at once. METIS's own workspace is measured, not bounded. Output "
                 "bytes do not depend on it.");
  app.add_flag("--overwrite", write.overwrite, "replace OUT if it exists (only after the new directory is complete)");
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  CGCN_PARSE_FLAGS(app, argc, argv);
  threads = common.threads;
  quiet = common.quiet;
  write.seed = seed;
  const char* kTool = "cgcn-preprocess";
  if (!mem_budget.empty()) {
    Result<uint64_t> b = ParseByteSize(mem_budget);
    if (!b.ok()) return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: " + b.status().message()));
    if (*b == 0)
      return cli::Fail(kTool, Status::InvalidArgument("--mem-budget: expected a size > 0, found '" + mem_budget + "'"));
    write.mem_budget = *b;
  }
  if (!write.overwrite && std::filesystem::exists(write.out_dir))
    return cli::Fail(
        kTool, Status::InvalidArgument(
                   write.out_dir + ": already exists (pass --overwrite to replace it once the new one is complete)"));

  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  cli::ProgressPrinter printer(quiet);
  const ProgressFn progress = printer.Fn();
  const auto t_all = Clock::now();
  // RSS outside METIS, sampled over reading + CSR and over the shard write.
  std::optional<RssSampler> outside_metis(std::in_place);

  std::printf("[1/4] reading %s\n", read.dir.c_str());
  std::fflush(stdout);
  auto t = Clock::now();
  Result<std::vector<InputFileDigest>> digests = DigestRawInput(read);
  if (!digests.ok()) return cli::Fail(kTool, digests.status());
  write.input_files = std::move(digests).value();
  // The temporary output directory exists from here on; every failure below removes it.
  Result<ShardDirectoryWriter> writer = ShardDirectoryWriter::Create(write);
  if (!writer.ok()) return cli::Fail(kTool, writer.status());
  Result<RawInput> raw = ReadRawInput(read, writer->scratch_dir(), progress);
  printer.Finish();
  if (!raw.ok()) return cli::Fail(kTool, raw.status());
  const double read_s = Since(t);
  const uint64_t N = raw->num_nodes;
  std::printf("      %u nodes, %llu edge lines, %u features, %u classes, split '%s' (%llu/%llu/%llu), %s in %.2f s\n",
              raw->num_nodes, static_cast<unsigned long long>(raw->num_edge_lines), raw->feat_dim, raw->num_classes,
              raw->split_name.c_str(), static_cast<unsigned long long>(raw->num_train),
              static_cast<unsigned long long>(raw->num_valid), static_cast<unsigned long long>(raw->num_test),
              FormatBytes(raw->input_bytes).c_str(), read_s);
  std::string parse_rates;
  for (const RawPhaseStats& ph : raw->phases) {
    std::printf("      parse %-9s %s in %.2f s, %.0f MB/s\n", ph.name.c_str(), FormatBytes(ph.text_bytes).c_str(),
                ph.seconds, MBps(ph.text_bytes, ph.seconds));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.0f", parse_rates.empty() ? "" : ", ", ph.name.c_str(),
                  MBps(ph.text_bytes, ph.seconds));
    parse_rates += buf;
  }

  std::printf("[2/4] symmetrizing edges\n");
  std::fflush(stdout);
  t = Clock::now();
  if (write.mem_budget != 0) {
    const uint64_t need = CsrBuildPeakBytes(raw->num_nodes, raw->num_edge_lines) + N;
    if (need > write.mem_budget)
      return cli::Fail(kTool, Status::InvalidArgument(
                                  "--mem-budget " + FormatBytes(write.mem_budget) + " is too small: building " +
                                  "METIS's 32-bit CSR for " + std::to_string(N) + " nodes and " +
                                  std::to_string(raw->num_edge_lines) + " edge lines needs up to " + FormatBytes(need) +
                                  " (adjacency " + FormatBytes(8 * raw->num_edge_lines) + ", offsets and counters " +
                                  FormatBytes(need - 8 * raw->num_edge_lines) + ")"));
  }
  CsrBuildStats cs;
  Result<CsrGraph> graph = BuildSymmetricCsrFromScan(
      raw->num_nodes, [&](const EdgeChunkSink& sink) { return raw->ForEachEdgeChunk(sink); }, &cs);
  if (!graph.ok()) return cli::Fail(kTool, graph.status());
  const double csr_s = Since(t);
  std::printf("      %llu undirected edges (%llu self loops, %llu duplicates removed) in %.2f s\n",
              static_cast<unsigned long long>(graph->num_undirected_edges()),
              static_cast<unsigned long long>(cs.self_loops_removed),
              static_cast<unsigned long long>(cs.duplicates_removed), csr_s);

  std::printf("[3/4] partitioning into %d clusters with METIS (seed %lld)\n", parts, static_cast<long long>(seed));
  std::fflush(stdout);
  t = Clock::now();
  uint64_t rss_outside_metis = outside_metis->Stop();
  outside_metis.reset();
  const uint64_t rss_before_metis = CurrentRssBytes();
  RssSampler sampler;
  Result<Partition> part = PartitionGraph(*graph, PartitionOptions{parts, seed});
  const uint64_t rss_during_metis = sampler.Stop();
  // Hand METIS's freed workspace back to the kernel: glibc keeps freed heap memory resident,
  // which would otherwise stay in the RSS while the shards are written.
  ::malloc_trim(0);
  if (!part.ok()) return cli::Fail(kTool, part.status());
  const double part_s = Since(t);
  // What METIS is handed (xadj, adjncy) and fills (part), and what it allocated beyond that.
  const uint64_t metis_arrays = 4 * (graph->offsets.size() + graph->neighbors.size() + N);
  const uint64_t metis_workspace = rss_during_metis > rss_before_metis ? rss_during_metis - rss_before_metis : 0;
  std::printf("      edge cut %llu (%.1f%% of edges) in %.2f s; METIS arrays %s, workspace ~%s (sampled RSS)\n",
              static_cast<unsigned long long>(part->edge_cut),
              graph->num_undirected_edges()
                  ? 100.0 * static_cast<double>(part->edge_cut) / static_cast<double>(graph->num_undirected_edges())
                  : 0.0,
              part_s, FormatBytes(metis_arrays).c_str(), FormatBytes(metis_workspace).c_str());

  std::printf("[4/4] writing shards to %s\n", write.out_dir.c_str());
  std::fflush(stdout);
  t = Clock::now();
  outside_metis.emplace();
  Result<ShardWriteReport> rep = writer->Write(*raw, *graph, *part, progress);
  rss_outside_metis = std::max(rss_outside_metis, outside_metis->Stop());
  printer.Finish();
  if (!rep.ok()) return cli::Fail(kTool, rep.status());
  const double write_s = Since(t);
  const Manifest& m = rep->manifest;
  const ShardMemoryPlan& plan = rep->memory;
  uint32_t mn = UINT32_MAX, mx = 0, empty = 0;
  for (const ShardInfo& s : m.shards) {
    mn = std::min(mn, s.num_nodes);
    mx = std::max(mx, s.num_nodes);
    empty += s.num_nodes == 0;
  }
  std::printf("      %s raw -> %s on disk (ratio %.2f) in %.2f s, %.0f MB/s raw, %u cluster%s in flight\n",
              FormatBytes(rep->raw_bytes).c_str(), FormatBytes(rep->stored_bytes).c_str(),
              static_cast<double>(rep->raw_bytes) / static_cast<double>(std::max<uint64_t>(1, rep->stored_bytes)),
              write_s, MBps(rep->raw_bytes, write_s), plan.clusters_in_flight, plan.clusters_in_flight == 1 ? "" : "s");
  const double peak = cli::PeakRssMb();
  std::printf("\nshard directory %s\n", write.out_dir.c_str());
  std::printf("  nodes            %llu\n", static_cast<unsigned long long>(m.num_nodes));
  std::printf("  edges            %llu undirected\n", static_cast<unsigned long long>(m.num_edges));
  std::printf("  edge cut         %llu (%.1f%%)\n", static_cast<unsigned long long>(m.edge_cut),
              m.num_edges ? 100.0 * static_cast<double>(m.edge_cut) / static_cast<double>(m.num_edges) : 0.0);
  std::printf("  clusters         %u, nodes per cluster min %u / mean %.1f / max %u%s\n", m.num_parts, mn,
              static_cast<double>(m.num_nodes) / m.num_parts, mx,
              empty ? (", " + std::to_string(empty) + " empty").c_str() : "");
  std::printf("  bytes            input %s, shards raw %s, compressed %s\n", FormatBytes(m.input_bytes).c_str(),
              FormatBytes(rep->raw_bytes).c_str(), FormatBytes(rep->stored_bytes).c_str());
  std::printf("  seconds          read %.2f, symmetrize %.2f, partition %.2f, write %.2f, total %.2f\n", read_s, csr_s,
              part_s, write_s, Since(t_all));
  std::printf("  MB/s             parse %s; write %.0f (raw shard bytes)\n", parse_rates.c_str(),
              MBps(rep->raw_bytes, write_s));
  std::printf("  memory budget    %s; graph-sized arrays %s, largest cluster <= %s\n",
              plan.budget ? FormatBytes(plan.budget).c_str() : "none", FormatBytes(plan.graph_bytes).c_str(),
              FormatBytes(plan.largest_cluster).c_str());
  const double metis_mb = static_cast<double>(metis_arrays + metis_workspace) / (1 << 20);
  std::printf("  peak RSS         %.0f MiB, of which METIS %.0f MiB (%.0f%%: arrays %s + workspace ~%s); features %s\n",
              peak, metis_mb, peak > 0 ? 100.0 * metis_mb / peak : 0.0, FormatBytes(metis_arrays).c_str(),
              FormatBytes(metis_workspace).c_str(),
              FormatBytes(uint64_t{m.num_nodes} * m.feat_dim * sizeof(float)).c_str());
  std::printf("  RSS outside METIS %s at most (sampled every 2 ms while reading, building the CSR and writing)\n",
              FormatBytes(rss_outside_metis).c_str());
  return 0;
}
