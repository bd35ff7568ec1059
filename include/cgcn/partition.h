// Stage 3: METIS k-way partition and the cluster layout derived from it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cgcn/csr.h"
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
// calling METIS. Parts may come out empty on tiny or disconnected graphs. METIS (Debian:
// IDXTYPEWIDTH 32) takes int32 xadj/adjncy: they are copied from the view inside (its rows may
// be mapped), so a graph with 2^31 - 1 nodes or more than 2^31 - 1 adjacency entries is
// kUnsupported. Peak: MetisArrayBytes plus METIS's own workspace.
Result<Partition> PartitionGraph(const CsrView& graph, const PartitionOptions& options);

// Bytes of the arrays PartitionGraph holds for METIS: the int32 xadj [N + 1] and adjncy
// [entries] copies and the part array [N]. METIS's workspace comes on top.
uint64_t MetisArrayBytes(uint64_t num_nodes, uint64_t entries);

// Undirected edges whose ends lie in different parts (counted in parallel over the rows).
// part.size() must be graph.num_nodes.
uint64_t EdgeCut(const CsrView& graph, std::span<const int32_t> part);

// Largest part / mean part, the mean being N / P (1.0 is perfect balance; 0 with no nodes).
// Every value of part must lie in [0, num_parts).
double PartBalance(std::span<const int32_t> part, int32_t num_parts);

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
