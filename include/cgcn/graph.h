// Stage 2: the undirected simple graph as CSR, in METIS's 32-bit index type.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

// Symmetric adjacency without self loops or duplicates; neighbours sorted ascending.
// offsets/neighbors are int32 because METIS (Debian: IDXTYPEWIDTH 32) takes them as-is.
struct CsrGraph {
  int32_t num_nodes = 0;
  std::vector<int32_t> offsets;    // [num_nodes + 1]
  std::vector<int32_t> neighbors;  // [offsets[num_nodes]] = 2 x undirected edges
  uint64_t num_undirected_edges() const { return neighbors.size() / 2; }
  // Bytes of the two arrays (what METIS is handed as xadj and adjncy).
  uint64_t bytes() const { return 4 * (uint64_t{offsets.size()} + neighbors.size()); }
};

struct CsrBuildStats {
  uint64_t input_edges = 0;
  uint64_t self_loops_removed = 0;
  uint64_t duplicates_removed = 0;  // undirected pairs seen more than once
};

// A re-readable edge list: each call feeds every edge, in pieces, to the sink, in the same
// order every time (e.g. RawInput::ForEachEdgeChunk over a scratch file).
using EdgeChunkSink = std::function<void(std::span<const uint32_t> src, std::span<const uint32_t> dst)>;
using EdgeScan = std::function<Status(const EdgeChunkSink&)>;

// Symmetrizes, drops self loops and duplicate pairs. Fails with kUnsupported
// when 2 x edges exceeds 2^31 - 1 (the largest adjacency METIS's idx_t can index).
// Scans the edges twice (degrees, then fill) and sorts and compacts the rows in place, so the
// peak is the adjacency array itself plus 16 bytes per node of counters.
Result<CsrGraph> BuildSymmetricCsrFromScan(uint32_t num_nodes, const EdgeScan& scan, CsrBuildStats* stats = nullptr);
// The same over edge arrays in memory.
Result<CsrGraph> BuildSymmetricCsr(uint32_t num_nodes, std::span<const uint32_t> src, std::span<const uint32_t> dst,
                                   CsrBuildStats* stats = nullptr);
// Upper bound on the bytes BuildSymmetricCsr allocates for `edges` input edges.
uint64_t CsrBuildPeakBytes(uint32_t num_nodes, uint64_t edges);

}  // namespace cgcn
