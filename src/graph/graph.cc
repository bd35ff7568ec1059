#include "cgcn/graph.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "cgcn/byte_size.h"
#include "util/fd.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

constexpr uint64_t kDefaultIoBufferBytes = uint64_t{16} << 20;
constexpr uint64_t kMinIoBufferBytes = 64;  // 8 entries of (src, dst)
constexpr uint64_t kNoEdge = ~uint64_t{0};

std::string Num(uint64_t v) { return std::to_string(v); }

// A well-mixed hash of one edge as the scan fed it. Summed over a pass (order does not matter),
// it tells whether the second pass fed the same multiset of edges as the first.
uint64_t EdgeHash(uint32_t s, uint32_t d) {
  uint64_t x = ((uint64_t{s} << 32) | d) + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// What one pass over the scan saw.
struct ScanTally {
  uint64_t edges = 0, self_loops = 0, hash = 0;
  uint64_t bad_edge = kNoEdge;  // the first edge with an endpoint out of range
  uint32_t bad_src = 0, bad_dst = 0;
  bool uneven = false;  // a chunk whose src and dst spans differ in length

  // Tallies one edge; true if it makes two adjacency entries (in range and not a self loop).
  bool Add(uint32_t s, uint32_t d, uint32_t n) {
    const uint64_t index = edges++;
    hash += EdgeHash(s, d);
    if (s >= n || d >= n) {
      if (bad_edge == kNoEdge) {
        bad_edge = index;
        bad_src = s;
        bad_dst = d;
      }
      return false;
    }
    if (s == d) {
      ++self_loops;
      return false;
    }
    return true;
  }
  bool Same(const ScanTally& o) const {
    return edges == o.edges && hash == o.hash && self_loops == o.self_loops && bad_edge == o.bad_edge && !uneven &&
           !o.uneven;
  }
};

Status ScanChanged(const ScanTally& first, const ScanTally& second) {
  char hashes[64];
  std::snprintf(hashes, sizeof hashes, "%016llx, then %016llx", static_cast<unsigned long long>(first.hash),
                static_cast<unsigned long long>(second.hash));
  return Status::Internal("the edge scan changed between its two passes: it fed " + Num(first.edges) + " edges, then " +
                          Num(second.edges) + " (hash of the pairs " + hashes + ")" +
                          (second.uneven ? "; a chunk's src and dst differ in length" : ""));
}

// Calls the scan once with `per_edge(s, d)` for every edge that makes two adjacency entries,
// tallying every edge in `tally`.
template <typename PerEdge>
Status RunScan(const EdgeScan& scan, uint32_t n, ScanTally& tally, PhaseProgress& progress, PerEdge&& per_edge) {
  CGCN_RETURN_IF_ERROR(scan([&](std::span<const uint32_t> src, std::span<const uint32_t> dst) {
    if (src.size() != dst.size()) tally.uneven = true;
    const size_t m = std::min(src.size(), dst.size());
    for (size_t e = 0; e < m; ++e)
      if (tally.Add(src[e], dst[e], n)) per_edge(src[e], dst[e]);
    progress.Add(m);
  }));
  progress.Finish();
  return Status::Ok();
}

// Pass 1: count[v] = entries of row v over both directions, self loops skipped; count has
// N + 1 slots (the last becomes offsets[N]).
Status CountDegrees(uint32_t n, const EdgeScan& scan, std::vector<uint64_t>& count, ScanTally& tally,
                    const ProgressFn& fn, uint64_t edges_hint) {
  count.assign(size_t{n} + 1, 0);
  PhaseProgress progress(fn, "count degrees", edges_hint);
  CGCN_RETURN_IF_ERROR(RunScan(scan, n, tally, progress, [&](uint32_t s, uint32_t d) {
    ++count[s];
    ++count[d];
  }));
  if (tally.uneven) return Status::Internal("the edge scan fed a chunk whose src and dst differ in length");
  if (tally.bad_edge != kNoEdge)
    return Status::InvalidInput("edge " + Num(tally.bad_edge) + " (counting from 0): (" + Num(tally.bad_src) + ", " +
                                Num(tally.bad_dst) + ") has an endpoint outside the " + Num(n) + " nodes (ids 0 to " +
                                (n == 0 ? std::string("none") : Num(n - 1)) + ")");
  return Status::Ok();
}

// Places one bucket's entries by row (a counting sort over the degrees). `cursor` is
// count[lo, hi): on entry the rows' degrees, turned into each row's end within the bucket; each
// entry goes to --cursor[v - lo], so that when all are placed cursor[v - lo] is row v's start.
// Writes stay inside rows[0, capacity) whatever is fed; complete() tells whether exactly the
// planned entries came.
class RowFiller {
 public:
  RowFiller(std::span<uint64_t> cursor, uint32_t lo, uint32_t* rows, uint64_t capacity)
      : cursor_(cursor), lo_(lo), rows_(rows), capacity_(capacity) {
    uint64_t end = 0;
    for (uint64_t& c : cursor_) c = end += c;
    if (end != capacity_) overflow_ = true;
  }
  void Place(uint32_t v, uint32_t u) {
    const uint64_t i = uint64_t{v} - lo_;
    if (v < lo_ || i >= cursor_.size() || cursor_[i] == 0) {
      overflow_ = true;
      return;
    }
    rows_[--cursor_[i]] = u;
    ++placed_;
  }
  bool complete() const { return !overflow_ && placed_ == capacity_; }

 private:
  std::span<uint64_t> cursor_;
  uint32_t lo_;
  uint32_t* rows_;
  uint64_t capacity_, placed_ = 0;
  bool overflow_ = false;
};

// One bucket's rows placed in rows[0, total): row i occupies [start[i], start[i + 1]), the last
// up to `total`. Sorts and deduplicates every row (oneTBB, in blocks of rows), packs the rows to
// the front of `rows` in order and leaves start[i] = row i's deduplicated length. Returns the
// entries kept.
uint64_t SortDedupRows(std::span<uint64_t> start, uint32_t* rows, uint64_t total) {
  constexpr size_t kBlock = 1024;
  const size_t n = start.size(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<uint64_t> begin(blocks + 1), kept(blocks);
  for (size_t b = 0; b < blocks; ++b) begin[b] = start[b * kBlock];
  begin[blocks] = total;
  tbb::parallel_for(size_t{0}, blocks, [&](size_t b) {
    const size_t first = b * kBlock, last = std::min(n, first + kBlock);
    uint64_t out = begin[b];
    for (size_t i = first; i < last; ++i) {
      // start[i + 1] is read before row i + 1 overwrites it with its length.
      uint32_t* rb = rows + start[i];
      uint32_t* re = rows + (i + 1 < last ? start[i + 1] : begin[b + 1]);
      std::sort(rb, re);
      const auto len = static_cast<uint64_t>(std::unique(rb, re) - rb);
      if (rows + out != rb) std::memmove(rows + out, rb, sizeof(uint32_t) * len);
      out += len;
      start[i] = len;
    }
    kept[b] = out - begin[b];
  });
  uint64_t out = 0;
  for (size_t b = 0; b < blocks; ++b) {
    if (out != begin[b]) std::memmove(rows + out, rows + begin[b], sizeof(uint32_t) * kept[b]);
    out += kept[b];
  }
  return out;
}

// Pass 2 with one bucket: every entry straight from the scan into rows[0, entries).
Status FillOneBucket(uint32_t n, const EdgeScan& scan, std::vector<uint64_t>& count, const ScanTally& first,
                     uint32_t* rows, uint64_t entries, const ProgressFn& fn) {
  RowFiller filler(std::span<uint64_t>(count.data(), n), 0, rows, entries);
  ScanTally second;
  PhaseProgress progress(fn, "fill rows", first.edges);
  CGCN_RETURN_IF_ERROR(RunScan(scan, n, second, progress, [&](uint32_t s, uint32_t d) {
    filler.Place(s, d);
    filler.Place(d, s);
  }));
  if (!second.Same(first) || !filler.complete()) return ScanChanged(first, second);
  return Status::Ok();
}

// The files a build makes: removed when it fails (the destructor), bucket files also as soon as
// they are read.
class ScratchFiles {
 public:
  ScratchFiles() = default;
  ScratchFiles(const ScratchFiles&) = delete;
  ScratchFiles& operator=(const ScratchFiles&) = delete;
  ~ScratchFiles() {
    for (const std::string& p : paths_) {
      std::error_code ec;
      fs::remove(p, ec);
    }
  }
  void Add(const std::string& path) { paths_.push_back(path); }
  Status Remove(const std::string& path) {
    paths_.erase(std::remove(paths_.begin(), paths_.end(), path), paths_.end());
    std::error_code ec;
    if (!fs::remove(path, ec) || ec) return Status::IoError(path + ": cannot remove: " + (ec ? ec.message() : "gone"));
    return Status::Ok();
  }
  void Keep() { paths_.clear(); }

 private:
  std::vector<std::string> paths_;
};

std::string BucketFileName(size_t k) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "csr-bucket-%06zu.u32x2", k);
  return buf;
}

}  // namespace

uint64_t CsrBuildPlan::peak_bytes() const {
  return count_bytes + std::max(bucket_bytes + read_buffer_bytes, distribute_bytes);
}

uint64_t LengthsToOffsets(std::span<uint64_t> lengths, uint64_t base) {
  for (uint64_t& l : lengths) {
    const uint64_t len = l;
    l = base;
    base += len;
  }
  return base;
}

Result<CsrBuildPlan> PlanCsrBuild(std::span<const uint64_t> degrees, uint64_t mem_budget, uint64_t io_buffer_bytes) {
  const uint64_t n = degrees.size();
  if (n > UINT32_MAX) return Status::Internal("PlanCsrBuild: more than 2^32 - 1 nodes");
  CsrBuildPlan p;
  p.budget = mem_budget;
  p.count_bytes = 8 * (n + 1);
  uint64_t max_row = 0, max_node = 0;
  for (uint64_t v = 0; v < n; ++v) {
    p.entries += degrees[v];
    if (degrees[v] > max_row) {
      max_row = degrees[v];
      max_node = v;
    }
  }
  const uint64_t avail = mem_budget > p.count_bytes ? mem_budget - p.count_bytes : 0;
  if (mem_budget == 0 || (mem_budget >= p.count_bytes && p.entries <= avail / 4)) {
    if (n != 0) p.buckets.push_back({0, static_cast<uint32_t>(n), p.entries});
    p.bucket_bytes = 4 * p.entries;
    return p;
  }
  uint64_t io = io_buffer_bytes != 0 ? io_buffer_bytes : kDefaultIoBufferBytes;
  io = std::max(kMinIoBufferBytes, std::min(io, avail / 8));
  io -= io % 8;
  const uint64_t row_bytes = 4 * max_row;
  if (avail < io + row_bytes) {
    const uint64_t need = p.count_bytes + row_bytes + io;
    return Status::InvalidArgument(
        "memory budget " + FormatBytes(mem_budget) + " (" + Num(mem_budget) +
        " bytes) is too small to build the CSR of " + Num(n) + " nodes on disk: the degree counts take " +
        Num(p.count_bytes) + " bytes (8 a node, plus 8), the largest row (node " + Num(max_node) + ", " + Num(max_row) +
        " entries before deduplication) " + Num(row_bytes) + " bytes, and an I/O buffer " + Num(io) +
        " bytes; at least " + Num(need) + " bytes (" + FormatBytes(need) + ") are needed");
  }
  const uint64_t cap = (avail - io) / 4;  // entries a bucket may hold; >= max_row
  uint64_t first = 0, sum = 0, largest = 0;
  auto close = [&](uint64_t end) {
    p.buckets.push_back({static_cast<uint32_t>(first), static_cast<uint32_t>(end), sum});
    largest = std::max(largest, sum);
    first = end;
    sum = 0;
  };
  for (uint64_t v = 0; v < n; ++v) {
    if (v > first && degrees[v] > cap - sum) close(v);
    sum += degrees[v];
  }
  close(n);
  const uint64_t k = p.buckets.size();
  if (k > kMaxCsrBuckets)
    return Status::InvalidArgument("memory budget " + FormatBytes(mem_budget) + " is too small to build the CSR of " +
                                   Num(n) + " nodes and " + Num(p.entries) + " adjacency entries on disk: it needs " +
                                   Num(k) + " buckets of at most " + Num(cap) + " entries, more than " +
                                   Num(kMaxCsrBuckets) + " (one scratch file open for each)");
  p.bucket_bytes = 4 * largest;
  p.read_buffer_bytes = io;
  const uint64_t per_bucket = std::max<uint64_t>(8, (io / k) / 8 * 8);
  p.distribute_bytes = per_bucket * k;
  if (p.distribute_bytes > avail)
    return Status::InvalidArgument("memory budget " + FormatBytes(mem_budget) + " is too small to build the CSR of " +
                                   Num(n) + " nodes on disk: " + Num(k) + " buckets need " + Num(p.distribute_bytes) +
                                   " bytes of distribution buffers besides the " + Num(p.count_bytes) +
                                   " bytes of degree counts");
  return p;
}

Result<CsrGraph> BuildSymmetricCsr(uint32_t num_nodes, std::span<const uint32_t> src, std::span<const uint32_t> dst,
                                   CsrBuildStats* stats) {
  if (src.size() != dst.size()) return Status::Internal("edge src/dst arrays differ in length");
  const EdgeScan scan = [&](const EdgeChunkSink& sink) {
    sink(src, dst);
    return Status::Ok();
  };
  const ProgressFn none;
  ScanTally first;
  std::vector<uint64_t> count;
  CGCN_RETURN_IF_ERROR(CountDegrees(num_nodes, scan, count, first, none, src.size()));
  uint64_t entries = 0;
  for (uint32_t v = 0; v < num_nodes; ++v) entries += count[v];
  CsrGraph g;
  g.num_nodes = num_nodes;
  g.neighbors.resize(entries);
  CGCN_RETURN_IF_ERROR(FillOneBucket(num_nodes, scan, count, first, g.neighbors.data(), entries, none));
  const std::span<uint64_t> rows(count.data(), num_nodes);
  g.neighbors.resize(SortDedupRows(rows, g.neighbors.data(), entries));
  g.neighbors.shrink_to_fit();
  count[num_nodes] = LengthsToOffsets(rows, 0);
  g.offsets = std::move(count);
  if (stats) {
    *stats = CsrBuildStats{};
    stats->input_edges = first.edges;
    stats->self_loops_removed = first.self_loops;
    stats->duplicates_removed = (entries - g.neighbors.size()) / 2;
    stats->buckets = num_nodes == 0 ? 0 : 1;
  }
  return g;
}

Result<MappedCsr> BuildExternalCsr(uint32_t num_nodes, const EdgeScan& scan, const ExternalCsrOptions& options,
                                   CsrBuildStats* stats) {
  const uint32_t n = num_nodes;
  const std::string& dir = options.scratch_dir;
  const std::string offsets_path = dir + "/" + kCsrOffsetsFile;
  const std::string neighbors_path = dir + "/" + kCsrNeighborsFile;
  ScratchFiles files;

  // Pass 1 and the plan.
  ScanTally first;
  std::vector<uint64_t> count;
  CGCN_RETURN_IF_ERROR(CountDegrees(n, scan, count, first, options.progress, options.num_edges_hint));
  CGCN_ASSIGN_OR_RETURN(const CsrBuildPlan plan, PlanCsrBuild(std::span<const uint64_t>(count.data(), n),
                                                              options.mem_budget, options.io_buffer_bytes));
  CsrBuildStats st;
  st.input_edges = first.edges;
  st.self_loops_removed = first.self_loops;
  st.buckets = static_cast<uint32_t>(plan.buckets.size());
  st.planned_peak_bytes = plan.peak_bytes();

  files.Add(neighbors_path);
  CGCN_ASSIGN_OR_RETURN(UniqueFd neighbors_fd, CreateFileForWrite(neighbors_path, CreateMode::kTruncate));
  std::vector<uint32_t> rows;
  uint64_t written = 0;  // entries in the neighbours file so far
  PhaseProgress sorting(options.progress, "sort rows", plan.entries);
  // Sorts and deduplicates a bucket placed in `rows`, appends it, turns its counts into offsets.
  auto finish_bucket = [&](const CsrBucket& b) -> Status {
    const std::span<uint64_t> cursor(count.data() + b.first_node, b.end_node - b.first_node);
    const uint64_t kept = SortDedupRows(cursor, rows.data(), b.entries);
    CGCN_RETURN_IF_ERROR(
        WriteAll(neighbors_fd.get(), neighbors_path, rows.data(), sizeof(uint32_t) * kept, sizeof(uint32_t) * written));
    written = LengthsToOffsets(cursor, written);
    sorting.Add(b.entries);
    return Status::Ok();
  };

  if (plan.buckets.size() <= 1) {
    // Pass 2: the one bucket straight from the scan.
    rows.resize(plan.entries);
    CGCN_RETURN_IF_ERROR(FillOneBucket(n, scan, count, first, rows.data(), plan.entries, options.progress));
    if (!plan.buckets.empty()) CGCN_RETURN_IF_ERROR(finish_bucket(plan.buckets[0]));
  } else {
    // Pass 2: the directed entries (src, dst) to one file per bucket through bounded buffers.
    const size_t k_count = plan.buckets.size();
    const size_t per_bucket = plan.distribute_bytes / k_count / sizeof(uint32_t);  // u32s, even
    std::vector<std::string> paths(k_count);
    std::vector<UniqueFd> fds(k_count);
    std::vector<uint64_t> bucket_bytes(k_count, 0), firsts(k_count);
    std::vector<std::vector<uint32_t>> buffers(k_count);
    for (size_t k = 0; k < k_count; ++k) {
      paths[k] = dir + "/" + BucketFileName(k);
      files.Add(paths[k]);
      CGCN_ASSIGN_OR_RETURN(fds[k], CreateFileForWrite(paths[k], CreateMode::kTruncate));
      buffers[k].reserve(per_bucket);
      firsts[k] = plan.buckets[k].first_node;
    }
    Status io_error;
    auto flush = [&](size_t k) {
      std::vector<uint32_t>& b = buffers[k];
      if (io_error.ok()) {
        io_error = WriteAll(fds[k].get(), paths[k], b.data(), sizeof(uint32_t) * b.size(), bucket_bytes[k]);
        bucket_bytes[k] += sizeof(uint32_t) * b.size();
      }
      b.clear();
    };
    auto push = [&](uint32_t v, uint32_t u) {
      const size_t k = static_cast<size_t>(std::upper_bound(firsts.begin(), firsts.end(), v) - firsts.begin()) - 1;
      std::vector<uint32_t>& b = buffers[k];
      b.push_back(v);
      b.push_back(u);
      if (b.size() >= per_bucket) flush(k);
    };
    ScanTally second;
    PhaseProgress distributing(options.progress, "distribute edges", first.edges);
    CGCN_RETURN_IF_ERROR(RunScan(scan, n, second, distributing, [&](uint32_t s, uint32_t d) {
      push(s, d);
      push(d, s);
    }));
    for (size_t k = 0; k < k_count; ++k) {
      flush(k);
      CGCN_RETURN_IF_ERROR(io_error);
      CGCN_RETURN_IF_ERROR(fds[k].Close(paths[k]));
    }
    std::vector<std::vector<uint32_t>>().swap(buffers);
    if (!second.Same(first)) return ScanChanged(first, second);
    for (size_t k = 0; k < k_count; ++k) {
      if (bucket_bytes[k] != 8 * plan.buckets[k].entries) return ScanChanged(first, second);
      st.bucket_file_bytes += bucket_bytes[k];
    }

    // Each bucket in turn: load (removing its file), place by row, sort, append.
    rows.resize(plan.bucket_bytes / sizeof(uint32_t));
    std::vector<uint32_t> buffer(plan.read_buffer_bytes / sizeof(uint32_t));
    const uint64_t buffer_entries = buffer.size() / 2;
    for (size_t k = 0; k < k_count; ++k) {
      const CsrBucket& b = plan.buckets[k];
      RowFiller filler(std::span<uint64_t>(count.data() + b.first_node, b.end_node - b.first_node), b.first_node,
                       rows.data(), b.entries);
      {
        CGCN_ASSIGN_OR_RETURN(const UniqueFd fd, OpenRegularFileForRead(paths[k]));
        for (uint64_t done = 0; done < b.entries;) {
          const uint64_t m = std::min(buffer_entries, b.entries - done);
          CGCN_RETURN_IF_ERROR(PreadExact(fd.get(), paths[k], buffer.data(), 8 * m, 8 * done));
          for (uint64_t i = 0; i < m; ++i) filler.Place(buffer[2 * i], buffer[2 * i + 1]);
          done += m;
        }
      }
      CGCN_RETURN_IF_ERROR(files.Remove(paths[k]));
      if (!filler.complete())
        return Status::Internal(paths[k] + ": the bucket file holds other entries than were distributed to it");
      CGCN_RETURN_IF_ERROR(finish_bucket(b));
    }
  }
  sorting.Finish();
  std::vector<uint32_t>().swap(rows);
  count[n] = written;
  CGCN_RETURN_IF_ERROR(neighbors_fd.Close(neighbors_path));
  files.Add(offsets_path);
  {
    CGCN_ASSIGN_OR_RETURN(UniqueFd fd, CreateFileForWrite(offsets_path, CreateMode::kTruncate));
    CGCN_RETURN_IF_ERROR(WriteAll(fd.get(), offsets_path, count.data(), sizeof(uint64_t) * count.size(), 0));
    CGCN_RETURN_IF_ERROR(fd.Close(offsets_path));
  }
  std::vector<uint64_t>().swap(count);
  st.duplicates_removed = (plan.entries - written) / 2;
  st.csr_file_bytes = 8 * (uint64_t{n} + 1) + 4 * written;
  CGCN_ASSIGN_OR_RETURN(MappedCsr csr, MappedCsr::Open(dir, n));
  files.Keep();
  if (stats) *stats = st;
  return csr;
}

Result<MappedCsr> MappedCsr::Open(const std::string& dir, uint32_t num_nodes) {
  const std::string op = dir + "/" + kCsrOffsetsFile, np = dir + "/" + kCsrNeighborsFile;
  CGCN_ASSIGN_OR_RETURN(MappedFile offsets, MappedFile::Open(op));
  CGCN_ASSIGN_OR_RETURN(MappedFile neighbors, MappedFile::Open(np));
  const uint64_t n = num_nodes, want = 8 * (n + 1), osize = offsets.bytes().size(), nsize = neighbors.bytes().size();
  if (osize != want)
    return Status::Corruption(op + ": " + Num(osize) + " bytes, expected " + Num(want) + " (" + Num(n + 1) +
                              " u64 offsets for " + Num(n) + " nodes)");
  if (nsize % 4 != 0)
    return Status::Corruption(np + ": " + Num(nsize) +
                              " bytes, not a whole number of u32 entries (a partial one at byte " +
                              Num(nsize - nsize % 4) + ")");
  const auto* o = reinterpret_cast<const uint64_t*>(offsets.bytes().data());
  if (o[0] != 0) return Status::Corruption(op + ": byte 0: the first offset is " + Num(o[0]) + ", expected 0");
  for (uint64_t v = 1; v <= n; ++v)
    if (o[v] < o[v - 1])
      return Status::Corruption(op + ": byte " + Num(8 * v) + ": offset " + Num(o[v]) + " (of node " + Num(v) +
                                ") is less than the one before it, " + Num(o[v - 1]));
  if (o[n] != nsize / 4)
    return Status::Corruption(op + ": byte " + Num(8 * n) + ": the last offset is " + Num(o[n]) + ", but " + np +
                              " holds " + Num(nsize / 4) + " entries (" + Num(nsize) + " bytes)");
  return MappedCsr(std::move(offsets), std::move(neighbors), num_nodes);
}

CsrView MappedCsr::view() const {
  const auto* o = reinterpret_cast<const uint64_t*>(offsets_.bytes().data());
  const auto* nb = neighbors_.bytes().empty() ? nullptr : reinterpret_cast<const uint32_t*>(neighbors_.bytes().data());
  return CsrView{num_nodes_, o, nb, 0};
}

}  // namespace cgcn
