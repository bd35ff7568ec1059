#include "cgcn/shard_writer.h"

#include <unistd.h>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <tuple>

#include "cgcn/shard_format.h"
#include "util/file_util.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

struct InterEdge {
  uint32_t cluster, src, dst;
  bool operator<(const InterEdge& o) const { return std::tie(cluster, src, dst) < std::tie(o.cluster, o.src, o.dst); }
};

// Gathers cluster `c`'s contents from the whole graph. Buffers in `out`/`inter` are reused.
void BuildCluster(const RawGraph& raw, const CsrGraph& g, const Partition& p, const ClusterLayout& layout, uint32_t c,
                  ClusterData& out, std::vector<InterEdge>& inter) {
  const uint32_t begin = layout.offsets[c], n = layout.cluster_size(c);
  const uint32_t F = raw.feat_dim;
  out.cluster_id = c;
  out.num_clusters = static_cast<uint32_t>(p.num_parts);
  out.num_nodes = n;
  out.feat_dim = F;
  out.num_classes = raw.num_classes;
  out.node_ids.assign(layout.nodes.begin() + begin, layout.nodes.begin() + begin + n);
  out.adj_offsets.assign(uint64_t{n} + 1, 0);
  out.adj_neighbors.clear();
  out.features.resize(uint64_t{n} * F);
  out.labels.resize(n);
  out.split.resize(n);
  inter.clear();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t v = out.node_ids[i];
    for (int32_t e = g.offsets[v]; e < g.offsets[v + 1]; ++e) {
      const auto u = static_cast<uint32_t>(g.neighbors[static_cast<size_t>(e)]);
      const auto cu = static_cast<uint32_t>(p.part[u]);
      if (cu == c) {
        out.adj_neighbors.push_back(layout.local_index[u]);  // ascending: ids ascend within a cluster
      } else {
        inter.push_back({cu, i, layout.local_index[u]});
      }
    }
    out.adj_offsets[i + 1] = static_cast<uint32_t>(out.adj_neighbors.size());
    std::memcpy(out.features.data() + uint64_t{i} * F, raw.features.data() + uint64_t{v} * F, sizeof(float) * F);
    out.labels[i] = raw.labels[v];
    out.split[i] = raw.split[v];
  }
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
}

// Cleans up after runs that were killed: "<out>.tmp-<pid>" directories of dead processes are
// removed; an "<out>.old-<pid>" (an --overwrite interrupted between its two renames) is moved
// back to <out> if <out> is missing, so no complete directory is ever lost.
void RecoverInterruptedRuns(const std::string& out) {
  std::error_code ec;
  for (const std::string& old : DeadSiblings(out, ".old-")) {
    if (!fs::exists(out, ec) && fs::exists(fs::path(old) / kManifestFileName, ec))
      fs::rename(old, out, ec);
    else
      fs::remove_all(old, ec);
  }
  for (const std::string& tmp : DeadSiblings(out, ".tmp-")) fs::remove_all(tmp, ec);
}

}  // namespace

Result<ShardWriteReport> WriteShardDirectory(const RawGraph& raw, const CsrGraph& graph, const Partition& partition,
                                             const ShardWriteOptions& options, const ProgressFn& progress) {
  if (options.out_dir.empty()) return Status::InvalidArgument("no output directory given");
  const fs::path out = fs::path(options.out_dir).lexically_normal();
  const std::string out_str = (out.filename().empty() ? out.parent_path() : out).string();
  std::error_code ec;
  RecoverInterruptedRuns(out_str);
  if (fs::exists(out_str, ec) && !options.overwrite)
    return Status::InvalidArgument(out_str + ": already exists (pass --overwrite to replace it once the new one is complete)");
  const fs::path parent = fs::absolute(out_str, ec).parent_path();
  fs::create_directories(parent, ec);
  if (ec) return Status::IoError(parent.string() + ": cannot create directory: " + ec.message());
  const std::string tmp = out_str + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec) || ec)
    return Status::IoError(tmp + ": cannot create temporary directory: " + (ec ? ec.message() : "exists"));
  // Remove the temporary on every failure path.
  struct Cleanup {
    std::string path;
    bool armed = true;
    ~Cleanup() {
      if (armed) {
        std::error_code e;
        fs::remove_all(path, e);
      }
    }
  } cleanup{tmp};

  const ClusterLayout layout = BuildClusterLayout(partition);
  const auto P = static_cast<uint32_t>(partition.num_parts);
  Manifest m;
  m.num_nodes = raw.num_nodes;
  m.num_edges = graph.num_undirected_edges();
  m.feat_dim = raw.feat_dim;
  m.num_classes = raw.num_classes;
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

  struct Local {
    ClusterData data;
    std::vector<InterEdge> inter;
  };
  tbb::enumerable_thread_specific<Local> locals;
  std::mutex mu;  // guards first_error and progress calls
  Status first_error;
  std::atomic<bool> failed{false};
  std::atomic<uint32_t> done{0};
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, P, 1), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t c = r.begin(); c != r.end() && !failed.load(); ++c) {
      Local& l = locals.local();
      BuildCluster(raw, graph, partition, layout, c, l.data, l.inter);
      Result<std::vector<std::byte>> bytes = EncodeShard(l.data, options.zstd_level);
      Status s = bytes.status();
      if (s.ok()) s = WriteWholeFile(tmp + "/" + ShardFileName(c), *bytes);
      if (s.ok()) {
        ShardInfo& info = m.shards[c];
        info.num_nodes = l.data.num_nodes;
        info.intra_entries = l.data.intra_entries();
        info.inter_entries = l.data.inter_entries();
        info.file_size = bytes->size();
        Result<ShardHeader> h = ParseShardHeader(*bytes, ShardFileName(c));
        s = h.status();
        if (s.ok()) {
          info.header_checksum = h->header_checksum;
          info.raw_bytes = h->raw_bytes();
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!s.ok()) {
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
      const uint32_t d = ++done;
      if (progress) progress("write shards", d, P);
    }
  });
  if (!first_error.ok()) return first_error;

  ShardWriteReport report;
  for (const ShardInfo& s : m.shards) {
    report.raw_bytes += s.raw_bytes;
    report.stored_bytes += s.file_size;
  }
  const std::vector<std::byte> manifest_bytes = EncodeManifest(m);
  CGCN_RETURN_IF_ERROR(WriteWholeFile(tmp + "/" + kManifestFileName, manifest_bytes));
  report.stored_bytes += manifest_bytes.size();
  CGCN_RETURN_IF_ERROR(FsyncDirectory(tmp));

  // Publish: the new directory appears complete or not at all.
  CGCN_RETURN_IF_ERROR(PublishDirectory(tmp, out_str));
  cleanup.armed = false;
  report.manifest = std::move(m);
  return report;
}

}  // namespace cgcn
