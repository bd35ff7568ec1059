// cgcn-preprocess: raw OGB-layout graph -> METIS partition -> shard directory.
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>

#include "cgcn/graph.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_writer.h"
#include "tool_util.h"

namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  CLI::App app{
      "Reads a graph in the OGB node-property-prediction raw layout (DIR/raw/*.csv[.gz], "
      "DIR/split/NAME/*.csv[.gz]), validates it, partitions it with METIS into P clusters and writes a "
      "shard directory: one zstd-compressed, checksummed file per cluster plus a MANIFEST "
      "(docs/FORMAT.md). The directory is built beside OUT and renamed into place only when complete.",
      "cgcn-preprocess"};
  RawReadOptions read;
  ShardWriteOptions write;
  int32_t parts = 0;
  int64_t seed = 0;
  int threads = 0;
  bool quiet = false;
  app.add_option("--input", read.dir, "raw graph directory (holds raw/ and split/)")->required();
  app.add_option("--out", write.out_dir, "shard directory to create")->required();
  app.add_option("--parts", parts, "number of METIS clusters P")->required()->check(CLI::Range(1, 1 << 24));
  app.add_option("--split", read.split_name, "split name under DIR/split (default: the only one present)");
  app.add_option("--seed", seed, "METIS seed (recorded in the manifest)")->capture_default_str();
  app.add_option("--threads", threads, "worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--zstd-level", write.zstd_level, "zstd compression level")->check(CLI::Range(1, 19))->capture_default_str();
  app.add_flag("--overwrite", write.overwrite, "replace OUT if it exists (only after the new directory is complete)");
  app.add_flag("--quiet", quiet, "no progress lines");
  CGCN_PARSE_FLAGS(app, argc, argv);
  write.seed = seed;
  if (!write.overwrite && std::filesystem::exists(write.out_dir))
    return tools::Fail("cgcn-preprocess", Status::InvalidArgument(write.out_dir + ": already exists (pass --overwrite to replace it once the new one is complete)"));

  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  tools::ProgressPrinter printer(quiet);
  const ProgressFn progress = printer.Fn();
  const char* kTool = "cgcn-preprocess";
  const auto t_all = Clock::now();

  std::printf("[1/4] reading %s\n", read.dir.c_str());
  std::fflush(stdout);
  auto t = Clock::now();
  Result<std::vector<InputFileDigest>> digests = DigestRawInput(read);
  if (!digests.ok()) return tools::Fail(kTool, digests.status());
  write.input_files = std::move(digests).value();
  Result<RawGraph> raw = ReadRawGraph(read, progress);
  printer.Finish();
  if (!raw.ok()) return tools::Fail(kTool, raw.status());
  const double read_s = Since(t);
  std::printf("      %u nodes, %zu edge lines, %u features, %u classes, split '%s' (%llu/%llu/%llu), %s in %.2f s\n",
              raw->num_nodes, raw->edge_src.size(), raw->feat_dim, raw->num_classes, raw->split_name.c_str(),
              static_cast<unsigned long long>(raw->num_train), static_cast<unsigned long long>(raw->num_valid),
              static_cast<unsigned long long>(raw->num_test), tools::HumanBytes(raw->input_bytes).c_str(), read_s);

  std::printf("[2/4] symmetrizing edges\n");
  std::fflush(stdout);
  t = Clock::now();
  CsrBuildStats cs;
  Result<CsrGraph> graph = BuildSymmetricCsr(raw->num_nodes, raw->edge_src, raw->edge_dst, &cs);
  if (!graph.ok()) return tools::Fail(kTool, graph.status());
  std::vector<uint32_t>().swap(raw->edge_src);
  std::vector<uint32_t>().swap(raw->edge_dst);
  const double csr_s = Since(t);
  std::printf("      %llu undirected edges (%llu self loops, %llu duplicates removed) in %.2f s\n",
              static_cast<unsigned long long>(graph->num_undirected_edges()),
              static_cast<unsigned long long>(cs.self_loops_removed),
              static_cast<unsigned long long>(cs.duplicates_removed), csr_s);

  std::printf("[3/4] partitioning into %d clusters with METIS (seed %lld)\n", parts, static_cast<long long>(seed));
  std::fflush(stdout);
  t = Clock::now();
  Result<Partition> part = PartitionGraph(*graph, PartitionOptions{parts, seed});
  if (!part.ok()) return tools::Fail(kTool, part.status());
  const double part_s = Since(t);
  std::printf("      edge cut %llu (%.1f%% of edges) in %.2f s\n", static_cast<unsigned long long>(part->edge_cut),
              graph->num_undirected_edges() ? 100.0 * static_cast<double>(part->edge_cut) /
                                                  static_cast<double>(graph->num_undirected_edges())
                                            : 0.0,
              part_s);

  std::printf("[4/4] writing shards to %s\n", write.out_dir.c_str());
  std::fflush(stdout);
  t = Clock::now();
  Result<ShardWriteReport> rep = WriteShardDirectory(*raw, *graph, *part, write, progress);
  printer.Finish();
  if (!rep.ok()) return tools::Fail(kTool, rep.status());
  const double write_s = Since(t);
  const Manifest& m = rep->manifest;
  uint32_t mn = UINT32_MAX, mx = 0, empty = 0;
  for (const ShardInfo& s : m.shards) {
    mn = std::min(mn, s.num_nodes);
    mx = std::max(mx, s.num_nodes);
    empty += s.num_nodes == 0;
  }
  std::printf("      %s raw -> %s on disk (ratio %.2f) in %.2f s\n", tools::HumanBytes(rep->raw_bytes).c_str(),
              tools::HumanBytes(rep->stored_bytes).c_str(),
              static_cast<double>(rep->raw_bytes) / static_cast<double>(std::max<uint64_t>(1, rep->stored_bytes)),
              write_s);
  std::printf("\nshard directory %s\n", write.out_dir.c_str());
  std::printf("  nodes            %llu\n", static_cast<unsigned long long>(m.num_nodes));
  std::printf("  edges            %llu undirected\n", static_cast<unsigned long long>(m.num_edges));
  std::printf("  edge cut         %llu (%.1f%%)\n", static_cast<unsigned long long>(m.edge_cut),
              m.num_edges ? 100.0 * static_cast<double>(m.edge_cut) / static_cast<double>(m.num_edges) : 0.0);
  std::printf("  clusters         %u, nodes per cluster min %u / mean %.1f / max %u%s\n", m.num_parts, mn,
              static_cast<double>(m.num_nodes) / m.num_parts, mx,
              empty ? (", " + std::to_string(empty) + " empty").c_str() : "");
  std::printf("  bytes            input %s, shards raw %s, compressed %s\n", tools::HumanBytes(m.input_bytes).c_str(),
              tools::HumanBytes(rep->raw_bytes).c_str(), tools::HumanBytes(rep->stored_bytes).c_str());
  std::printf("  seconds          read %.2f, symmetrize %.2f, partition %.2f, write %.2f, total %.2f\n", read_s, csr_s,
              part_s, write_s, Since(t_all));
  std::printf("  peak RSS         %.0f MiB\n", tools::PeakRssMb());
  return 0;
}
