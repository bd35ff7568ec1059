#include "cgcn/graph.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <limits>
#include <string>

namespace cgcn {

Result<CsrGraph> BuildSymmetricCsr(uint32_t num_nodes, std::span<const uint32_t> src, std::span<const uint32_t> dst,
                                   CsrBuildStats* stats) {
  constexpr uint64_t kMaxIdx = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
  if (src.size() != dst.size()) return Status::Internal("edge src/dst arrays differ in length");
  if (num_nodes >= kMaxIdx)
    return Status::Unsupported(std::to_string(num_nodes) + " nodes exceed METIS's 32-bit idx_t (at most " +
                               std::to_string(kMaxIdx - 1) + ")");
  CsrBuildStats local;
  local.input_edges = src.size();
  // Degree count over both directions (self loops skipped), then fill, then sort+unique per row.
  std::vector<uint64_t> count(static_cast<size_t>(num_nodes) + 1, 0);
  for (size_t e = 0; e < src.size(); ++e) {
    const uint32_t s = src[e], d = dst[e];
    if (s >= num_nodes || d >= num_nodes) return Status::Internal("edge endpoint out of range");
    if (s == d) {
      ++local.self_loops_removed;
      continue;
    }
    ++count[s + 1];
    ++count[d + 1];
  }
  for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  const uint64_t entries = count[num_nodes];
  if (entries > kMaxIdx)
    return Status::Unsupported(std::to_string(entries / 2) + " undirected edges need " + std::to_string(entries) +
                               " adjacency entries, more than METIS's 32-bit idx_t can index (" +
                               std::to_string(kMaxIdx) + "); Debian's libmetis is built with IDXTYPEWIDTH 32");
  std::vector<int32_t> nbr(entries);
  {
    std::vector<uint64_t> pos(count.begin(), count.end() - 1);
    for (size_t e = 0; e < src.size(); ++e) {
      const uint32_t s = src[e], d = dst[e];
      if (s == d) continue;
      nbr[pos[s]++] = static_cast<int32_t>(d);
      nbr[pos[d]++] = static_cast<int32_t>(s);
    }
  }
  // Sort and deduplicate each row in parallel; compute new lengths.
  std::vector<int32_t> newlen(num_nodes);
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, num_nodes, 4096), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t v = r.begin(); v != r.end(); ++v) {
      auto* b = nbr.data() + count[v];
      auto* e = nbr.data() + count[v + 1];
      std::sort(b, e);
      newlen[v] = static_cast<int32_t>(std::unique(b, e) - b);
    }
  });
  CsrGraph g;
  g.num_nodes = static_cast<int32_t>(num_nodes);
  g.offsets.resize(static_cast<size_t>(num_nodes) + 1);
  g.offsets[0] = 0;
  for (uint32_t v = 0; v < num_nodes; ++v) g.offsets[v + 1] = g.offsets[v] + newlen[v];
  if (static_cast<uint64_t>(g.offsets[num_nodes]) == entries) {
    g.neighbors = std::move(nbr);
  } else {
    g.neighbors.resize(static_cast<size_t>(g.offsets[num_nodes]));
    tbb::parallel_for(tbb::blocked_range<uint32_t>(0, num_nodes, 4096), [&](const tbb::blocked_range<uint32_t>& r) {
      for (uint32_t v = r.begin(); v != r.end(); ++v)
        std::copy_n(nbr.data() + count[v], newlen[v], g.neighbors.data() + g.offsets[v]);
    });
  }
  local.duplicates_removed = (entries - g.neighbors.size()) / 2;
  if (stats) *stats = local;
  return g;
}

}  // namespace cgcn
