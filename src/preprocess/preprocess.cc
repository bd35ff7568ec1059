#include "cgcn/preprocess.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cgcn/byte_size.h"
#include "cgcn/flag_check.h"
#include "cgcn/partition.h"
#include "util/memory_limit.h"
#include "util/peak_rss.h"

namespace cgcn {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Current resident set size in bytes (/proc/self/statm), 0 if unavailable; `anon` (if given)
// gets the part not backed by files (resident less shared): the heap, without mapped page cache.
uint64_t CurrentRssBytes(uint64_t* anon = nullptr) {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long pages = 0, resident = 0, shared = 0;
  const int n = std::fscanf(f, "%llu %llu %llu", &pages, &resident, &shared);
  std::fclose(f);
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (anon != nullptr) *anon = n == 3 && resident > shared ? (resident - shared) * page : 0;
  return n >= 2 ? resident * page : 0;
}

// Samples the RSS every 2 ms on a thread while alive; Stop() returns the highest sample, and
// peak_anon() the highest sample of its part not backed by files.
class RssSampler {
 public:
  RssSampler()
      : thread_([this] {
          while (!stop_.load()) {
            Sample();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }) {
    Sample();
  }
  ~RssSampler() { Stop(); }
  uint64_t Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
      Sample();
    }
    return max_.load();
  }
  uint64_t peak_anon() const { return max_anon_.load(); }

 private:
  void Sample() {
    uint64_t anon = 0;
    const uint64_t r = CurrentRssBytes(&anon);
    if (r > max_.load()) max_.store(r);
    if (anon > max_anon_.load()) max_anon_.store(anon);
  }
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> max_{0}, max_anon_{0};
  std::thread thread_;
};

}  // namespace

Status PreprocessOptions::Validate() const {
  if (read.dir.empty()) return Status::InvalidArgument("--input: no raw directory given");
  if (write.out_dir.empty()) return Status::InvalidArgument("--out: no output directory given");
  CGCN_RETURN_IF_ERROR(CheckRange<int32_t>("--parts", parts, 1, 1 << 24));
  CGCN_RETURN_IF_ERROR(CheckRange<int64_t>("--seed", write.seed, 0, 2147483647));
  CGCN_RETURN_IF_ERROR(CheckRange("--zstd-level", write.zstd_level, 1, 19));
  // 0 compresses every section, a huge value stores every one raw: both are valid choices.
  CGCN_RETURN_IF_ERROR(CheckAtLeast("--min-compression-ratio", write.min_compression_ratio, 0.0));
  if (features != Features::kFile) CGCN_RETURN_IF_ERROR(ValidateFastRpParams(fastrp));
  return Status::Ok();
}

Result<PreprocessReport> Preprocess(const PreprocessOptions& options, const ProgressFn& progress,
                                    const PhaseFn& on_phase) {
  CGCN_RETURN_IF_ERROR(options.Validate());
  auto phase = [&](int step, const std::string& what) {
    if (on_phase) on_phase(step, 4, what);
  };
  const auto t_all = Clock::now();
  PreprocessReport rep;
  // The output is resolved, locked and checked before any input is read; the temporary
  // directory exists from here on and every failure below removes it.
  ShardWriteOptions write = options.write;
  write.input_dirs.push_back(options.read.dir);
  CGCN_ASSIGN_OR_RETURN(ShardDirectoryWriter writer, ShardDirectoryWriter::Create(write));
  rep.out_dir = writer.out_dir();
  rep.feature_dtype = write.feature_dtype;
  std::optional<RssSampler> outside_metis(std::in_place);
  RssSampler whole_run;

  phase(1, "reading " + options.read.dir);
  auto t = Clock::now();
  CGCN_ASSIGN_OR_RETURN(std::vector<InputFileDigest> digests, DigestRawInput(options.read));
  writer.set_input_files(std::move(digests));
  CGCN_ASSIGN_OR_RETURN(RawInput raw, ReadRawInput(options.read, writer.scratch_dir(), progress));
  rep.read_s = Since(t);
  if (options.features == PreprocessOptions::Features::kFile && raw.feat_dim == 0)
    return Status::InvalidInput(options.read.dir +
                                "/raw has no node-feat file (node-feat.csv[.gz] or data.npz's node_feat) and "
                                "--features file was given; use --features auto or fastrp to compute FastRP features");
  rep.num_nodes = raw.num_nodes;
  rep.feat_dim = raw.feat_dim;
  rep.num_classes = raw.num_classes;
  rep.num_edge_lines = raw.num_edge_lines;
  rep.input_bytes = raw.input_bytes;
  rep.split_name = raw.split_name;
  rep.num_train = raw.num_train;
  rep.num_valid = raw.num_valid;
  rep.num_test = raw.num_test;
  rep.phases = raw.phases;
  const uint64_t N = raw.num_nodes;

  phase(2, "symmetrizing edges");
  t = Clock::now();
  // The CSR is built on disk in the writer's scratch directory and mapped. Its budget is what
  // --mem-budget leaves besides what is held meanwhile: the split (1 byte a node) and the edge
  // scan's buffers (RawInput::ForEachEdgeChunk: 16 bytes an edge of a chunk).
  const uint64_t budget = options.write.mem_budget;
  constexpr uint64_t kScanChunk = uint64_t{1} << 20;
  const uint64_t scan_bytes = 16 * std::max<uint64_t>(1, std::min(kScanChunk, raw.num_edge_lines));
  ExternalCsrOptions csr_options;
  csr_options.scratch_dir = writer.scratch_dir();
  csr_options.num_edges_hint = raw.num_edge_lines;
  csr_options.progress = progress;
  if (budget != 0) {
    const uint64_t held = N + scan_bytes;
    if (budget <= held)
      return Status::InvalidArgument("--mem-budget " + FormatBytes(budget) + " is too small: the split (" +
                                     FormatBytes(N) + ") and the edge scan's buffers (" + FormatBytes(scan_bytes) +
                                     ") leave nothing to build the CSR with");
    csr_options.mem_budget = budget - held;
    rep.csr_mem_budget = csr_options.mem_budget;
  }
  Result<MappedCsr> csr = BuildExternalCsr(
      raw.num_nodes, [&](const EdgeChunkSink& sink) { return raw.ForEachEdgeChunk(sink, kScanChunk); }, csr_options,
      &rep.csr);
  if (!csr.ok()) {
    if (csr.status().code() == StatusCode::kInvalidArgument && budget != 0)
      return csr.status().WithContext("--mem-budget " + FormatBytes(budget) + " leaves " +
                                      FormatBytes(csr_options.mem_budget) + " to build the CSR (less " +
                                      FormatBytes(N) + " for the split and " + FormatBytes(scan_bytes) +
                                      " for the edge scan's buffers)");
    return csr.status();
  }
  rep.csr_s = Since(t);
  // The edge list is in the CSR now: its scratch copy (8 bytes an edge) goes before the
  // partitioner and the shards need the disk.
  if (::unlink(raw.edges_path.c_str()) != 0)
    return Status::IoError("cannot remove the scratch file " + raw.edges_path + ": " + std::strerror(errno));
  csr->ReleaseResident();
  const CsrView graph = csr->view();
  rep.undirected_edges = graph.num_undirected_edges();

  // Featureless input (or --features fastrp): FastRP over the mapped CSR into features.f32, with
  // block buffers within what the budget leaves besides the split.
  if (options.features == PreprocessOptions::Features::kFastRp || raw.feat_dim == 0) {
    t = Clock::now();
    FastRpOptions fo;
    fo.params = options.fastrp;
    fo.scratch_dir = writer.scratch_dir();
    fo.out_path = raw.features_path;
    fo.progress = progress;
    if (budget != 0) {
      if (budget <= N)
        return Status::InvalidArgument("--mem-budget " + FormatBytes(budget) +
                                       " leaves nothing for FastRP after the split (" + FormatBytes(N) + ")");
      fo.mem_budget = budget - N;
    }
    CGCN_ASSIGN_OR_RETURN(rep.fastrp, ComputeFastRp(graph, fo));
    csr->ReleaseResident();
    raw.feat_dim = rep.fastrp.params.width();
    raw.feature_source.kind = FeatureSourceKind::kFastRp;
    raw.feature_source.fastrp = rep.fastrp.params;
    rep.feat_dim = raw.feat_dim;
    rep.features_s = Since(t);
  }
  rep.feature_source = raw.feature_source;

  // What is held beside the partitioner: the split, 1 byte a node.
  CGCN_ASSIGN_OR_RETURN(const PartitionerPlan plan,
                        ChoosePartitioner(options.partitioner, N, graph.num_entries(), budget, N,
                                          budget != 0 ? 0 : PhysicalMemoryBytes()));
  rep.partitioner = plan.kind;
  rep.partitioner_reason = plan.reason;
  const bool metis = plan.kind == PartitionerKind::kMetis;
  phase(3, "partitioning into " + std::to_string(options.parts) + " clusters with " +
               (metis ? std::string("METIS") : std::string("the external partitioner")) + " (seed " +
               std::to_string(options.write.seed) + "): " + plan.reason);
  t = Clock::now();
  rep.rss_outside_metis_bytes = outside_metis->Stop();
  outside_metis.reset();
  const uint64_t rss_before_metis = CurrentRssBytes();
  Result<Partition> part = Status::Internal("no partitioner ran");
  if (metis) {
    RssSampler sampler;
    part = PartitionGraph(graph, PartitionOptions{options.parts, options.write.seed});
    const uint64_t rss_during_metis = sampler.Stop();
    // Hand METIS's freed workspace back to the kernel: glibc keeps freed heap memory resident,
    // which would otherwise stay in the RSS while the shards are written.
    ::malloc_trim(0);
    rep.metis_array_bytes = MetisArrayBytes(N, graph.num_entries());
    // The growth of the RSS while METIS ran, less its arrays and the mapped CSR's pages the
    // copies touched (they count in the RSS, but are page cache).
    const uint64_t besides = rss_before_metis + rep.metis_array_bytes + csr->file_bytes();
    rep.metis_workspace_bytes = rss_during_metis > besides ? rss_during_metis - besides : 0;
  } else {
    ExternalPartitionOptions eo;
    eo.num_parts = options.parts;
    eo.seed = options.write.seed;
    eo.mem_budget = budget != 0 ? budget - N : 0;
    part = PartitionExternal(graph, eo, &rep.external, progress);
    if (!part.ok() && part.status().code() == StatusCode::kInvalidArgument && budget != 0)
      return part.status().WithContext("--mem-budget " + FormatBytes(budget) + " leaves " + FormatBytes(eo.mem_budget) +
                                       " to the external partitioner (less " + FormatBytes(N) + " for the split)");
  }
  if (!part.ok()) return part.status();
  csr->ReleaseResident();
  rep.partition_s = Since(t);
  rep.edge_cut = part->edge_cut;
  rep.part_balance = PartBalance(part->part, part->num_parts);

  phase(4, "writing shards to " + rep.out_dir);
  t = Clock::now();
  outside_metis.emplace();
  CGCN_ASSIGN_OR_RETURN(rep.write, writer.Write(raw, graph, *part, progress));
  rep.rss_outside_metis_bytes = std::max(rep.rss_outside_metis_bytes, outside_metis->Stop());
  rep.write_s = Since(t);
  rep.min_cluster_nodes = rep.write.manifest.shards.empty() ? 0 : UINT32_MAX;
  for (const ShardInfo& s : rep.write.manifest.shards) {
    rep.min_cluster_nodes = std::min(rep.min_cluster_nodes, s.num_nodes);
    rep.max_cluster_nodes = std::max(rep.max_cluster_nodes, s.num_nodes);
    rep.empty_clusters += s.num_nodes == 0;
  }
  rep.total_s = Since(t_all);
  rep.peak_rss_mb = PeakRssMb();
  whole_run.Stop();
  rep.peak_anon_mb = static_cast<double>(whole_run.peak_anon()) / 1048576.0;
  return rep;
}

std::string PreprocessReport::SummaryJson() const {
  const Manifest& m = write.manifest;
  nlohmann::json j = {{"out", out_dir},
                      {"nodes", m.num_nodes},
                      {"edges", m.num_edges},
                      {"edge_lines", num_edge_lines},
                      {"self_loops_removed", csr.self_loops_removed},
                      {"duplicates_removed", csr.duplicates_removed},
                      {"features", m.feat_dim},
                      {"feature_source", m.feature_source.Describe()},
                      {"feature_dtype", FeatureDtypeName(feature_dtype)},
                      {"features_s", features_s},
                      {"classes", m.num_classes},
                      {"labels", m.multi_label() ? "multi-label" : "multi-class"},
                      {"split", split_name},
                      {"train", num_train},
                      {"valid", num_valid},
                      {"test", num_test},
                      {"clusters", m.num_parts},
                      {"empty_clusters", empty_clusters},
                      {"partitioner", PartitionerName(partitioner)},
                      {"partitioner_reason", partitioner_reason},
                      {"edge_cut", m.edge_cut},
                      {"balance", part_balance},
                      {"largest_cluster", max_cluster_nodes},
                      {"input_bytes", input_bytes},
                      {"shard_raw_bytes", write.raw_bytes},
                      {"shard_stored_bytes", write.stored_bytes},
                      {"read_s", read_s},
                      {"symmetrize_s", csr_s},
                      {"csr_buckets", csr.buckets},
                      {"csr_scratch_bytes", csr.bucket_file_bytes + csr.csr_file_bytes},
                      {"csr_planned_peak_mb", static_cast<double>(csr.planned_peak_bytes) / 1048576.0},
                      {"partition_s", partition_s},
                      {"write_s", write_s},
                      {"total_s", total_s},
                      {"read_mb_s", PhaseMBps().read},
                      {"symmetrize_mb_s", PhaseMBps().symmetrize},
                      {"partition_mb_s", PhaseMBps().partition},
                      {"write_mb_s", PhaseMBps().write},
                      {"peak_rss_mb", peak_rss_mb},
                      {"peak_anon_mb", peak_anon_mb},
                      {"metis_mb", static_cast<double>(metis_array_bytes + metis_workspace_bytes) / 1048576.0},
                      {"mem_budget_mb", static_cast<double>(write.memory.budget) / 1048576.0},
                      {"clusters_in_flight", write.memory.clusters_in_flight}};
  if (partitioner == PartitionerKind::kExternal)
    j["external"] = {{"levels", external.levels},
                     {"coarse_nodes", external.coarse_nodes},
                     {"coarse_entries", external.coarse_entries},
                     {"cut_projected", external.cut_projected},
                     {"refine_rounds", external.refine_rounds_run},
                     {"part_limit_nodes", external.part_limit_nodes},
                     {"planned_peak_mb", static_cast<double>(external.peak_bytes_planned) / 1048576.0},
                     {"coarsen_s", external.coarsen_s},
                     {"contract_s", external.contract_s},
                     {"metis_s", external.metis_s},
                     {"refine_s", external.refine_s}};
  return j.dump();
}

PreprocessReport::Throughput PreprocessReport::PhaseMBps() const {
  const auto rate = [](uint64_t bytes, double s) { return s > 0 ? static_cast<double>(bytes) / 1e6 / s : 0.0; };
  return {rate(input_bytes, read_s), rate(8 * num_edge_lines, csr_s), rate(csr.csr_file_bytes, partition_s),
          rate(write.stored_bytes, write_s)};
}

}  // namespace cgcn
