#include "cgcn/graph.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

namespace cgcn {

uint64_t CsrBuildPeakBytes(uint32_t num_nodes, uint64_t edges) {
  // count + pos (u64 each) during the fill, then the adjacency and offsets.
  return 16 * (uint64_t{num_nodes} + 1) + 8 * edges + 4 * (uint64_t{num_nodes} + 1);
}

Result<CsrGraph> BuildSymmetricCsrFromScan(uint32_t num_nodes, const EdgeScan& scan, CsrBuildStats* stats) {
  constexpr uint64_t kMaxIdx = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
  if (num_nodes >= kMaxIdx)
    return Status::Unsupported(std::to_string(num_nodes) + " nodes exceed METIS's 32-bit idx_t (at most " +
                               std::to_string(kMaxIdx - 1) + ")");
  CsrBuildStats local;
  // Pass 1: degree count over both directions (self loops skipped).
  std::vector<uint64_t> count(static_cast<size_t>(num_nodes) + 1, 0);
  bool out_of_range = false;
  CGCN_RETURN_IF_ERROR(scan([&](std::span<const uint32_t> src, std::span<const uint32_t> dst) {
    local.input_edges += src.size();
    for (size_t e = 0; e < src.size(); ++e) {
      const uint32_t s = src[e], d = dst[e];
      if (s >= num_nodes || d >= num_nodes) {
        out_of_range = true;
        continue;
      }
      if (s == d) {
        ++local.self_loops_removed;
        continue;
      }
      ++count[s + 1];
      ++count[d + 1];
    }
  }));
  if (out_of_range) return Status::Internal("edge endpoint out of range");
  for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  const uint64_t entries = count[num_nodes];
  if (entries > kMaxIdx)
    return Status::Unsupported(std::to_string(entries / 2) + " undirected edges need " + std::to_string(entries) +
                               " adjacency entries, more than METIS's 32-bit idx_t can index (" +
                               std::to_string(kMaxIdx) + "); Debian's libmetis is built with IDXTYPEWIDTH 32");
  // Pass 2: fill.
  CsrGraph g;
  std::vector<int32_t>& nbr = g.neighbors;
  nbr.resize(entries);
  {
    std::vector<uint64_t> pos(count.begin(), count.end() - 1);
    uint64_t filled = 0;
    CGCN_RETURN_IF_ERROR(scan([&](std::span<const uint32_t> src, std::span<const uint32_t> dst) {
      for (size_t e = 0; e < src.size(); ++e) {
        const uint32_t s = src[e], d = dst[e];
        if (s == d || s >= num_nodes || d >= num_nodes) continue;
        if (pos[s] >= count[s + 1] || pos[d] >= count[d + 1]) {
          out_of_range = true;  // the scan fed different edges the second time
          continue;
        }
        nbr[pos[s]++] = static_cast<int32_t>(d);
        nbr[pos[d]++] = static_cast<int32_t>(s);
        filled += 2;
      }
    }));
    if (out_of_range || filled != entries) return Status::Internal("the edge scan changed between its two passes");
  }
  // Sort and deduplicate each row in parallel (row lengths go to count[v + 1] - count[v]'s
  // prefix, kept in g.offsets), then move the rows left in place: a row never moves right.
  g.num_nodes = static_cast<int32_t>(num_nodes);
  g.offsets.assign(static_cast<size_t>(num_nodes) + 1, 0);
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, num_nodes, 4096), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t v = r.begin(); v != r.end(); ++v) {
      auto* b = nbr.data() + count[v];
      auto* e = nbr.data() + count[v + 1];
      std::sort(b, e);
      g.offsets[v + 1] = static_cast<int32_t>(std::unique(b, e) - b);
    }
  });
  for (uint32_t v = 0; v < num_nodes; ++v) {
    const int32_t len = g.offsets[v + 1];
    g.offsets[v + 1] = g.offsets[v] + len;
    if (static_cast<uint64_t>(g.offsets[v]) != count[v])
      std::memmove(nbr.data() + g.offsets[v], nbr.data() + count[v], sizeof(int32_t) * static_cast<size_t>(len));
  }
  nbr.resize(static_cast<size_t>(g.offsets[num_nodes]));
  local.duplicates_removed = (entries - nbr.size()) / 2;
  if (stats) *stats = local;
  return g;
}

Result<CsrGraph> BuildSymmetricCsr(uint32_t num_nodes, std::span<const uint32_t> src, std::span<const uint32_t> dst,
                                   CsrBuildStats* stats) {
  if (src.size() != dst.size()) return Status::Internal("edge src/dst arrays differ in length");
  return BuildSymmetricCsrFromScan(
      num_nodes,
      [&](const EdgeChunkSink& sink) {
        sink(src, dst);
        return Status::Ok();
      },
      stats);
}

}  // namespace cgcn
