#include "cgcn/partition.h"

#include <metis.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>

#include "partition/metis_kway.h"

namespace cgcn {

Status MetisKway(idx_t n, idx_t* xadj, idx_t* adjncy, idx_t* vwgt, idx_t* adjwgt, int32_t num_parts, int64_t seed,
                 idx_t ufactor, int32_t* part, const char* what) {
  idx_t nvtxs = n, ncon = 1, nparts = num_parts, objval = 0;
  idx_t opts[METIS_NOPTIONS];
  METIS_SetDefaultOptions(opts);
  opts[METIS_OPTION_SEED] = static_cast<idx_t>(seed);
  opts[METIS_OPTION_NUMBERING] = 0;
  if (ufactor > 0) opts[METIS_OPTION_UFACTOR] = ufactor;
  const int rc = METIS_PartGraphKway(&nvtxs, &ncon, xadj, adjncy, vwgt, nullptr, adjwgt, &nparts, nullptr, nullptr,
                                     opts, &objval, part);
  switch (rc) {
    case METIS_OK:
      break;
    case METIS_ERROR_INPUT:
      return Status::Internal(std::string("METIS_PartGraphKway rejected ") + what + " (METIS_ERROR_INPUT)");
    case METIS_ERROR_MEMORY:
      return Status::IoError(std::string("METIS_PartGraphKway ran out of memory on ") + what + " (METIS_ERROR_MEMORY)");
    default:
      return Status::Internal(std::string("METIS_PartGraphKway failed on ") + what + " (METIS_ERROR)");
  }
  for (idx_t v = 0; v < n; ++v)
    if (part[v] < 0 || part[v] >= num_parts) return Status::Internal("METIS returned a part id out of range");
  return Status::Ok();
}

uint64_t MetisArrayBytes(uint64_t num_nodes, uint64_t entries) {
  return sizeof(idx_t) * (num_nodes + 1) + sizeof(idx_t) * entries + sizeof(int32_t) * num_nodes;
}

uint64_t EdgeCut(const CsrView& graph, std::span<const int32_t> part) {
  const uint64_t entries = tbb::parallel_reduce(
      tbb::blocked_range<uint32_t>(0, graph.num_nodes, 4096), uint64_t{0},
      [&](const tbb::blocked_range<uint32_t>& r, uint64_t cut) {
        for (uint32_t v = r.begin(); v != r.end(); ++v)
          for (const uint32_t u : graph.row(v)) cut += part[v] != part[u];
        return cut;
      },
      std::plus<uint64_t>());
  return entries / 2;
}

double PartBalance(std::span<const int32_t> part, int32_t num_parts) {
  if (part.empty() || num_parts < 1) return 0.0;
  std::vector<uint64_t> size(static_cast<size_t>(num_parts), 0);
  for (const int32_t p : part) ++size[static_cast<size_t>(p)];
  const double mean = static_cast<double>(part.size()) / num_parts;
  return static_cast<double>(*std::max_element(size.begin(), size.end())) / mean;
}

Result<Partition> PartitionGraph(const CsrView& graph, const PartitionOptions& options) {
  const uint64_t n = graph.num_nodes;
  if (options.num_parts < 1) return Status::InvalidArgument("--parts must be >= 1");
  if (n == 0) return Status::InvalidInput("graph has no nodes");
  if (static_cast<uint64_t>(options.num_parts) > n)
    return Status::InvalidArgument("--parts " + std::to_string(options.num_parts) + " exceeds the number of nodes (" +
                                   std::to_string(n) + ")");
  Partition p;
  p.num_parts = options.num_parts;
  p.part.assign(static_cast<size_t>(n), 0);
  if (options.num_parts == 1) return p;
  constexpr uint64_t kMaxIdx = static_cast<uint64_t>(std::numeric_limits<idx_t>::max());
  if (n >= kMaxIdx)
    return Status::Unsupported(std::to_string(n) + " nodes exceed METIS's 32-bit idx_t (at most " +
                               std::to_string(kMaxIdx - 1) + "); Debian's libmetis is built with IDXTYPEWIDTH 32");
  const uint64_t entries = graph.num_entries();
  if (entries > kMaxIdx)
    return Status::Unsupported(std::to_string(entries / 2) + " undirected edges need " + std::to_string(entries) +
                               " adjacency entries, more than METIS's 32-bit idx_t can index (" +
                               std::to_string(kMaxIdx) + "); Debian's libmetis is built with IDXTYPEWIDTH 32");

  {
    // METIS's int32 copies of the rows (which may be mapped), freed before the cut is counted.
    std::vector<idx_t> xadj(static_cast<size_t>(n) + 1), adjncy(static_cast<size_t>(entries));
    tbb::parallel_for(tbb::blocked_range<size_t>(0, xadj.size(), 1 << 16), [&](const tbb::blocked_range<size_t>& r) {
      for (size_t i = r.begin(); i != r.end(); ++i) xadj[i] = static_cast<idx_t>(graph.offsets[i]);
    });
    tbb::parallel_for(tbb::blocked_range<size_t>(0, adjncy.size(), 1 << 16), [&](const tbb::blocked_range<size_t>& r) {
      for (size_t i = r.begin(); i != r.end(); ++i) adjncy[i] = static_cast<idx_t>(graph.neighbors[i]);
    });
    CGCN_RETURN_IF_ERROR(MetisKway(static_cast<idx_t>(n), xadj.data(), adjncy.data(), nullptr, nullptr,
                                   options.num_parts, options.seed, 0, p.part.data(), "the graph"));
  }
  // Recount the cut ourselves rather than trusting objval's meaning across METIS versions.
  p.edge_cut = EdgeCut(graph, p.part);
  return p;
}

ClusterLayout BuildClusterLayout(const Partition& partition) {
  ClusterLayout layout;
  const size_t n = partition.part.size();
  layout.offsets.assign(static_cast<size_t>(partition.num_parts) + 1, 0);
  for (int32_t c : partition.part) ++layout.offsets[static_cast<size_t>(c) + 1];
  for (size_t i = 1; i < layout.offsets.size(); ++i) layout.offsets[i] += layout.offsets[i - 1];
  layout.nodes.resize(n);
  layout.local_index.resize(n);
  std::vector<uint32_t> pos(layout.offsets.begin(), layout.offsets.end() - 1);
  for (size_t v = 0; v < n; ++v) {
    const auto c = static_cast<size_t>(partition.part[v]);
    layout.local_index[v] = pos[c] - layout.offsets[c];
    layout.nodes[pos[c]++] = static_cast<uint32_t>(v);
  }
  return layout;
}

}  // namespace cgcn
