// cgcn-partition-bench: METIS (PartitionGraph) against the external partitioner (PartitionExternal)
// on one raw graph, same parts and seed; prints one JSON object with each one's edge cut, balance
// (largest part / mean part) and seconds.
//
//   build/bin/cgcn-partition-bench --input RAW_DIR --parts P [--seed S] [--threads T]
//       [--imbalance 0.03] [--skip-metis] [--csr-cache FILE] [--mem-budget BYTES]
//
// The raw graph is read with ReadRawInput (scratch files in a temporary directory under
// --scratch, removed afterwards) and its symmetric CSR built in memory with BuildSymmetricCsr;
// --csr-cache keeps that CSR (u64 offsets, u32 neighbours) in a file (written on the first run, read on later ones) so
// that repeated measurements skip the CSV parse. Times cover the partition calls only.
//
// --metis-graph FILE writes the CSR in METIS's graph file format instead (a line "N E", then for
// each node its 1-based neighbours: what gpmetis reads; bench/preprocess_vs_gpmetis.sh) and exits;
// an existing FILE is refused, not replaced.
#include <sys/resource.h>
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "cgcn/external_partition.h"
#include "cgcn/graph.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "util/file_util.h"
#include "util/peak_rss.h"

namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// CPU seconds of the process (user + system): the figure to compare on a shared machine.
double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

int Fail(const cgcn::Status& s) {
  std::fprintf(stderr, "cgcn-partition-bench: %s\n", s.ToString().c_str());
  return 1;
}

cgcn::Result<cgcn::CsrGraph> ReadCsr(const std::string& input, const std::string& scratch_root) {
  std::string tmpl = scratch_root + "/cgcn-partition-bench.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return cgcn::Status::IoError("mkdtemp under " + scratch_root + " failed");
  cgcn::RawReadOptions ro;
  ro.dir = input;
  cgcn::Result<cgcn::CsrGraph> out = cgcn::Status::Internal("unset");
  {
    auto raw = cgcn::ReadRawInput(ro, tmpl);
    if (!raw.ok()) {
      out = raw.status();
    } else {
      const cgcn::RawInput& in = raw.value();
      std::vector<uint32_t> src, dst;
      const cgcn::Status s = in.ForEachEdgeChunk([&](std::span<const uint32_t> a, std::span<const uint32_t> b) {
        src.insert(src.end(), a.begin(), a.end());
        dst.insert(dst.end(), b.begin(), b.end());
      });
      out = s.ok() ? cgcn::BuildSymmetricCsr(in.num_nodes, src, dst) : cgcn::Result<cgcn::CsrGraph>(s);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return out;
}

// Cache layout: u32 num_nodes, u64 entries, u64 offsets[n + 1], u32 neighbors[entries].
cgcn::Status WriteCache(const std::string& path, const cgcn::CsrGraph& g) {
  std::vector<std::byte> bytes(12 + 8 * g.offsets.size() + 4 * g.neighbors.size());
  const uint32_t n = g.num_nodes;
  const uint64_t m = g.neighbors.size();
  std::memcpy(bytes.data(), &n, 4);
  std::memcpy(bytes.data() + 4, &m, 8);
  std::memcpy(bytes.data() + 12, g.offsets.data(), 8 * g.offsets.size());
  std::memcpy(bytes.data() + 12 + 8 * g.offsets.size(), g.neighbors.data(), 4 * m);
  return cgcn::WriteFileAtomic(path, bytes);
}

cgcn::Result<cgcn::CsrGraph> ReadCache(const std::string& path) {
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, cgcn::ReadWholeFile(path));
  if (bytes.size() < 12) return cgcn::Status::Corruption(path + ": shorter than the 12-byte cache header");
  uint32_t n = 0;
  uint64_t m = 0;
  std::memcpy(&n, bytes.data(), 4);
  std::memcpy(&m, bytes.data() + 4, 8);
  if (bytes.size() != 12 + 8 * (uint64_t{n} + 1) + 4 * m)
    return cgcn::Status::Corruption(path + ": size does not match its header (n " + std::to_string(n) + ", entries " +
                                    std::to_string(m) + ")");
  cgcn::CsrGraph g;
  g.num_nodes = n;
  g.offsets.resize(uint64_t{n} + 1);
  g.neighbors.resize(m);
  std::memcpy(g.offsets.data(), bytes.data() + 12, 8 * g.offsets.size());
  std::memcpy(g.neighbors.data(), bytes.data() + 12 + 8 * g.offsets.size(), 4 * m);
  return g;
}

// METIS's graph file: "N E" (undirected edges), then one line per node of 1-based neighbour ids.
cgcn::Status WriteMetisGraph(const std::string& path, const cgcn::CsrView& g) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    return cgcn::Status::InvalidArgument(path + ": exists; --metis-graph writes a new file and replaces nothing");
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return cgcn::Status::IoError(tmp + ": cannot create: " + std::strerror(errno));
  std::string buf = std::to_string(g.num_nodes) + " " + std::to_string(g.offsets[g.num_nodes] / 2) + "\n";
  char num[24];
  bool ok = true;
  for (uint32_t v = 0; v < g.num_nodes && ok; ++v) {
    for (uint64_t k = g.offsets[v]; k < g.offsets[v + 1]; ++k) {
      if (k != g.offsets[v]) buf += ' ';
      const auto r = std::to_chars(num, num + sizeof num, uint64_t{g.neighbors[k]} + 1);
      buf.append(num, r.ptr);
    }
    buf += '\n';
    if (buf.size() >= (1u << 20)) {
      ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
      buf.clear();
    }
  }
  ok = ok && std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return cgcn::Status::IoError(path + ": write failed");
  }
  return cgcn::Status::Ok();
}

nlohmann::json Quality(const cgcn::Partition& p, double seconds, double cpu_seconds) {
  std::vector<uint64_t> sizes(static_cast<size_t>(p.num_parts), 0);
  for (int32_t c : p.part) ++sizes[static_cast<size_t>(c)];
  uint64_t largest = 0;
  for (uint64_t s : sizes) largest = std::max(largest, s);
  const double mean = static_cast<double>(p.part.size()) / p.num_parts;
  return {{"seconds", seconds},
          {"cpu_seconds", cpu_seconds},
          {"edge_cut", p.edge_cut},
          {"largest_part", largest},
          {"balance", static_cast<double>(largest) / mean}};
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"METIS against the external partitioner on one raw graph"};
  std::string input, cache, scratch = "/tmp", metis_graph;
  int32_t parts = 0;
  int64_t seed = 0;
  int threads = 0;
  double imbalance = 0.03;
  uint64_t budget = 0;
  int coarsen_rounds = 0, refine_rounds = 0;
  bool skip_metis = false, verbose = false;
  app.add_option("--input", input, "raw graph directory")->required();
  app.add_option("--parts", parts, "parts")->required();
  app.add_option("--seed", seed, "seed");
  app.add_option("--threads", threads, "TBB threads (0 = all)");
  app.add_option("--imbalance", imbalance, "external: largest part <= ceil((1 + x) N / P)");
  app.add_option("--mem-budget", budget, "external: bytes (0 = none)");
  app.add_option("--coarsen-rounds", coarsen_rounds, "external: label-propagation passes per level (0 = default)");
  app.add_option("--refine-rounds", refine_rounds, "external: refinement passes at most (0 = default)");
  app.add_flag("--skip-metis", skip_metis, "run only the external partitioner");
  app.add_flag("--verbose", verbose, "print the external partitioner's progress at the end of each pass (stderr)");
  app.add_option("--csr-cache", cache, "file keeping the CSR between runs");
  app.add_option("--scratch", scratch, "where ReadRawInput's temporary directory goes");
  app.add_option("--metis-graph", metis_graph, "write the graph in METIS's file format (for gpmetis) and exit");
  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<tbb::global_control> limit;
  if (threads > 0)
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<size_t>(threads));

  auto t0 = Clock::now();
  cgcn::Result<cgcn::CsrGraph> graph = cgcn::Status::Internal("unset");
  if (!cache.empty() && std::filesystem::exists(cache)) {
    graph = ReadCache(cache);
  } else {
    graph = ReadCsr(input, scratch);
    if (graph.ok() && !cache.empty()) {
      if (cgcn::Status s = WriteCache(cache, graph.value()); !s.ok()) return Fail(s);
    }
  }
  if (!graph.ok()) return Fail(graph.status());
  const cgcn::CsrGraph& g = graph.value();
  const double read_s = Since(t0);
  const cgcn::CsrView view = g.view();
  if (!metis_graph.empty()) {
    if (cgcn::Status s = WriteMetisGraph(metis_graph, view); !s.ok()) return Fail(s);
    std::printf("{\"metis_graph\": \"%s\", \"nodes\": %u, \"undirected_edges\": %llu}\n", metis_graph.c_str(),
                g.num_nodes, static_cast<unsigned long long>(g.num_undirected_edges()));
    return 0;
  }

  nlohmann::json out = {{"input", input},  {"nodes", g.num_nodes}, {"undirected_edges", g.num_undirected_edges()},
                        {"parts", parts},  {"seed", seed},         {"threads", threads},
                        {"read_s", read_s}};
  if (!skip_metis) {
    t0 = Clock::now();
    const double cpu0 = CpuSeconds();
    auto p = cgcn::PartitionGraph(view, cgcn::PartitionOptions{parts, seed});
    if (!p.ok()) return Fail(p.status());
    out["metis"] = Quality(p.value(), Since(t0), CpuSeconds() - cpu0);
  }
  cgcn::ExternalPartitionOptions eo;
  eo.num_parts = parts;
  eo.seed = seed;
  eo.imbalance = imbalance;
  eo.mem_budget = budget;
  eo.coarsen_rounds = coarsen_rounds;
  eo.refine_rounds = refine_rounds;
  cgcn::ExternalPartitionReport rep;
  t0 = Clock::now();
  const double cpu0 = CpuSeconds();
  const auto start = Clock::now();
  cgcn::ProgressFn progress;
  if (verbose)
    progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
      if (done == total)
        std::fprintf(stderr, "%8.3f s %8.3f cpu-s  %.*s %llu\n", Since(start), CpuSeconds() - cpu0,
                     static_cast<int>(phase.size()), phase.data(), static_cast<unsigned long long>(total));
    };
  auto p = cgcn::PartitionExternal(view, eo, &rep, progress);
  if (!p.ok()) return Fail(p.status());
  nlohmann::json ext = Quality(p.value(), Since(t0), CpuSeconds() - cpu0);
  ext["levels"] = rep.levels;
  ext["coarse_nodes"] = rep.coarse_nodes;
  ext["coarse_entries"] = rep.coarse_entries;
  ext["metis_entries"] = rep.metis_entries;
  ext["cut_projected"] = rep.cut_projected;
  ext["refine_rounds_run"] = rep.refine_rounds_run;
  ext["contract_scans"] = rep.contract_scans;
  ext["rebalance_passes"] = rep.rebalance_passes;
  ext["part_limit_nodes"] = rep.part_limit_nodes;
  ext["peak_bytes_planned"] = rep.peak_bytes_planned;
  ext["coarsen_s"] = rep.coarsen_s;
  ext["contract_s"] = rep.contract_s;
  ext["metis_s"] = rep.metis_s;
  ext["refine_s"] = rep.refine_s;
  out["external"] = ext;
  if (out.contains("metis"))
    out["cut_ratio"] = static_cast<double>(p.value().edge_cut) / static_cast<double>(out["metis"]["edge_cut"]);
  out["peak_rss_mb"] = cgcn::PeakRssMb();
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
