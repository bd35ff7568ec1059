// cgcn-csr-bench: the CSR phase of cgcn-preprocess alone, so that its time and peak RSS can be
// measured apart from reading, METIS and writing (e.g. under /usr/bin/time -v).
//
//   build/bin/cgcn-csr-bench --raw RAW_DIR --edges-out FILE
//       reads RAW_DIR as cgcn-preprocess does and keeps its scratch edge file (u32 pairs) as FILE;
//       prints the node and edge counts
//   build/bin/cgcn-csr-bench --edges FILE --nodes N --scratch DIR [--mem-budget SIZE]
//       builds the CSR on disk from FILE into DIR (BuildExternalCsr, chunks of 2^20 edges as
//       cgcn-preprocess reads them) and prints one line of JSON: seconds, buckets, the planned peak
//       and this process's peak RSS; the CSR files are removed afterwards
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cgcn/byte_size.h"
#include "cgcn/graph.h"
#include "cgcn/raw_reader.h"
#include "util/peak_rss.h"

namespace fs = std::filesystem;
using namespace cgcn;

int main(int argc, char** argv) {
  CLI::App app{"cgcn-csr-bench: the CSR phase of cgcn-preprocess alone"};
  std::string raw_dir, edges_out, edges, scratch, budget_text;
  uint64_t nodes = 0;
  app.add_option("--raw", raw_dir, "raw directory to read (with --edges-out)");
  app.add_option("--edges-out", edges_out, "where to keep the scratch edge file");
  app.add_option("--edges", edges, "scratch edge file (u32 pairs) to build from");
  app.add_option("--nodes", nodes, "number of nodes");
  app.add_option("--scratch", scratch, "directory for the bucket and CSR files");
  app.add_option("--mem-budget", budget_text, "the CSR build's budget (default none)");
  CLI11_PARSE(app, argc, argv);
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "cgcn-csr-bench: %s\n", s.ToString().c_str());
    return 1;
  };
  if (!raw_dir.empty()) {
    const std::string tmp = edges_out + ".scratch";
    fs::create_directories(tmp);
    Result<RawInput> raw = ReadRawInput(RawReadOptions{raw_dir, ""}, tmp);
    if (!raw.ok()) return fail(raw.status());
    fs::rename(raw->edges_path, edges_out);
    fs::remove_all(tmp);
    std::printf("{\"nodes\":%u,\"edges\":%llu}\n", raw->num_nodes,
                static_cast<unsigned long long>(raw->num_edge_lines));
    return 0;
  }
  ExternalCsrOptions o;
  o.scratch_dir = scratch;
  if (!budget_text.empty()) {
    Result<uint64_t> b = ParseByteSize(budget_text);
    if (!b.ok()) return fail(b.status());
    o.mem_budget = *b;
  }
  RawInput input;
  input.edges_path = edges;
  input.num_edge_lines = fs::file_size(edges) / 8;
  input.num_nodes = static_cast<uint32_t>(nodes);
  o.num_edges_hint = input.num_edge_lines;
  const auto t = std::chrono::steady_clock::now();
  CsrBuildStats st;
  Result<MappedCsr> csr = BuildExternalCsr(
      input.num_nodes, [&](const EdgeChunkSink& sink) { return input.ForEachEdgeChunk(sink, uint64_t{1} << 20); }, o,
      &st);
  if (!csr.ok()) return fail(csr.status());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  std::printf(
      "{\"seconds\":%.3f,\"buckets\":%u,\"entries\":%llu,\"budget\":\"%s\",\"planned_peak\":\"%s\",\"peak_rss_mb\":%."
      "1f,"
      "\"bucket_file_bytes\":%llu,\"csr_file_bytes\":%llu}\n",
      s, st.buckets, static_cast<unsigned long long>(csr->view().num_entries()),
      o.mem_budget ? FormatBytes(o.mem_budget).c_str() : "none", FormatBytes(st.planned_peak_bytes).c_str(),
      PeakRssMb(), static_cast<unsigned long long>(st.bucket_file_bytes),
      static_cast<unsigned long long>(st.csr_file_bytes));
  fs::remove(scratch + "/" + kCsrOffsetsFile);
  fs::remove(scratch + "/" + kCsrNeighborsFile);
  return 0;
}
