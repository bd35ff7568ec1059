#include "cgcn/partition.h"

#include <metis.h>

#include <string>

namespace cgcn {

static_assert(sizeof(idx_t) == sizeof(int32_t), "cgcn expects METIS built with IDXTYPEWIDTH 32 (Debian's)");

Result<Partition> PartitionGraph(const CsrGraph& graph, const PartitionOptions& options) {
  const int32_t n = graph.num_nodes;
  if (options.num_parts < 1) return Status::InvalidArgument("--parts must be >= 1");
  if (n == 0) return Status::InvalidInput("graph has no nodes");
  if (options.num_parts > n)
    return Status::InvalidArgument("--parts " + std::to_string(options.num_parts) + " exceeds the number of nodes (" +
                                   std::to_string(n) + ")");
  Partition p;
  p.num_parts = options.num_parts;
  p.part.assign(static_cast<size_t>(n), 0);
  if (options.num_parts == 1) return p;

  idx_t nvtxs = n, ncon = 1, nparts = options.num_parts, objval = 0;
  idx_t opts[METIS_NOPTIONS];
  METIS_SetDefaultOptions(opts);
  opts[METIS_OPTION_SEED] = static_cast<idx_t>(options.seed);
  opts[METIS_OPTION_NUMBERING] = 0;
  // METIS takes non-const pointers but does not modify xadj/adjncy.
  auto* xadj = const_cast<idx_t*>(graph.offsets.data());
  auto* adjncy = const_cast<idx_t*>(graph.neighbors.data());
  const int rc = METIS_PartGraphKway(&nvtxs, &ncon, xadj, adjncy, nullptr, nullptr, nullptr, &nparts, nullptr, nullptr,
                                     opts, &objval, p.part.data());
  switch (rc) {
    case METIS_OK:
      break;
    case METIS_ERROR_INPUT:
      return Status::Internal("METIS_PartGraphKway rejected its input (METIS_ERROR_INPUT)");
    case METIS_ERROR_MEMORY:
      return Status::IoError("METIS_PartGraphKway ran out of memory (METIS_ERROR_MEMORY)");
    default:
      return Status::Internal("METIS_PartGraphKway failed (METIS_ERROR)");
  }
  // Recount the cut ourselves rather than trusting objval's meaning across METIS versions.
  uint64_t cut = 0;
  for (int32_t v = 0; v < n; ++v)
    for (int32_t e = graph.offsets[v]; e < graph.offsets[v + 1]; ++e)
      if (p.part[v] != p.part[graph.neighbors[e]]) ++cut;
  p.edge_cut = cut / 2;
  for (int32_t v = 0; v < n; ++v)
    if (p.part[v] < 0 || p.part[v] >= options.num_parts)
      return Status::Internal("METIS returned a part id out of range");
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
