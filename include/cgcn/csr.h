// Stage 2's product as every later stage reads it: the symmetric, deduplicated CSR of the
// undirected simple graph, with u64 offsets and u32 neighbour ids. The arrays live in memory
// (CsrGraph, graph.h) or in files mapped read-only (MappedCsr, graph.h); a CsrView reads either.
#pragma once

#include <cstdint>
#include <span>

namespace cgcn {

struct CsrView {
  uint32_t num_nodes = 0;
  const uint64_t* offsets = nullptr;    // [num_nodes + 1], offsets[0] == 0, non-decreasing
  const uint32_t* neighbors = nullptr;  // [offsets[num_nodes]], each row sorted ascending, no self loop
  // Bytes of the two arrays on the heap (a CsrGraph); 0 for a mapping (MappedCsr), whose pages
  // are page cache the kernel may drop and read again, not memory a budget has to hold.
  uint64_t heap_bytes = 0;

  // Adjacency entries: twice the undirected edges.
  uint64_t num_entries() const { return offsets == nullptr ? 0 : offsets[num_nodes]; }
  uint64_t num_undirected_edges() const { return num_entries() / 2; }
  uint64_t degree(uint32_t v) const { return offsets[v + 1] - offsets[v]; }
  std::span<const uint32_t> row(uint32_t v) const {
    return {neighbors + offsets[v], static_cast<size_t>(offsets[v + 1] - offsets[v])};
  }
};

}  // namespace cgcn
