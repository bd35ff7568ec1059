// Stage 2: the undirected simple graph as a symmetric, deduplicated CSR (csr.h's layout: u64
// offsets, u32 neighbour ids), built in memory for small graphs (CsrGraph) or on disk within a
// memory budget by bucketed external passes and mapped read-only (MappedCsr). No limit on the
// number of edges but the disk's: counts and offsets are u64 throughout; node ids are u32.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "cgcn/csr.h"
#include "cgcn/mapped_file.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

// The CSR in memory (heap).
struct CsrGraph {
  uint32_t num_nodes = 0;
  std::vector<uint64_t> offsets;    // [num_nodes + 1]
  std::vector<uint32_t> neighbors;  // [offsets[num_nodes]] = 2 x undirected edges
  CsrView view() const { return {num_nodes, offsets.data(), neighbors.data(), bytes()}; }
  uint64_t num_undirected_edges() const { return neighbors.size() / 2; }
  uint64_t bytes() const { return 8 * uint64_t{offsets.size()} + 4 * uint64_t{neighbors.size()}; }
};

// The CSR in two files of a directory, mapped read-only: kCsrOffsetsFile (u64 [N + 1]) and
// kCsrNeighborsFile (u32 [offsets[N]]), host byte order. They are scratch files of one run, not
// part of any public format. Move-only; the view stays valid across moves.
inline constexpr const char* kCsrOffsetsFile = "csr-offsets.u64";
inline constexpr const char* kCsrNeighborsFile = "csr-neighbors.u32";
class MappedCsr {
 public:
  // Maps dir's two files and checks them: the offsets file holds num_nodes + 1 u64, the
  // neighbours file a whole number of u32; offsets[0] == 0, the offsets never decrease, and the
  // last one equals the neighbours file's entry count. Errors name the file and the byte offset.
  // The rows' contents are trusted as BuildExternalCsr wrote them (ids < N, sorted, no loops).
  static Result<MappedCsr> Open(const std::string& dir, uint32_t num_nodes);
  CsrView view() const;
  // Bytes of the two files (page cache while mapped, not heap).
  uint64_t file_bytes() const { return offsets_.bytes().size() + neighbors_.bytes().size(); }
  // Unmaps the pages read so far from this process (MappedFile::ReleaseResident): the RSS then
  // shows the heap, not the page cache the passes over the CSR touched.
  void ReleaseResident() const {
    offsets_.ReleaseResident();
    neighbors_.ReleaseResident();
  }

 private:
  MappedCsr(MappedFile offsets, MappedFile neighbors, uint32_t num_nodes)
      : offsets_(std::move(offsets)), neighbors_(std::move(neighbors)), num_nodes_(num_nodes) {}
  MappedFile offsets_, neighbors_;
  uint32_t num_nodes_ = 0;
};

struct CsrBuildStats {
  uint64_t input_edges = 0;
  uint64_t self_loops_removed = 0;
  uint64_t duplicates_removed = 0;  // undirected pairs seen more than once
  // BuildExternalCsr only.
  uint32_t buckets = 0;             // source-node ranges sorted one at a time
  uint64_t bucket_file_bytes = 0;   // scratch the distributed entries took (0 with one bucket)
  uint64_t csr_file_bytes = 0;      // the two CSR files
  uint64_t planned_peak_bytes = 0;  // CsrBuildPlan::peak_bytes()
};

// A re-readable edge list: each call feeds every edge, in pieces, to the sink, in the same
// order every time (e.g. RawInput::ForEachEdgeChunk over a scratch file).
using EdgeChunkSink = std::function<void(std::span<const uint32_t> src, std::span<const uint32_t> dst)>;
using EdgeScan = std::function<Status(const EdgeChunkSink&)>;

// For tests and small graphs: the CSR in memory, over edge arrays in memory. The same counting,
// placing, row sorting and deduplication as BuildExternalCsr with one bucket.
Result<CsrGraph> BuildSymmetricCsr(uint32_t num_nodes, std::span<const uint32_t> src, std::span<const uint32_t> dst,
                                   CsrBuildStats* stats = nullptr);

struct ExternalCsrOptions {
  std::string scratch_dir;  // where the bucket files and the two CSR files go (must exist)
  // Bytes the build may hold: 8 per node of counts (later the offsets), plus either one bucket's
  // rows (4 bytes an entry) and its read buffer, or the distribution buffers. 0 = no limit: one
  // bucket, filled straight from the scan. The scan's own buffers are the caller's.
  uint64_t mem_budget = 0;
  // Bytes of I/O buffer: the distribution buffers of all buckets together, and the buffer a
  // bucket file is read through. 0 = 16 MiB. At most an eighth of what the counts leave.
  uint64_t io_buffer_bytes = 0;
  uint64_t num_edges_hint = 0;  // edges the scan will feed, for the first phase's progress total; 0 = unknown
  ProgressFn progress;          // phases "count degrees", "distribute edges", "fill rows", "sort rows"
};

// Builds the symmetric, deduplicated CSR of the scan's edges into options.scratch_dir and maps it:
//   1. counts degrees over both directions (self loops skipped, endpoints checked < num_nodes);
//   2. plans buckets (PlanCsrBuild): contiguous source-node ranges whose rows fit the budget;
//   3. one bucket: places the entries by row straight from a second scan; several: distributes
//      the directed entries (src, dst) to one scratch file per bucket through bounded buffers,
//      then loads each bucket file in turn (removing it), places its entries by row;
//   4. sorts and deduplicates each row (oneTBB), appends the rows to the neighbours file;
//      finally writes the offsets.
// The scan is called twice and must feed the same edges both times (checked: edge count and a
// hash of the pairs; kInternal otherwise). An endpoint >= num_nodes is kInvalidInput naming the
// edge. A budget that cannot hold the counts, the largest row and an I/O buffer is
// kInvalidArgument naming the numbers. On failure the files it made are removed.
Result<MappedCsr> BuildExternalCsr(uint32_t num_nodes, const EdgeScan& scan, const ExternalCsrOptions& options,
                                   CsrBuildStats* stats = nullptr);

// The bucket plan, exposed so that its u64 arithmetic can be tested on synthetic degree counts.
struct CsrBucket {
  uint32_t first_node = 0, end_node = 0;  // [first_node, end_node)
  uint64_t entries = 0;                   // directed entries before deduplication
};
struct CsrBuildPlan {
  uint64_t budget = 0;             // 0 = none
  uint64_t count_bytes = 0;        // 8 (N + 1): degrees, then offsets
  uint64_t entries = 0;            // directed entries before deduplication, 2 x non-loop edges
  uint64_t bucket_bytes = 0;       // the largest bucket's rows, 4 bytes an entry
  uint64_t read_buffer_bytes = 0;  // a bucket file is read through this (0 with one bucket)
  uint64_t distribute_bytes = 0;   // every bucket's distribution buffer together (0 with one bucket)
  std::vector<CsrBucket> buckets;  // contiguous, covering [0, N) in order
  uint64_t peak_bytes() const;     // count_bytes + the larger of the two phases
};
// Plans the build for these per-node degrees (entries before deduplication) within mem_budget
// (0 = none: one bucket); io_buffer_bytes as in ExternalCsrOptions. Fails with kInvalidArgument
// naming the numbers when the counts, the largest row and an I/O buffer do not fit, or when more
// than kMaxCsrBuckets buckets would be needed (one open file each while distributing).
inline constexpr uint32_t kMaxCsrBuckets = 1024;
Result<CsrBuildPlan> PlanCsrBuild(std::span<const uint64_t> degrees, uint64_t mem_budget, uint64_t io_buffer_bytes = 0);
// Replaces row lengths by their row offsets, starting at `base`; returns base + the sum.
uint64_t LengthsToOffsets(std::span<uint64_t> lengths, uint64_t base);

}  // namespace cgcn
