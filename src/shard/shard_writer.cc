#include "cgcn/shard_writer.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <tuple>
#include <utility>

#include "cgcn/byte_size.h"
#include "cgcn/shard_directory.h"
#include "cgcn/shard_format.h"
#include "util/file_util.h"
#include "util/output_dir.h"
#include "util/parallel.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

struct InterEdge {
  uint32_t cluster, src, dst;
  bool operator<(const InterEdge& o) const { return std::tie(cluster, src, dst) < std::tie(o.cluster, o.src, o.dst); }
};

// Gathers cluster `c`'s contents: adjacency from the CSR, feature rows and labels from the
// scratch files. Buffers in `out`/`inter` are reused.
Status BuildCluster(const RawInput& raw, const RawNodeRows& rows, const CsrView& g, const Partition& p,
                    const ClusterLayout& layout, uint32_t c, ClusterData& out, std::vector<InterEdge>& inter) {
  const uint32_t begin = layout.offsets[c], n = layout.cluster_size(c);
  const uint32_t F = raw.feat_dim;
  out.cluster_id = c;
  out.num_clusters = static_cast<uint32_t>(p.num_parts);
  out.num_nodes = n;
  out.feat_dim = F;
  out.num_classes = raw.num_classes;
  out.label_tasks = raw.label_tasks;
  out.node_ids.assign(layout.nodes.begin() + begin, layout.nodes.begin() + begin + n);
  out.adj_offsets.assign(uint64_t{n} + 1, 0);
  out.adj_neighbors.clear();
  out.features.resize(uint64_t{n} * F);
  out.labels.resize(n);
  out.label_bits.resize(uint64_t{n} * LabelWords(raw.label_tasks));
  out.split.resize(n);
  inter.clear();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t v = out.node_ids[i];
    for (const uint32_t u : g.row(v)) {
      const auto cu = static_cast<uint32_t>(p.part[u]);
      if (cu == c) {
        out.adj_neighbors.push_back(layout.local_index[u]);  // ascending: ids ascend within a cluster
      } else {
        inter.push_back({cu, i, layout.local_index[u]});
      }
    }
    out.adj_offsets[i + 1] = static_cast<uint32_t>(out.adj_neighbors.size());
    out.split[i] = raw.split[v];
  }
  CGCN_RETURN_IF_ERROR(rows.Gather(out.node_ids, out.features.data(), out.labels.data(), out.label_bits.data()));
  std::sort(inter.begin(), inter.end());
  out.inter_groups.clear();
  out.inter_src.resize(inter.size());
  out.inter_dst.resize(inter.size());
  for (size_t k = 0; k < inter.size(); ++k) {
    if (out.inter_groups.empty() || out.inter_groups.back().cluster != inter[k].cluster)
      out.inter_groups.push_back({inter[k].cluster, 0, k});
    ++out.inter_groups.back().count;
    out.inter_src[k] = inter[k].src;
    out.inter_dst[k] = inter[k].dst;
  }
  return Status::Ok();
}

// Upper bound on the bytes one cluster needs while it is gathered and encoded: the
// ClusterData, EncodeShard's raw and compressed section copies and its output (4 x the raw
// section bytes), the inter-edge sort buffer, and zstd's context.
uint64_t ClusterWorkingBytes(uint64_t n, uint64_t degree_sum, uint64_t feat_dim, uint64_t parts) {
  constexpr uint64_t kZstdContext = uint64_t{4} << 20;
  const uint64_t raw =
      4 * n + 4 * (n + 1) + 8 * degree_sum + 8 * std::min(parts, degree_sum) + 4 * n * feat_dim + 4 * n + n;
  return 4 * raw + 12 * degree_sum + kZstdContext;
}

}  // namespace

Result<ShardDirectoryWriter> ShardDirectoryWriter::Create(const ShardWriteOptions& options) {
  OutputDirOptions od;
  od.path = options.out_dir;
  od.what = "shard directory";
  od.overwrite = options.overwrite;
  od.inputs = options.input_dirs;
  od.is_replaceable = CheckShardDirectoryIsCgcns;
  CGCN_ASSIGN_OR_RETURN(StagedDirectory staged, StagedDirectory::Create(od));
  ShardDirectoryWriter w;
  w.options_ = options;
  w.staged_ = std::make_unique<StagedDirectory>(std::move(staged));
  w.scratch_ = w.staged_->temp_dir() + "/scratch";
  std::error_code ec;
  if (!fs::create_directory(w.scratch_, ec) || ec)
    return Status::IoError(w.scratch_ + ": cannot create directory: " + (ec ? ec.message() : "exists"));
  return w;
}

ShardDirectoryWriter::ShardDirectoryWriter(ShardDirectoryWriter&& o) noexcept
    : options_(std::move(o.options_)), staged_(std::move(o.staged_)), scratch_(std::move(o.scratch_)) {}

ShardDirectoryWriter::~ShardDirectoryWriter() = default;

const std::string& ShardDirectoryWriter::temp_dir() const { return staged_->temp_dir(); }
const std::string& ShardDirectoryWriter::out_dir() const { return staged_->target(); }

Result<ShardWriteReport> ShardDirectoryWriter::Write(const RawInput& raw, const CsrView& graph,
                                                     const Partition& partition, const ProgressFn& progress) {
  if (!staged_) return Status::Internal("ShardDirectoryWriter::Write called twice or after a move");
  const ShardWriteOptions& options = options_;
  const std::string tmp = staged_->temp_dir();
  const ClusterLayout layout = BuildClusterLayout(partition);
  const auto P = static_cast<uint32_t>(partition.num_parts);
  if (partition.part.size() != raw.num_nodes || static_cast<uint64_t>(graph.num_nodes) != raw.num_nodes ||
      raw.split.size() != raw.num_nodes)
    return Status::Internal("shard writer: raw input, CSR and partition disagree on the number of nodes");

  // Memory plan: the graph-sized arrays are held throughout; the rest of the budget bounds how
  // many clusters are in flight. The CSR counts only when it is on the heap (a CsrGraph): a
  // mapped CSR (MappedCsr) is read through the page cache, which the kernel can drop and read
  // again, so it is reported apart and not charged to the budget.
  ShardMemoryPlan plan;
  plan.budget = options.mem_budget;
  const uint64_t split_bytes = raw.split.size();
  plan.csr_heap_bytes = graph.heap_bytes;
  plan.csr_mapped_bytes = graph.heap_bytes != 0 ? 0 : 8 * (uint64_t{graph.num_nodes} + 1) + 4 * graph.num_entries();
  plan.graph_bytes = plan.csr_heap_bytes + partition.bytes() + layout.bytes() + split_bytes;
  for (uint32_t c = 0; c < P; ++c) {
    uint64_t degree_sum = 0;
    for (uint32_t k = layout.offsets[c]; k < layout.offsets[c + 1]; ++k) degree_sum += graph.degree(layout.nodes[k]);
    plan.largest_cluster =
        std::max(plan.largest_cluster, ClusterWorkingBytes(layout.cluster_size(c), degree_sum, raw.feat_dim, P));
  }
  // Threads that can run: the arena's, capped by a global_control limit (cgcn-preprocess --threads).
  const auto threads = std::min<uint64_t>(
      static_cast<uint64_t>(std::max(1, tbb::this_task_arena::max_concurrency())),
      std::max<size_t>(1, tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism)));
  uint64_t in_flight = threads;
  if (plan.budget != 0) {
    if (plan.graph_bytes + plan.largest_cluster > plan.budget) {
      return Status::InvalidArgument(
          "--mem-budget " + FormatBytes(plan.budget) + " is too small: the graph-sized arrays need " +
          FormatBytes(plan.graph_bytes) + " (CSR in memory " + FormatBytes(plan.csr_heap_bytes) + ", partition " +
          FormatBytes(partition.bytes()) + ", cluster layout " + FormatBytes(layout.bytes()) + ", split " +
          FormatBytes(split_bytes) +
          (plan.csr_mapped_bytes != 0
               ? "; the mapped CSR's " + FormatBytes(plan.csr_mapped_bytes) + " are page cache, not counted"
               : std::string()) +
          ") and the largest cluster up to " + FormatBytes(plan.largest_cluster) +
          " while it is gathered and encoded; at least " + FormatBytes(plan.graph_bytes + plan.largest_cluster) +
          " is needed (or use more --parts)");
    }
    in_flight = std::clamp<uint64_t>((plan.budget - plan.graph_bytes) / plan.largest_cluster, 1, threads);
  }
  plan.clusters_in_flight = static_cast<uint32_t>(in_flight);

  Manifest m;
  m.num_nodes = raw.num_nodes;
  m.num_edges = graph.num_undirected_edges();
  m.feat_dim = raw.feat_dim;
  m.num_classes = raw.num_classes;
  m.label_tasks = raw.label_tasks;
  m.feature_source = raw.feature_source;
  m.num_parts = P;
  m.seed = options.seed;
  m.zstd_level = options.zstd_level;
  m.edge_cut = partition.edge_cut;
  m.num_train = raw.num_train;
  m.num_valid = raw.num_valid;
  m.num_test = raw.num_test;
  m.input_fingerprint = raw.fingerprint;
  m.input_bytes = raw.input_bytes;
  m.split_name = raw.split_name;
  m.input_files = options.input_files;
  m.shards.resize(P);

  CGCN_ASSIGN_OR_RETURN(RawNodeRows rows, RawNodeRows::Open(raw));
  struct Local {
    ClusterData data;
    std::vector<InterEdge> inter;
  };
  tbb::enumerable_thread_specific<Local> locals;
  std::mutex progress_mu;  // progress is called by one thread at a time
  uint32_t done = 0;
  // At most `in_flight` clusters at once: an arena of that concurrency, one cluster per task.
  tbb::task_arena arena(static_cast<int>(in_flight));
  const Status written = arena.execute([&] {
    return ParallelFor(uint32_t{0}, P, "writing shards", [&](uint32_t c) -> Status {
      Local& l = locals.local();
      CGCN_RETURN_IF_ERROR(BuildCluster(raw, rows, graph, partition, layout, c, l.data, l.inter));
      CGCN_ASSIGN_OR_RETURN(
          const std::vector<std::byte> bytes,
          EncodeShard(l.data, options.zstd_level, options.min_compression_ratio, options.feature_dtype));
      CGCN_RETURN_IF_ERROR(WriteWholeFile(tmp + "/" + ShardFileName(c), bytes));
      CGCN_ASSIGN_OR_RETURN(const ShardHeader h, ParseShardHeader(bytes, ShardFileName(c)));
      ShardInfo& info = m.shards[c];
      info.num_nodes = l.data.num_nodes;
      info.intra_entries = l.data.intra_entries();
      info.inter_entries = l.data.inter_entries();
      info.file_size = bytes.size();
      info.header_checksum = h.header_checksum;
      info.raw_bytes = h.raw_bytes();
      std::lock_guard<std::mutex> lock(progress_mu);
      ++done;
      if (progress) progress("write shards", done, P);
      return Status::Ok();
    });
  });
  CGCN_RETURN_IF_ERROR(written);

  ShardWriteReport report;
  report.memory = plan;
  for (const ShardInfo& s : m.shards) {
    report.raw_bytes += s.raw_bytes;
    report.stored_bytes += s.file_size;
  }
  // The scratch files are not part of the directory.
  {
    std::error_code ec;
    fs::remove_all(scratch_, ec);
    if (ec) return Status::IoError(scratch_ + ": cannot remove: " + ec.message());
  }
  const std::vector<std::byte> manifest_bytes = EncodeManifest(m);
  CGCN_RETURN_IF_ERROR(WriteWholeFile(tmp + "/" + kManifestFileName, manifest_bytes));
  report.stored_bytes += manifest_bytes.size();
  CGCN_RETURN_IF_ERROR(FsyncDirectory(tmp));

  // Publish: the new directory appears complete or not at all.
  CGCN_RETURN_IF_ERROR(staged_->Publish());
  staged_.reset();  // releases the lock
  report.manifest = std::move(m);
  return report;
}

namespace {
Status WriteVector(const std::string& path, const void* data, size_t bytes) {
  return WriteWholeFile(path, std::span<const std::byte>(static_cast<const std::byte*>(data), bytes));
}
}  // namespace

Result<ShardWriteReport> WriteShardDirectory(const RawGraph& raw, const CsrView& graph, const Partition& partition,
                                             const ShardWriteOptions& options, const ProgressFn& progress) {
  CGCN_ASSIGN_OR_RETURN(ShardDirectoryWriter writer, ShardDirectoryWriter::Create(options));
  RawInput input;
  input.num_nodes = raw.num_nodes;
  input.feat_dim = raw.feat_dim;
  input.num_classes = raw.num_classes;
  input.label_tasks = raw.label_tasks;
  input.num_edge_lines = raw.edge_src.size();
  input.features_path = writer.scratch_dir() + "/features.f32";
  input.labels_path = writer.scratch_dir() + "/labels.u32";
  CGCN_RETURN_IF_ERROR(WriteVector(input.features_path, raw.features.data(), raw.features.size() * sizeof(float)));
  CGCN_RETURN_IF_ERROR(WriteVector(input.labels_path, raw.labels.data(), raw.labels.size() * sizeof(uint32_t)));
  if (raw.label_tasks != 0) {
    input.label_bits_path = writer.scratch_dir() + "/label-bits.u32";
    CGCN_RETURN_IF_ERROR(
        WriteVector(input.label_bits_path, raw.label_bits.data(), raw.label_bits.size() * sizeof(uint32_t)));
  }
  input.split = raw.split;
  input.split_name = raw.split_name;
  input.num_train = raw.num_train;
  input.num_valid = raw.num_valid;
  input.num_test = raw.num_test;
  input.fingerprint = raw.fingerprint;
  input.input_bytes = raw.input_bytes;
  return writer.Write(input, graph, partition, progress);
}

}  // namespace cgcn
