// Stage 3: METIS k-way partition and the cluster layout derived from it.
#pragma once

#include <cstdint>
#include <vector>

#include "cgcn/graph.h"
#include "cgcn/status.h"

namespace cgcn {

struct PartitionOptions {
  int32_t num_parts = 1;
  int64_t seed = 0;  // METIS_OPTION_SEED
};

struct Partition {
  int32_t num_parts = 0;
  std::vector<int32_t> part;  // [num_nodes], values in [0, num_parts)
  uint64_t edge_cut = 0;      // undirected edges whose ends lie in different parts
  uint64_t bytes() const { return 4 * uint64_t{part.size()}; }
};

// METIS_PartGraphKway, seeded; num_parts == 1 puts every node in part 0 without
// calling METIS. Parts may come out empty on tiny or disconnected graphs.
Result<Partition> PartitionGraph(const CsrGraph& graph, const PartitionOptions& options);

// Nodes grouped by part, ascending original id inside a part.
struct ClusterLayout {
  std::vector<uint32_t> offsets;      // [num_parts + 1]
  std::vector<uint32_t> nodes;        // [num_nodes] original ids, cluster by cluster
  std::vector<uint32_t> local_index;  // [num_nodes] position of node inside its cluster
  uint32_t cluster_size(uint32_t c) const { return offsets[c + 1] - offsets[c]; }
  uint64_t bytes() const { return 4 * (uint64_t{offsets.size()} + nodes.size() + local_index.size()); }
};
ClusterLayout BuildClusterLayout(const Partition& partition);

}  // namespace cgcn
