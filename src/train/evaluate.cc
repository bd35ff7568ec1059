// Exact full-graph inference over the shards, layer by layer, within a memory limit.
//
// Activations live in "cluster order" (cluster c's nodes at rows [offset_c, offset_c + n_c)) in
// an activation store: a vector, or an unlinked memory-mapped temporary file when two
// [N x width] arrays do not fit the limit (PlanEvaluation decides).
// The store of layer l holds, per node, what its neighbours need and what the node itself needs,
// as planes of N rows: Z_l = H_l W_l [N x d], then (cluster-gcn, sage) R_l = H_l W_root_l [N x d],
// then (a residual layer) H_l itself [N x d_in].
// Pass 0 reads features and computes layer 0's planes and every node's full-graph aggregation
// scale: dinv = deg^-1/2 (gcn), 1 / deg (cluster-gcn), 1 / neighbours (sage), deg counting the
// self loop.
// Pass l works on blocks of consecutive clusters (sized by the plan): it decodes the block's
// adjacency and inter-cluster edges (every edge of the graph) and sorts each row's columns
// (unless the rows were kept from pass 0 or an earlier layer, or, spilled, saved by pass 0 to a
// rows file: RowsFile), and sums the row's P_l Z_l over its
// neighbors j and itself in ascending j (gcn: dinv_i dinv_j Z[j]; cluster-gcn: dinv_i Z[j], the
// self loop (1 + lambda) dinv_i; sage: dinv_i Z[j], no self loop), each element a chain of
// multiply-adds in that order (AccumulateRow, cgcn/sparse.h). In memory, a cluster's sums go to
// a thread's buffer and the cluster is finished at once, while they are in cache. A spilled Z_l
// is read in chunks of rows, in order, each chunk continuing every row's sum (kept for the whole
// block) where the previous one stopped, so the additions happen in the same order as in memory
// and the results are bitwise the same. Then R_l and b_l are added and, except after the last layer, the
// norm (evaluation mode), ReLU and the residual H_l give H_{l+1}, whose planes for layer l + 1
// go to the other store; the last pass takes the argmax and scores it.
#include "cgcn/evaluate.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>

#include "cgcn/batch.h"
#include "cgcn/byte_size.h"
#include "cgcn/comm.h"
#include "cgcn/sparse.h"
#include "cgcn/split.h"
#include "util/fd.h"
#include "util/huge_pages.h"
#include "util/parallel.h"
#include "util/threads.h"

namespace cgcn {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kMaxBlockBytes = 256 * kMiB;  // in memory, blocks larger than this gain nothing
constexpr uint64_t kMinChunkBytes = 64 * 1024;   // a chunk as small as this still works, slowly

uint64_t PageSize() {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// Creates an unlinked temporary file in tmp_dir for `what` (nothing is left behind, even after a
// kill); `path` receives its name, for messages.
Result<int> CreateUnlinkedTemp(const std::string& tmp_dir, const std::string& what, std::string* path) {
  std::string templ = (std::filesystem::path(tmp_dir) / "cgcn-eval-XXXXXX").string();
  const int fd = mkstemp(templ.data());
  if (fd < 0)
    return Status::IoError(tmp_dir + ": cannot create a temporary file for " + what + ": " + std::strerror(errno) +
                           " (set --tmp-dir)");
  unlink(templ.c_str());
  *path = templ + " (" + what + ", unlinked)";
  return fd;
}

// [num_rows x width] floats (width varies by pass and is at most the store's), in memory or
// in an unlinked temporary file mapped MAP_SHARED.
class ActivationStore {
 public:
  ActivationStore() = default;
  ActivationStore(const ActivationStore&) = delete;
  ActivationStore& operator=(const ActivationStore&) = delete;
  ~ActivationStore() {
    if (map_) munmap(map_, bytes_);
    if (fd_ >= 0) close(fd_);
  }

  // Memory one store of [rows x width] holds in memory (spilled: file pages, read in chunks).
  static uint64_t PlannedBytes(uint64_t rows, uint32_t width) { return rows * width * sizeof(float); }

  // Spilled, at most `unflushed_limit` bytes are written back without being waited for (Written).
  Status Init(uint64_t floats, bool spill, const std::string& tmp_dir, uint64_t unflushed_limit) {
    bytes_ = floats * sizeof(float);
    unflushed_limit_ = unflushed_limit;
    if (!spill) {
      // Not zeroed: every plane is written for every row before it is read, and zeroing would
      // be a single-threaded pass (with the first touch of every page) over two [N x width] arrays.
      // An array of this size kept from an earlier evaluation (EvalReuse) is used as it is.
      if (memory_.size() != floats) memory_ = HugePageArray<float>(floats);  // huge pages: far fewer first-touch faults
      data_ = memory_.get();
      return Status::Ok();
    }
    CGCN_ASSIGN_OR_RETURN(fd_, CreateUnlinkedTemp(tmp_dir, "spilled evaluation activations", &path_));
    if (bytes_ == 0) return Status::Ok();
    // Reserve the blocks now: a full disk is an error here, not a SIGBUS on a later store.
    if (const int e = posix_fallocate(fd_, 0, static_cast<off_t>(bytes_)); e != 0)
      return Status::IoError(tmp_dir + ": cannot reserve " + std::to_string(bytes_) +
                             " bytes for spilled evaluation activations: " + std::strerror(e) + " (set --tmp-dir)");
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED)
      return Status::IoError(tmp_dir + ": cannot map the spilled activations: " + std::strerror(errno));
    map_ = p;
    data_ = static_cast<float*>(p);
    return Status::Ok();
  }

  float* data() const { return data_; }
  bool spilled() const { return map_ != nullptr; }
  uint64_t memory_bytes() const { return memory_.size() * sizeof(float); }  // in memory: the array's bytes

  // Stores floats [begin, begin + count) from src. Spilled, with pwrite and not through the
  // mapping: a page written whole is then never read first, where the first write through the
  // mapping faults each new page in, zero-filled from the file's unwritten extent, before writing
  // it (13% of the spilled products evaluation's samples); the page cache keeps the data for the
  // mapping's reads.
  Status Write(uint64_t begin, const float* src, uint64_t count) {
    if (!spilled()) {
      if (src != data_ + begin) std::copy(src, src + count, data_ + begin);  // (pass 0 may write in place)
      return Status::Ok();
    }
    CGCN_RETURN_IF_ERROR(PwriteAll(fd_, path_, src, count * sizeof(float), begin * sizeof(float)));
    Written(begin, begin + count);
    return Status::Ok();
  }

  // Waits until everything written so far is on disk (also at the end of each block).
  void Flush() {
    if (!spilled() || bytes_ == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    StartWriteBack();
    Wait();
  }
  // Floats [begin, end) are about to be read: start reading them in.
  void WillRead(uint64_t begin, uint64_t end) const {
    if (!spilled()) return;
    auto [b, e] = Outer(begin, end);
    if (b < e) madvise(Byte(b), e - b, MADV_WILLNEED);
  }
  // Done reading floats [begin, end): drop them from the resident set (the file keeps them).
  void Drop(uint64_t begin, uint64_t end) const {
    if (!spilled()) return;
    auto [b, e] = Outer(begin, end);
    if (b < e) madvise(Byte(b), e - b, MADV_DONTNEED);
  }

 private:
  // Floats [begin, end) were written (Write). Once half the limit given to Init is written, those
  // pages are unmapped where mapped (the page cache keeps them, dirty) and their write-back is
  // started without waiting (the computation goes on while the disk writes), after waiting for
  // the previous batch's: the dirty pages, written back or not, stay within the limit, so that the
  // page cache a memory cgroup charges for them and cannot reclaim before the disk has them stays
  // within the plan (the spill chunk's share, unused while planes are written). The order and the
  // batching matter on a VM: writing back a page that is still mapped write-protects it and
  // interrupts every other core to flush its TLB, page by page, and so does each MADV_DONTNEED,
  // once per call (on 200k the two took 19% of the spilled evaluation's samples when each
  // cluster's planes were dropped and written back on their own).
  void Written(uint64_t begin, uint64_t end) {
    if (!spilled()) return;
    auto [b, e] = Outer(begin, end);
    if (b >= e) return;
    std::lock_guard<std::mutex> lock(mu_);
    pending_lo_ = std::min(pending_lo_, b);
    pending_hi_ = std::max(pending_hi_, e);
    pending_bytes_ += e - b;
    if (pending_bytes_ > unflushed_limit_ / 2) {
      // The previous batch first: the two batches' dirty pages together stay within the limit.
      if (unflushed_ > 0) Wait();
      StartWriteBack();
    }
  }
  // Unmaps the pages written since the last call (MADV_DONTNEED on a shared file mapping loses
  // nothing: the page cache keeps each page and the dirty state its write fault set; a thread
  // still writing into the range faults the page in again) and starts writing them back.
  void StartWriteBack() {
    if (pending_lo_ < pending_hi_) {
      madvise(Byte(pending_lo_), pending_hi_ - pending_lo_, MADV_DONTNEED);
      sync_file_range(fd_, static_cast<off_t>(pending_lo_), static_cast<off_t>(pending_hi_ - pending_lo_),
                      SYNC_FILE_RANGE_WRITE);
      unflushed_ += pending_bytes_;
    }
    pending_lo_ = bytes_;
    pending_hi_ = 0;
    pending_bytes_ = 0;
  }
  // Waits for every write-back started so far.
  void Wait() {
    unflushed_ = 0;
    sync_file_range(fd_, 0, static_cast<off_t>(bytes_),
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  }

  // The byte range of floats [begin, end) widened to whole pages.
  std::pair<uint64_t, uint64_t> Outer(uint64_t begin, uint64_t end) const {
    const uint64_t page = PageSize();
    const uint64_t b = begin * sizeof(float) / page * page;
    const uint64_t e = std::min(bytes_, (end * sizeof(float) + page - 1) / page * page);
    return {b, e};
  }
  std::byte* Byte(uint64_t offset) const { return static_cast<std::byte*>(map_) + offset; }

  HugePageArray<float> memory_;
  std::mutex mu_;           // guards the write-back state below (Written runs on every thread)
  uint64_t unflushed_ = 0;  // bytes whose write-back was started since the last wait
  uint64_t pending_lo_ = UINT64_MAX, pending_hi_ = 0;  // byte range written since the last StartWriteBack
  uint64_t pending_bytes_ = 0;                         // bytes written in it
  uint64_t unflushed_limit_ = 0;
  float* data_ = nullptr;
  void* map_ = nullptr;
  uint64_t bytes_ = 0;
  int fd_ = -1;
  std::string path_;  // for messages
};

// One block's rows: sorted columns (global, cluster order, self included), labels for scoring.
struct BlockRows {
  std::vector<uint64_t> offsets;  // [R + 1] into columns
  std::vector<uint32_t> columns;
  std::vector<uint64_t> cursor;  // [R] next entry to add (chunked sums)
  std::vector<uint32_t> next;    // [R] that entry's column (UINT32_MAX once the row is done)
  std::vector<uint32_t> node_ids, labels, label_bits;
  std::vector<uint8_t> split;
  // Kept evaluations in memory (EvalReuse): each entry's weight, computed by the first layer that
  // sums the rows and read by the others and by later evaluations (empty until then).
  std::vector<float> weights;

  // Memory a block of `rows` rows with `entries` directed edges needs, with the block's sums
  // (width floats per row): per row offsets, cursor and next column, labels, node ids and split;
  // per column entry 4 bytes. (A cluster's new activations are written back and dropped as soon
  // as they are computed.)
  static uint64_t PlannedBytes(uint64_t rows, uint64_t entries, uint32_t width) {
    return rows * (uint64_t{width} * sizeof(float) + 16 + 4 + 9) + (entries + rows) * sizeof(uint32_t);
  }
  // Bytes the arrays hold (their capacity).
  uint64_t HeldBytes() const {
    auto bytes = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
    return bytes(offsets) + bytes(columns) + bytes(cursor) + bytes(next) + bytes(node_ids) + bytes(labels) +
           bytes(label_bits) + bytes(split) + bytes(weights);
  }
};

// Spilled with several blocks: each block's rows, built by pass 0 from its own decode, are
// written to an unlinked temporary file and read back for each layer, instead of being decoded
// and sorted again for every layer (2.1-2.4 s a layer on products under --mem-budget 512M). The
// file is written once and read once per layer, both in order. A block's write-back is started
// when it is saved and waited for before the next block is saved, so at most one block's rows
// are dirty in the page cache; pass 0's rows hold no sums, so that block and the one being built
// together take less than the plan's block share.
class RowsFile {
 public:
  Status Init(const std::string& tmp_dir, size_t num_blocks) {
    CGCN_ASSIGN_OR_RETURN(const int fd, CreateUnlinkedTemp(tmp_dir, "spilled evaluation rows", &path_));
    fd_ = UniqueFd(fd);
    saved_.assign(num_blocks, Extent{});
    return Status::Ok();
  }
  bool enabled() const { return fd_.valid(); }

  // Saves block b's rows, which hold the clusters `range`.
  Status Save(size_t b, std::pair<uint32_t, uint32_t> range, const BlockRows& rows) {
    CGCN_RETURN_IF_ERROR(WaitWriteBack());
    Extent x;
    x.range = range;
    x.at = end_;
    x.sizes = {rows.offsets.size(), rows.columns.size(),    rows.node_ids.size(),
               rows.labels.size(),  rows.label_bits.size(), rows.split.size()};
    uint64_t at = end_;
    auto put = [&](const auto& v) -> Status {
      const uint64_t n = v.size() * sizeof(v[0]);
      CGCN_RETURN_IF_ERROR(PwriteAll(fd_.get(), path_, v.data(), n, at));
      at += n;
      return Status::Ok();
    };
    CGCN_RETURN_IF_ERROR(put(rows.offsets));
    CGCN_RETURN_IF_ERROR(put(rows.columns));
    CGCN_RETURN_IF_ERROR(put(rows.node_ids));
    CGCN_RETURN_IF_ERROR(put(rows.labels));
    CGCN_RETURN_IF_ERROR(put(rows.label_bits));
    CGCN_RETURN_IF_ERROR(put(rows.split));
    sync_file_range(fd_.get(), static_cast<off_t>(end_), static_cast<off_t>(at - end_), SYNC_FILE_RANGE_WRITE);
    end_ = at;
    saved_[b] = x;
    return Status::Ok();
  }
  // Waits for the last saved block's write-back (at the end of pass 0).
  Status WaitWriteBack() {
    if (end_ > 0 &&
        sync_file_range(fd_.get(), 0, static_cast<off_t>(end_),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
      return Status::IoError(path_ + ": cannot write back: " + std::strerror(errno));
    return Status::Ok();
  }
  // Whether block b's rows for `range` were saved.
  bool Has(size_t b, std::pair<uint32_t, uint32_t> range) const {
    return enabled() && saved_[b].range == range && saved_[b].range.first != saved_[b].range.second;
  }
  // Reads block b's rows back into `rows` (within their reserved capacity).
  Status Load(size_t b, BlockRows& rows) const {
    const Extent& x = saved_[b];
    uint64_t at = x.at;
    auto get = [&](auto& v, uint64_t count) -> Status {
      v.resize(count);
      const uint64_t n = count * sizeof(v[0]);
      CGCN_RETURN_IF_ERROR(PreadExact(fd_.get(), path_, v.data(), n, at));
      at += n;
      return Status::Ok();
    };
    CGCN_RETURN_IF_ERROR(get(rows.offsets, x.sizes[0]));
    CGCN_RETURN_IF_ERROR(get(rows.columns, x.sizes[1]));
    CGCN_RETURN_IF_ERROR(get(rows.node_ids, x.sizes[2]));
    CGCN_RETURN_IF_ERROR(get(rows.labels, x.sizes[3]));
    CGCN_RETURN_IF_ERROR(get(rows.label_bits, x.sizes[4]));
    return get(rows.split, x.sizes[5]);
  }
  uint64_t bytes() const { return end_; }

 private:
  struct Extent {
    std::pair<uint32_t, uint32_t> range{0, 0};
    uint64_t at = 0;
    std::array<uint64_t, 6> sizes{};
  };
  UniqueFd fd_;
  std::string path_;
  std::vector<Extent> saved_;
  uint64_t end_ = 0;
};

// What each thread holds: a decoder, a decoded cluster, for a layer that aggregates first one
// cluster's product of its sums with W_l, the weights of the row it sums, and (in memory) one
// cluster's sums.
struct EvalLocal {
  ShardDecoder decoder;
  ClusterData data;
  ClusterView view;             // of data, once decoded
  std::vector<float> features;  // a cached cluster's features, normalized (the cache's copy stays as decoded)
  std::vector<float> product;
  std::vector<float> weights;  // one row's entries' weights (grows to the longest row)
  std::vector<float> sums;     // in memory: one cluster's sums [rows x sum width]
  std::vector<float> planes;   // spilled: one cluster's product for a plane, before it is written

  // Memory one thread holds at most: the decoded cluster and its mapped shard (of the largest
  // such), one cluster's new activations (max_rows x width), resident until written back,
  // (product_width > 0) its product buffer, max_rows x product_width, (sums_width > 0) its sums,
  // max_rows x sums_width, and the weights of the longest row.
  static uint64_t PlannedBytes(uint64_t max_decoded, uint64_t max_file, uint64_t max_rows, uint32_t width,
                               uint32_t product_width, uint32_t sums_width, uint64_t max_row_entries) {
    return max_decoded + max_file +
           (max_rows * (uint64_t{width} + product_width + sums_width) + max_row_entries) * sizeof(float);
  }
};

uint32_t Width(const GcnConfig& cfg) {
  const std::vector<uint32_t> dims = cfg.Dims();
  uint32_t width = 0;
  for (size_t l = 1; l < dims.size(); ++l) width = std::max(width, dims[l]);
  return width;
}

// Whether layer l aggregates its input before the weight, (P H_l) W_l, instead of P (H_l W_l):
// the same function, with the full-graph sums (the evaluation's costliest part) at the narrower
// width. So when its input is narrower than its output (layer 0 of a model whose features are
// fewer than its hidden units, as training computes it too), and never for gat, whose attention
// weighs H_l W_l.
bool AggregateFirst(const GcnConfig& cfg, uint32_t l) {
  const std::vector<uint32_t> dims = cfg.Dims();
  return cfg.kind != LayerKind::kGat && dims[l] < dims[l + 1];
}

// Floats per node of layer l's first plane, the one the sums read: H_l W_l, or H_l itself when
// the layer aggregates first.
uint32_t SumWidth(const GcnConfig& cfg, uint32_t l) {
  const std::vector<uint32_t> dims = cfg.Dims();
  return AggregateFirst(cfg, l) ? dims[l] : dims[l + 1];
}

// Floats per node in layer l's store: Z (SumWidth), then R (root weight) or the attention scalars
// (gat: src and dst, a float per head each), then the residual input.
uint32_t PlaneWidth(const GcnConfig& cfg, uint32_t l) {
  const std::vector<uint32_t> dims = cfg.Dims();
  const uint32_t att = cfg.kind == LayerKind::kGat ? 2 * cfg.HeadsAt(l) : 0;
  return SumWidth(cfg, l) + (cfg.HasRoot() ? dims[l + 1] : 0) + att + (cfg.ResidualAt(l) ? dims[l] : 0);
}

// Floats per row of a thread's product buffer: the widest output of a layer that aggregates first.
uint32_t ProductWidth(const GcnConfig& cfg) {
  const std::vector<uint32_t> dims = cfg.Dims();
  uint32_t width = 0;
  for (uint32_t l = 0; l < cfg.layers; ++l)
    if (AggregateFirst(cfg, l)) width = std::max(width, dims[l + 1]);
  return width;
}

// Floats per node in an activation store: the widest layer's planes (Width for a plain GCN).
uint32_t StoreWidth(const GcnConfig& cfg) {
  uint32_t width = 0;
  for (uint32_t l = 0; l < cfg.layers; ++l) width = std::max(width, PlaneWidth(cfg, l));
  return width;
}

// Floats per block row: its sums and the planes it reads for itself (R, the residual input; gat:
// its dst scalars, and the softmax's maximum and denominator per head).
// (The planes beyond the sums are PlaneWidth - SumWidth wide. Subtracting the output width
// instead wrapped around, unsigned, for a layer that aggregates its narrower input first: on a
// 100 -> 256 model the block rows were planned 100 floats wide while their sums take 256, and a
// spilled products evaluation under --mem-budget 1G peaked at 1.75 GB.)
uint32_t BlockWidth(const GcnConfig& cfg) {
  uint32_t self = 0;
  for (uint32_t l = 0; l < cfg.layers; ++l)
    self = std::max(self, PlaneWidth(cfg, l) - SumWidth(cfg, l) + (cfg.kind == LayerKind::kGat ? cfg.HeadsAt(l) : 0));
  return Width(cfg) + self;
}

}  // namespace

// What an evaluation kept (EvalReuse), and what it was built for.
struct EvalReuse::State {
  const ShardDirectory* shards = nullptr;  // the rows and degree scales are those of these shards,
  uint64_t num_nodes = 0;                  // with these counts,
  LayerKind kind = LayerKind::kGcn;        // degree scales of this layer kind,
  std::vector<uint32_t> blocks;            // and rows of these blocks
  bool rows_valid = false;                 // set by an evaluation that completed
  ActivationStore store[2];
  std::vector<float> dinv;
  BlockRows block_rows;                             // one block's rows
  std::vector<BlockRows> kept_rows;                 // or each block's (EvalPlan::kept_rows_bytes)
  std::vector<std::pair<uint32_t, uint32_t>> held;  // the clusters each block's rows hold
};

EvalReuse::EvalReuse() : state_(std::make_unique<State>()) {}
EvalReuse::~EvalReuse() = default;
uint64_t EvalReuse::bytes() const {
  uint64_t b = state_->store[0].memory_bytes() + state_->store[1].memory_bytes() +
               state_->dinv.capacity() * sizeof(float) + state_->block_rows.HeldBytes();
  for (const BlockRows& r : state_->kept_rows) b += r.HeldBytes();
  return b;
}
bool EvalReuse::holds_rows() const { return state_->rows_valid; }
void EvalReuse::Clear() { state_ = std::make_unique<State>(); }

std::string SpillDirectory(const EvalOptions& options) {
  if (!options.tmp_dir.empty()) return options.tmp_dir;
  if (const char* t = std::getenv("TMPDIR"); t && *t) return t;
  std::error_code ec;
  const auto p = std::filesystem::temp_directory_path(ec);
  return ec ? "/tmp" : p.string();
}

Result<EvalPlan> PlanEvaluation(const Manifest& m, const GcnConfig& cfg, const EvalOptions& options,
                                bool with_predictions, uint32_t threads) {
  EvalPlan plan;
  const uint32_t store_width = StoreWidth(cfg);
  const uint64_t N = m.num_nodes;
  threads = std::max<uint32_t>(1, threads);
  uint64_t max_decoded = 0, max_file = 0, max_rows = 0, max_row_entries = 0;
  for (const ShardInfo& s : m.shards) {
    max_rows = std::max<uint64_t>(max_rows, s.num_nodes);
    max_decoded = std::max(max_decoded, ClusterData::PlannedBytes(s));
    max_file = std::max(max_file, s.file_size);
    max_row_entries = std::max(max_row_entries, s.intra_entries + s.inter_entries + 1);  // bounds the longest row
  }
  // In memory (and not gat), each cluster's sums are computed into a thread's buffer and finished
  // at once (`fused`): a block row holds its structure only. Spilled (or gat) a block holds every
  // row's sums, continued chunk by chunk of Z_l (BlockWidth floats per row).
  auto plan_for = [&](bool fused, uint32_t* width, uint64_t* fixed, uint64_t* max_block) {
    *width = fused ? 0 : BlockWidth(cfg);
    *max_block = 0;
    for (const ShardInfo& s : m.shards)
      *max_block =
          std::max(*max_block, BlockRows::PlannedBytes(s.num_nodes, s.intra_entries + s.inter_entries, *width));
    // Degrees (dinv), predictions, probabilities, what each thread holds, and the multi-label
    // scores kept for ROC-AUC (SplitScorer).
    *fixed = N * sizeof(float) + (with_predictions ? N * sizeof(Prediction) : 0) +
             (options.probabilities ? N * cfg.out_dim * sizeof(float) : 0) +
             threads * EvalLocal::PlannedBytes(max_decoded, max_file, max_rows, store_width, ProductWidth(cfg),
                                               fused ? Width(cfg) : 0, max_row_entries) +
             SplitScorer::PlannedBytes(m.num_valid, m.num_test, m.label_tasks);
  };
  // Spilled (the least memory that works: one cluster per block), then in memory.
  uint32_t spill_width = 0, width = 0;
  uint64_t spill_fixed = 0, spill_max_block = 0, max_block = 0;
  plan_for(false, &spill_width, &spill_fixed, &spill_max_block);
  plan.min_bytes = spill_fixed + spill_max_block + kMinChunkBytes;
  plan.fused = cfg.kind != LayerKind::kGat;
  plan_for(plan.fused, &width, &plan.fixed_bytes, &max_block);
  plan.activation_bytes = 2 * ActivationStore::PlannedBytes(N, store_width);
  const uint64_t M = options.memory_bytes;
  const uint64_t max_block_bytes = options.max_block_bytes > 0 ? options.max_block_bytes : kMaxBlockBytes;
  if (M == 0 || plan.fixed_bytes + plan.activation_bytes + std::min(max_block_bytes, max_block) <= M) {
    plan.block_bytes =
        M == 0 ? max_block_bytes : std::min(max_block_bytes, M - plan.fixed_bytes - plan.activation_bytes);
  } else {
    plan.spill = true;
    plan.fused = false;
    width = spill_width;
    plan.fixed_bytes = spill_fixed;
    max_block = spill_max_block;
    const uint64_t need = plan.min_bytes;
    if (M < need)
      return Status::InvalidArgument(
          "evaluation cannot fit in " + FormatBytes(M) + ": it needs at least " + FormatBytes(need) + " (" +
          FormatBytes(plan.fixed_bytes) + " for degrees, predictions and decoding on " + std::to_string(threads) +
          " threads, " + FormatBytes(max_block) + " for the largest cluster's rows and edges at width " +
          std::to_string(width) + ", " + FormatBytes(kMinChunkBytes) + " for a chunk of spilled activations)");
    // Each block reads all of Z once, so blocks get most of the memory; chunks only bound how
    // much of Z is resident at once.
    const uint64_t rest = M - plan.fixed_bytes;
    plan.chunk_bytes = std::clamp<uint64_t>(rest / 8, kMinChunkBytes, rest - max_block);
    plan.block_bytes = rest - plan.chunk_bytes;
  }
  plan.block_width = width;
  plan.blocks.push_back(0);
  uint64_t rows = 0, entries = 0;
  for (uint32_t c = 0; c < m.num_parts; ++c) {
    const ShardInfo& s = m.shards[c];
    const uint64_t r2 = rows + s.num_nodes, e2 = entries + s.intra_entries + s.inter_entries;
    if (c > plan.blocks.back() && BlockRows::PlannedBytes(r2, e2, width) > plan.block_bytes) {
      plan.blocks.push_back(c);
      rows = s.num_nodes;
      entries = s.intra_entries + s.inter_entries;
    } else {
      rows = r2;
      entries = e2;
    }
  }
  plan.blocks.push_back(m.num_parts);
  plan.peak_bytes = plan.fixed_bytes + plan.block_bytes + (plan.spill ? plan.chunk_bytes : plan.activation_bytes);
  // In memory with several blocks, each block's rows (columns, offsets, labels: the graph's
  // structure, about 4 bytes per edge) are kept for the next layers when they fit, instead of
  // being decoded and sorted again for every layer (1.4 s a layer on products). One block keeps
  // its rows anyway.
  uint64_t all_entries = 0;
  for (const ShardInfo& s : m.shards) all_entries += s.intra_entries + s.inter_entries;
  const uint64_t all_rows = BlockRows::PlannedBytes(N, all_entries, 0);
  if (!plan.spill && plan.blocks.size() > 2 && (M == 0 || plan.peak_bytes + all_rows <= M)) {
    plan.kept_rows_bytes = all_rows;
    plan.peak_bytes += all_rows;
  }
  // What EvalReuse holds between evaluations: both arrays, every row, the degree scales and (when
  // each cluster is summed and finished at once) every entry's weight.
  if (!plan.spill && (plan.blocks.size() == 2 || plan.kept_rows_bytes > 0))
    plan.reuse_bytes =
        plan.activation_bytes + all_rows + N * sizeof(float) + (plan.fused ? (all_entries + N) * sizeof(float) : 0);
  return plan;
}

Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, const FeatureNorm& norm,
                                   std::vector<Prediction>* predictions, const ProgressFn& progress,
                                   const EvalOptions& options, EvalStats* stats, std::vector<float>* probabilities) {
  const Manifest& m = shards.manifest();
  const GcnConfig& cfg = model.config();
  if (options.probabilities != (probabilities != nullptr))
    return Status::Internal("EvaluateFullGraph: EvalOptions::probabilities and the probabilities output disagree");
  if (cfg.in_dim != m.feat_dim || cfg.out_dim < m.num_classes)
    return Status::InvalidArgument("model dimensions (" + std::to_string(cfg.in_dim) + " -> " +
                                   std::to_string(cfg.out_dim) + ") do not match the shards (" +
                                   std::to_string(m.feat_dim) + " features, " + std::to_string(m.num_classes) +
                                   " classes)");
  CGCN_ASSIGN_OR_RETURN(EvalPlan plan, PlanEvaluation(m, cfg, options, predictions != nullptr, RunnableThreads()));
  const std::vector<uint32_t> dims = cfg.Dims();
  const uint64_t N = m.num_nodes;
  const std::vector<uint64_t>& off = shards.cluster_offsets();
  const uint32_t width = Width(cfg), store_width = StoreWidth(cfg);
  const std::string tmp_dir = SpillDirectory(options);
  Comm& comm = Comm::World();
  const bool distributed = options.distributed && comm.distributed();
  const bool split = distributed && comm.AllAgree(!plan.spill);
  if (distributed && !split && comm.rank() != 0) return Accuracy{};
  const LayerKind kind = cfg.kind;
  const size_t num_blocks = plan.blocks.size() - 1;
  const bool keep_rows = plan.kept_rows_bytes > 0;
  // With a single block (the whole graph's rows in memory at once), or with every block's rows
  // kept (plan.kept_rows_bytes), the rows are built once, labels and split included, by pass 0
  // (which decodes the shards anyway) and serve every layer (the structure does not change
  // between layers), instead of being decoded and sorted again for every layer.
  const bool reuse_rows = num_blocks == 1 || keep_rows;
  // In memory and in one process, the arrays, rows and degree scales are options.reuse's, and
  // when an earlier evaluation of these shards left them (`reused`), pass 0 neither decodes the
  // structure nor builds rows. Any other evaluation leaves nothing kept.
  EvalReuse::State* kept = nullptr;
  if (options.reuse != nullptr) {
    if (plan.reuse_bytes > 0 && !split)  // in memory, rows that serve every layer (PlanEvaluation)
      kept = &options.reuse->state();
    else
      options.reuse->Clear();
  }
  const bool reused = kept != nullptr && kept->rows_valid && kept->shards == &shards && kept->num_nodes == N &&
                      kept->kind == kind && kept->blocks == plan.blocks;
  if (kept != nullptr) kept->rows_valid = false;  // until this evaluation completes
  ActivationStore own_store[2];
  ActivationStore* store = kept != nullptr ? kept->store : own_store;
  // Spilled, the write-back waits when a chunk's worth is under way: the planes are written while
  // no chunk of the other store is being read, so the chunk's share of the plan holds them.
  CGCN_RETURN_IF_ERROR(store[0].Init(N * store_width, plan.spill, tmp_dir, plan.chunk_bytes));
  CGCN_RETURN_IF_ERROR(store[1].Init(N * store_width, plan.spill, tmp_dir, plan.chunk_bytes));
  std::vector<float> own_dinv;
  std::vector<float>& dinv = kept != nullptr ? kept->dinv : own_dinv;
  if (!reused) dinv.assign(N, 0.0f);
  const bool root = cfg.HasRoot(), gat = kind == LayerKind::kGat;
  // Per layer, once: whether it aggregates first, and the width of the plane its sums read.
  std::vector<bool> agg_first_at(cfg.layers);
  std::vector<uint32_t> sum_width(cfg.layers);
  for (uint32_t l = 0; l < cfg.layers; ++l) {
    agg_first_at[l] = AggregateFirst(cfg, l);
    sum_width[l] = SumWidth(cfg, l);
  }
  // Layer l's planes in a store: Z at 0 (sum_width[l] wide: H_l W_l, or H_l when the layer
  // aggregates first), R (or gat's src then dst scalars) after it, the residual input after that
  // (in floats).
  auto r_plane = [&](uint32_t l) { return N * sum_width[l]; };
  auto att_plane = [&](uint32_t l) { return N * dims[l + 1]; };
  auto res_plane = [&](uint32_t l) {
    return N * sum_width[l] + (root ? N * dims[l + 1] : 0) + (gat ? 2 * N * cfg.HeadsAt(l) : 0);
  };
  tbb::enumerable_thread_specific<EvalLocal> locals;
  // Writes layer l's planes for rows [row0, row0 + n) of `st` from their input h [n x dims[l]]:
  // in memory the products go straight to the store, spilled through the thread's buffer
  // (ActivationStore::Write).
  auto write_planes = [&](ActivationStore& st, uint32_t l, uint64_t row0, ConstMatrixMap h) -> Status {
    const uint64_t d = dims[l + 1], d_in = dims[l], n = static_cast<uint64_t>(h.rows());
    const auto rows_n = h.rows();
    std::vector<float>& buffer = locals.local().planes;
    // Computes `product` [n x w] into the plane at `plane` (floats).
    auto product_into = [&](uint64_t plane, uint64_t w, auto&& product) -> Status {
      if (!st.spilled()) {
        product(MatrixMap(st.data() + plane + row0 * w, rows_n, static_cast<Eigen::Index>(w)));
        return Status::Ok();
      }
      buffer.resize(n * w);
      product(MatrixMap(buffer.data(), rows_n, static_cast<Eigen::Index>(w)));
      return st.Write(plane + row0 * w, buffer.data(), n * w);
    };
    if (agg_first_at[l]) {
      CGCN_RETURN_IF_ERROR(st.Write(row0 * d_in, h.data(), n * d_in));
    } else {
      CGCN_RETURN_IF_ERROR(product_into(0, d, [&](MatrixMap y) { MatMul(h, model.weight(l), y); }));
    }
    if (gat) {
      // The scalars weigh Z = H W, just computed: in the store (in memory) or in the buffer.
      const float* zc = st.spilled() ? buffer.data() : st.data() + row0 * d;
      const uint64_t heads = cfg.HeadsAt(l), p = att_plane(l);
      const auto hh = static_cast<Eigen::Index>(heads);
      std::vector<float> src(n * heads), dst(n * heads);
      model.AttentionScalars(l, ConstMatrixMap(zc, rows_n, static_cast<Eigen::Index>(d)),
                             MatrixMap(src.data(), rows_n, hh), MatrixMap(dst.data(), rows_n, hh));
      CGCN_RETURN_IF_ERROR(st.Write(p + row0 * heads, src.data(), n * heads));
      CGCN_RETURN_IF_ERROR(st.Write(p + N * heads + row0 * heads, dst.data(), n * heads));
    }
    if (root)
      CGCN_RETURN_IF_ERROR(product_into(r_plane(l), d, [&](MatrixMap y) { MatMul(h, model.root_weight(l), y); }));
    if (cfg.ResidualAt(l)) CGCN_RETURN_IF_ERROR(st.Write(res_plane(l) + row0 * d_in, h.data(), n * d_in));
    return Status::Ok();
  };
  // Under mpirun (EvalOptions::distributed): this rank's range of blocks for pass 0 and every
  // layer but the last, and the exchange of the rows the ranks computed.
  // The ranks split the clusters into consecutive ranges (not the plan's blocks, which depend on
  // each host's threads); each rank walks its own plan's blocks clipped to its range. If any rank
  // would spill, rank 0 evaluates alone.
  const uint32_t ranks = split ? comm.size() : 1, me = split ? comm.rank() : 0;
  const uint32_t P = shards.num_clusters();
  auto first_cluster = [&](uint32_t r) { return static_cast<uint32_t>(uint64_t{P} * r / ranks); };
  const uint32_t my_c0 = first_cluster(me), my_c1 = first_cluster(me + 1);
  std::vector<uint64_t> rank_row0(ranks), rank_rows(ranks);
  for (uint32_t r = 0; r < ranks; ++r) {
    rank_row0[r] = off[first_cluster(r)];
    rank_rows[r] = off[first_cluster(r + 1)] - rank_row0[r];
  }
  // Block b clipped to [lo, hi) of clusters: its first and end cluster (equal when outside).
  auto clip = [&](size_t b, uint32_t lo, uint32_t hi) {
    const uint32_t c0 = std::clamp(plan.blocks[b], lo, hi), c1 = std::clamp(plan.blocks[b + 1], lo, hi);
    return std::pair<uint32_t, uint32_t>(c0, c1);
  };
  // Every rank's rows of layer l's planes in `st`, to every rank.
  auto exchange_planes = [&](ActivationStore& st, uint32_t l) {
    comm.AllgatherRows(st.data(), sum_width[l], rank_row0, rank_rows);
    if (root) comm.AllgatherRows(st.data() + r_plane(l), dims[l + 1], rank_row0, rank_rows);
    if (gat) {
      comm.AllgatherRows(st.data() + att_plane(l), cfg.HeadsAt(l), rank_row0, rank_rows);
      comm.AllgatherRows(st.data() + att_plane(l) + N * cfg.HeadsAt(l), cfg.HeadsAt(l), rank_row0, rank_rows);
    }
    if (cfg.ResidualAt(l)) comm.AllgatherRows(st.data() + res_plane(l), dims[l], rank_row0, rank_rows);
  };
  const uint32_t L = cfg.layers;
  const uint64_t total_steps = uint64_t{L + 1} * shards.num_clusters();
  std::atomic<uint64_t> steps{0};
  std::mutex progress_mu;
  auto tick = [&]() {
    const uint64_t d = ++steps;
    if (progress) {
      std::lock_guard<std::mutex> lock(progress_mu);
      progress("evaluate", d, total_steps);
    }
  };
  const std::vector<uint32_t>& blocks = plan.blocks;
  // Starts reading block b's shards, those in [lo, hi) (this rank's).
  auto prefetch_block = [&](size_t b, uint32_t lo, uint32_t hi) {
    if (b + 1 >= blocks.size()) return;
    const auto [c0, c1] = clip(b, lo, hi);
    for (uint32_t c = c0; c < c1; ++c) shards.Prefetch(c);
  };
  uint64_t spill_read = 0, block_rows_built = 0, block_rows_loaded = 0;
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  std::vector<EvalPassTimes> pass_times(L);
  const auto pass0_start = Clock::now();

  // The rows of the block at hand; with plan.kept_rows_bytes, each block's own (kept_rows).
  BlockRows own_block_rows;
  std::vector<BlockRows> own_kept_rows;
  BlockRows& block_rows = kept != nullptr ? kept->block_rows : own_block_rows;
  std::vector<BlockRows>& kept_rows = kept != nullptr ? kept->kept_rows : own_kept_rows;
  if (!reused) {
    kept_rows.clear();
    kept_rows.resize(keep_rows ? num_blocks : 0);
  }
  // The block's sums [R x d], allocated once for the largest block and not zeroed here: the
  // parallel sums zero each row as they start it (gat: zeroed before its sweeps).
  HugePageArray<float> sums;
  std::vector<float> gat_max, gat_den;  // gat: per block row and head, the softmax's maximum and denominator
  // The metrics of each split (cgcn/metrics.h); the loss of each split per cluster, summed in
  // cluster order at the end (it does not depend on thread timing), and accuracy over every
  // labeled node, in a split or not.
  SplitScorer scorer(cfg.out_dim, m.label_tasks);
  const uint32_t label_words = LabelWords(m.label_tasks);
  const bool multi_label = m.label_tasks != 0;
  std::vector<uint64_t> split_count(3, 0);
  uint64_t labeled_correct = 0, labeled_count = 0;
  std::vector<double> cluster_loss(uint64_t{3} * m.num_parts, 0.0);
  std::mutex acc_mu;
  if (predictions) predictions->assign(N, Prediction{0, 0});
  if (probabilities) probabilities->assign(N * cfg.out_dim, 0.0f);
  // The block buffers get their largest size up front: grown block by block, a vector would
  // copy itself into a new allocation (and libstdc++ doubles capacity), so for a moment the old
  // and the new block's rows would both be resident, up to twice the planned block memory.
  // Column entries of cluster c's rows in a block: its neighbours (intra and inter) and itself.
  auto columns_of = [&](uint32_t c) {
    return m.shards[c].intra_entries + m.shards[c].inter_entries + m.shards[c].num_nodes;
  };
  {
    uint64_t max_rows = 0, max_entries = 0;
    for (size_t b = 0; b + 1 < blocks.size(); ++b) {
      uint64_t e = 0;
      for (uint32_t c = blocks[b]; c < blocks[b + 1]; ++c) e += columns_of(c);
      max_rows = std::max(max_rows, off[blocks[b + 1]] - off[blocks[b]]);
      max_entries = std::max(max_entries, e);
    }
    if (!keep_rows) {
      block_rows.offsets.reserve(max_rows + 1);
      block_rows.cursor.reserve(max_rows);
      block_rows.next.reserve(max_rows);
      block_rows.columns.reserve(max_entries);
      block_rows.node_ids.reserve(max_rows);
      block_rows.labels.reserve(max_rows);
      block_rows.label_bits.reserve(max_rows * label_words);
      block_rows.split.reserve(max_rows);
    }
    if (!plan.fused) sums = HugePageArray<float>(max_rows * width);
    if (cfg.kind == LayerKind::kGat) {
      gat_max.reserve(max_rows * cfg.heads);
      gat_den.reserve(max_rows * cfg.heads);
    }
  }
  // Rows of the block of clusters [c0, c1): degree counts first (from the manifest's layout),
  // then columns, each cluster's columns starting where the manifest's counts put them (the
  // returned starts, relative to the block's first entry). fill_rows then fills cluster c's.
  auto prepare_rows = [&](BlockRows& rows, uint32_t c0, uint32_t c1, bool with_labels) {
    const uint64_t R = off[c1] - off[c0];
    rows.offsets.assign(R + 1, 0);
    rows.columns.clear();
    rows.weights.clear();
    rows.node_ids.resize(with_labels ? R : 0);
    rows.labels.resize(with_labels ? R : 0);
    rows.label_bits.resize(with_labels ? R * label_words : 0);
    rows.split.resize(with_labels ? R : 0);
    std::vector<uint64_t> cluster_start(c1 - c0 + 1, 0);
    for (uint32_t c = c0; c < c1; ++c) cluster_start[c - c0 + 1] = cluster_start[c - c0] + columns_of(c);
    rows.columns.resize(cluster_start.back());
    rows.offsets[R] = cluster_start.back();
    return cluster_start;
  };
  // Cluster c's rows (decoded in cd) in the block of clusters from c0: offsets, sorted columns,
  // and with_labels the node ids, labels and split.
  auto fill_rows = [&](BlockRows& rows, uint32_t c0, const std::vector<uint64_t>& cluster_start, uint32_t c,
                       const ClusterView& cd, bool with_labels) -> Status {
    const uint64_t r0 = off[c0];
    const uint32_t n = cd.num_nodes;
    const uint64_t base = off[c], lr = base - r0;  // global and block-local first row
    const uint64_t cs = cluster_start[c - c0];
    if (cd.intra_entries() + cd.inter_entries() + n != cluster_start[c - c0 + 1] - cs)
      return Status::Corruption(shards.ShardPath(c) + ": edge counts differ from the manifest's");
    // Row lengths, then columns (neighbors, inter-cluster neighbors, itself), then sort.
    std::vector<uint64_t> len(n);
    for (uint32_t i = 0; i < n; ++i) len[i] = cd.adj_offsets[i + 1] - cd.adj_offsets[i] + 1;
    for (uint32_t s : cd.inter_src) ++len[s];
    uint64_t pos = cs;
    for (uint32_t i = 0; i < n; ++i) {
      rows.offsets[lr + i] = pos;
      pos += len[i];
    }
    std::vector<uint64_t> cursor(n);
    for (uint32_t i = 0; i < n; ++i) {
      cursor[i] = rows.offsets[lr + i];
      rows.columns[cursor[i]++] = static_cast<uint32_t>(base + i);
      for (uint32_t e = cd.adj_offsets[i]; e < cd.adj_offsets[i + 1]; ++e)
        rows.columns[cursor[i]++] = static_cast<uint32_t>(base + cd.adj_neighbors[e]);
    }
    for (const InterGroup& g : cd.inter_groups)
      for (uint64_t e = g.begin; e < g.begin + g.count; ++e)
        rows.columns[cursor[cd.inter_src[e]]++] = static_cast<uint32_t>(off[g.cluster] + cd.inter_dst[e]);
    for (uint32_t i = 0; i < n; ++i)
      std::sort(rows.columns.begin() + static_cast<std::ptrdiff_t>(rows.offsets[lr + i]),
                rows.columns.begin() + static_cast<std::ptrdiff_t>(cursor[i]));
    if (with_labels) {
      std::copy(cd.node_ids.begin(), cd.node_ids.end(), rows.node_ids.begin() + static_cast<std::ptrdiff_t>(lr));
      std::copy(cd.labels.begin(), cd.labels.end(), rows.labels.begin() + static_cast<std::ptrdiff_t>(lr));
      std::copy(cd.label_bits.begin(), cd.label_bits.end(),
                rows.label_bits.begin() + static_cast<std::ptrdiff_t>(lr * label_words));
      std::copy(cd.split.begin(), cd.split.end(), rows.split.begin() + static_cast<std::ptrdiff_t>(lr));
    }
    return Status::Ok();
  };
  // Cluster c: from options.decoded when it has it, else shard c's `mask` sections decoded into t.data.
  auto load = [&](uint32_t c, SectionMask mask, EvalLocal& t) -> Result<const ClusterView*> {
    if (options.decoded)
      if (const ClusterView* cd = options.decoded(c)) return cd;
    CGCN_RETURN_IF_ERROR(shards.Load(c, mask, t.decoder, t.data));
    t.view = t.data;
    return &t.view;
  };
  // Builds the rows of the block of clusters [c0, c1) (decodes their shards' `mask` sections).
  auto build_rows = [&](BlockRows& rows, uint32_t c0, uint32_t c1, SectionMask mask, bool with_labels) -> Status {
    const std::vector<uint64_t> cluster_start = prepare_rows(rows, c0, c1, with_labels);
    return ParallelFor(c0, c1, "evaluation", [&](uint32_t c) -> Status {
      EvalLocal& t = locals.local();
      CGCN_ASSIGN_OR_RETURN(const ClusterView* cd, load(c, mask, t));
      tick();
      return fill_rows(rows, c0, cluster_start, c, *cd, with_labels);
    });
  };
  // `held` names the clusters the rows of each block hold ([0, 0): none).
  std::vector<std::pair<uint32_t, uint32_t>> own_held;
  std::vector<std::pair<uint32_t, uint32_t>>& held = kept != nullptr ? kept->held : own_held;
  if (!reused) held.assign(num_blocks, {0, 0});
  // Spilled with several blocks, pass 0 builds each block's rows all the same and saves them for
  // the layers (RowsFile).
  RowsFile rows_file;
  if (!reuse_rows && plan.spill) CGCN_RETURN_IF_ERROR(rows_file.Init(tmp_dir, num_blocks));

  // Cluster c's degree scales, from its structure (decoded in cd).
  auto set_dinv = [&](uint32_t c, const ClusterView& cd) {
    const uint32_t n = cd.num_nodes;
    std::vector<uint32_t> deg(n);
    for (uint32_t i = 0; i < n; ++i) deg[i] = cd.adj_offsets[i + 1] - cd.adj_offsets[i] + 1;
    for (uint32_t s : cd.inter_src) ++deg[s];
    for (uint32_t i = 0; i < n; ++i) {
      float& v = dinv[off[c] + i];
      switch (kind) {
        case LayerKind::kGcn:
          v = 1.0f / std::sqrt(static_cast<float>(deg[i]));
          break;
        case LayerKind::kClusterGcn:  // as the batch's: 1 / (neighbours + 1)
          v = 1.0f / static_cast<float>(deg[i]);
          break;
        case LayerKind::kSage:
          v = deg[i] > 1 ? 1.0f / static_cast<float>(deg[i] - 1) : 0.0f;
          break;
        case LayerKind::kGat:  // attention weighs the edges
          v = 1.0f;
          break;
      }
    }
  };

  // Pass 0: layer 0's planes (Z_0 = X W_0, or X when layer 0 aggregates first, ...) and the
  // aggregation scales.
  {
    prefetch_block(0, my_c0, my_c1);
    for (size_t b = 0; b < num_blocks; ++b) {
      const std::pair<uint32_t, uint32_t> range = clip(b, my_c0, my_c1);
      const uint32_t bc0 = range.first, bc1 = range.second;
      if (bc0 == bc1) continue;
      prefetch_block(b + 1, my_c0, my_c1);
      // Rows that serve every layer are built here, from the same decode (unless an earlier
      // evaluation left them, with the degree scales: then only the features are decoded).
      BlockRows* build = reused       ? nullptr
                         : reuse_rows ? (keep_rows ? &kept_rows[b] : &block_rows)
                                      : (rows_file.enabled() ? &block_rows : nullptr);
      std::vector<uint64_t> cluster_start;
      SectionMask mask = SectionBit(SectionKind::kFeatures) | (reused ? 0 : kStructureSections);
      if (build) {
        cluster_start = prepare_rows(*build, bc0, bc1, true);
        mask |= SectionBit(SectionKind::kLabels) | SectionBit(SectionKind::kSplit);
      }
      CGCN_RETURN_IF_ERROR(ParallelFor(bc0, bc1, "evaluation", [&](uint32_t c) -> Status {
        EvalLocal& t = locals.local();
        CGCN_ASSIGN_OR_RETURN(const ClusterView* cd, load(c, mask, t));
        if (build) CGCN_RETURN_IF_ERROR(fill_rows(*build, bc0, cluster_start, c, *cd, true));
        const uint32_t n = cd->num_nodes;
        if (!reused) set_dinv(c, *cd);
        tick();
        if (n == 0) return Status::Ok();
        float* x = t.data.features.data();
        if (!store[0].spilled() && agg_first_at[0]) {
          // Layer 0's plane is the (normalized) features: copied there and normalized in place.
          x = store[0].data() + off[c] * m.feat_dim;
          std::copy(cd->features.begin(), cd->features.end(), x);
        } else if (cd != &t.view) {  // the cache's copy stays as decoded
          t.features.assign(cd->features.begin(), cd->features.end());
          x = t.features.data();
        }
        norm.Apply(x, n, m.feat_dim);
        return write_planes(store[0], 0, off[c], ConstMatrixMap(x, n, m.feat_dim));
      }));
      store[0].Flush();  // the block's planes are on disk before the next block
      if (build) {
        if (rows_file.enabled())
          CGCN_RETURN_IF_ERROR(rows_file.Save(b, range, *build));
        else
          held[b] = range;
        ++block_rows_built;
      }
    }
    if (rows_file.enabled()) CGCN_RETURN_IF_ERROR(rows_file.WaitWriteBack());
    if (split) {
      comm.AllgatherRows(dinv.data(), 1, rank_row0, rank_rows);
      exchange_planes(store[0], 0);
    }
  }

  const double pass0_s = since(pass0_start);
  int cur = 0;
  for (uint32_t l = 0; l < L; ++l) {
    const bool last = l + 1 == L;
    if (last && split && me != 0) return Accuracy{};  // rank 0 computes the last layer and the metrics
    // This rank's clusters (all of them for the last layer).
    const uint32_t l_c0 = last ? 0 : my_c0, l_c1 = last ? P : my_c1;
    EvalPassTimes& times = pass_times[l];
    const uint32_t d = dims[l + 1];
    // The sums' width: d, or the input's when the layer aggregates first (then W_l follows them).
    const uint32_t sw = sum_width[l];
    const bool agg_first = agg_first_at[l];
    const float* z = store[cur].data();
    // The rows carry the labels for the last layer, and for every layer when they are reused (they
    // may serve the last one).
    const bool with_labels = last || reuse_rows;
    SectionMask mask = kStructureSections;
    if (with_labels) mask |= SectionBit(SectionKind::kLabels) | SectionBit(SectionKind::kSplit);
    // Spilled: two chunks of Z_l are resident at once, the one summed and the next, read ahead.
    const uint64_t chunk_rows = plan.spill
                                    ? std::max<uint64_t>(1, plan.chunk_bytes / (2 * uint64_t{sw} * sizeof(float)))
                                    : std::max<uint64_t>(1, N);
    prefetch_block(0, l_c0, l_c1);
    for (size_t b = 0; b < num_blocks; ++b) {
      // Plain variables: the lambdas below capture them (clang 14 cannot capture a structured binding).
      const std::pair<uint32_t, uint32_t> range = clip(b, l_c0, l_c1);
      const uint32_t c0 = range.first, c1 = range.second;
      if (c0 == c1) continue;
      auto phase_start = Clock::now();
      const uint64_t r0 = off[c0], R = off[c1] - r0;
      BlockRows& rows = keep_rows ? kept_rows[b] : block_rows;
      if (held[b] != range && rows_file.Has(b, range)) {
        CGCN_RETURN_IF_ERROR(rows_file.Load(b, rows));
        ++block_rows_loaded;
        for (uint32_t c = c0; c < c1; ++c) tick();
      } else if (held[b] != range) {
        prefetch_block(b + 1, l_c0, l_c1);
        CGCN_RETURN_IF_ERROR(build_rows(rows, c0, c1, mask, with_labels));
        held[b] = reuse_rows ? range : std::pair<uint32_t, uint32_t>{0, 0};
        ++block_rows_built;
      } else {
        for (uint32_t c = c0; c < c1; ++c) tick();  // the clusters' step of this layer, without a load
      }
      times.load_s += since(phase_start);
      phase_start = Clock::now();
      if (gat) std::fill(sums.get(), sums.get() + R * d, 0.0f);

      // gat: per row and head, the softmax's maximum over the row's columns (a first sweep over
      // the src scalars), then exp-weighted sums of Z and their denominators (a second sweep),
      // both in ascending column order; the sums are divided by the denominators at the end.
      if (gat) {
        const uint64_t heads = cfg.HeadsAt(l), width_h = d / heads;
        const uint64_t sp = att_plane(l), dp = att_plane(l) + N * heads;
        const float* src = store[cur].data() + sp;
        const float* dst = store[cur].data() + dp;
        const uint64_t gat_chunk = plan.spill ? std::max<uint64_t>(1, plan.chunk_bytes / ((d + heads) * sizeof(float)))
                                              : std::max<uint64_t>(1, N);
        gat_max.assign(R * heads, -std::numeric_limits<float>::infinity());
        gat_den.assign(R * heads, 0.0f);
        store[cur].WillRead(dp + r0 * heads, dp + (r0 + R) * heads);  // the block's dst scalars
        for (int sweep = 0; sweep < 2; ++sweep) {
          rows.cursor.assign(rows.offsets.begin(), rows.offsets.end() - 1);
          for (uint64_t k0 = 0; k0 < N; k0 += gat_chunk) {
            const uint64_t k1 = std::min(N, k0 + gat_chunk);
            store[cur].WillRead(sp + k0 * heads, sp + k1 * heads);
            if (sweep == 1) store[cur].WillRead(k0 * d, k1 * d);
            tbb::parallel_for(tbb::blocked_range<uint64_t>(0, R, 256), [&](const tbb::blocked_range<uint64_t>& rr) {
              for (uint64_t i = rr.begin(); i != rr.end(); ++i) {
                float* mx = gat_max.data() + i * heads;
                float* den = gat_den.data() + i * heads;
                float* acc = sums.get() + i * d;
                const float* di = dst + (r0 + i) * heads;
                uint64_t e = rows.cursor[i];
                const uint64_t end = rows.offsets[i + 1];
                for (; e < end && rows.columns[e] < k1; ++e) {
                  const uint64_t j = rows.columns[e];
                  for (uint64_t h = 0; h < heads; ++h) {
                    const float v = src[j * heads + h] + di[h];
                    const float score = v > 0.0f ? v : 0.2f * v;  // LeakyReLU, as the model's
                    if (sweep == 0) {
                      mx[h] = std::max(mx[h], score);
                      continue;
                    }
                    const float w = std::exp(score - mx[h]);
                    den[h] += w;
                    const float* zj = z + j * d + h * width_h;
                    float* a = acc + h * width_h;
                    for (uint64_t k = 0; k < width_h; ++k) a[k] += w * zj[k];
                  }
                }
                rows.cursor[i] = e;
              }
            });
            store[cur].Drop(sp + k0 * heads, sp + k1 * heads);
            if (sweep == 1) store[cur].Drop(k0 * d, k1 * d);
            if (store[cur].spilled()) spill_read += (k1 - k0) * (heads + (sweep == 1 ? d : 0)) * sizeof(float);
          }
        }
        store[cur].Drop(dp + r0 * heads, dp + (r0 + R) * heads);
        tbb::parallel_for(tbb::blocked_range<uint64_t>(0, R, 256), [&](const tbb::blocked_range<uint64_t>& rr) {
          for (uint64_t i = rr.begin(); i != rr.end(); ++i)
            for (uint64_t h = 0; h < heads; ++h) {
              float* a = sums.get() + i * d + h * width_h;
              const float den = gat_den[i * heads + h];
              for (uint64_t k = 0; k < width_h; ++k) a[k] /= den;
            }
        });
      }

      // Adds block row i's entries [e, end) of Z_l to acc, in ascending column order: gcn weighs
      // dinv_i dinv_j, cluster-gcn di (the self loop (1 + lambda) di), sage di without the self
      // loop. `w` is the calling thread's buffer for the entries' weights.
      // entry_weights puts the weights of entries [e, end) in w; add_entries adds the entries' rows
      // of Z_l, so weighed, to acc.
      auto entry_weights = [&](uint64_t i, uint64_t e, uint64_t end, float* w) {
        const uint64_t self = r0 + i;
        const float di = dinv[self];
        const uint32_t* cols = rows.columns.data() + e;
        const auto nnz = static_cast<uint32_t>(end - e);
        if (kind == LayerKind::kGcn) {
          for (uint32_t k = 0; k < nnz; ++k) w[k] = di * dinv[cols[k]];
        } else {
          const float self_w = di + cfg.diag_lambda * di;  // as the batch's (PyG ClusterGCNConv)
          for (uint32_t k = 0; k < nnz; ++k) w[k] = cols[k] == self ? self_w : di;
        }
      };
      auto add_entries = [&](float* acc, uint64_t i, uint64_t e, uint64_t end, const float* w) {
        const uint32_t* cols = rows.columns.data() + e;
        const auto nnz = static_cast<uint32_t>(end - e);
        if (kind == LayerKind::kSage) {  // the entries before and after the node itself
          const uint64_t self = r0 + i;
          const uint32_t at = static_cast<uint32_t>(std::find(cols, cols + nnz, self) - cols);
          AccumulateRow(z, sw, cols, w, at, acc, sw);
          if (at < nnz) AccumulateRow(z, sw, cols + at + 1, w + at + 1, nnz - at - 1, acc, sw);
          return;
        }
        AccumulateRow(z, sw, cols, w, nnz, acc, sw);
      };
      // Every column of entries [e, end); `w` is the calling thread's buffer for their weights.
      auto sum_entries = [&](float* acc, uint64_t i, uint64_t e, uint64_t end, std::vector<float>& w) {
        if (e == end) return;
        if (w.size() < end - e) w.resize(end - e);
        entry_weights(i, e, end, w.data());
        add_entries(acc, i, e, end, w.data());
      };
      // W_l (a layer that aggregates first), bias, then ReLU and the next layer's weights, or the
      // scores, for cluster c, whose sums [rows x sw] are at csums.
      auto finish_cluster = [&](uint32_t c, float* csums) -> Status {
        const uint64_t lr = off[c] - r0;
        const auto n = static_cast<Eigen::Index>(off[c + 1] - off[c]);
        if (n == 0) return Status::Ok();
        float* h_data = csums;
        if (agg_first) {
          std::vector<float>& product = locals.local().product;
          product.resize(static_cast<uint64_t>(n) * d);
          MatMul(ConstMatrixMap(csums, n, sw), model.weight(l), MatrixMap(product.data(), n, d));
          h_data = product.data();
        }
        MatrixMap h(h_data, n, d);
        // Adds rows [off[c], off[c + 1]) of the plane at `plane` (width w) of the current store to dst.
        auto add_plane = [&](uint64_t plane, uint64_t w, float* dst) {
          const uint64_t b0 = plane + off[c] * w, b1 = plane + off[c + 1] * w;
          store[cur].WillRead(b0, b1);
          const float* src = store[cur].data() + b0;
          for (uint64_t k = 0; k < b1 - b0; ++k) dst[k] += src[k];
          store[cur].Drop(b0, b1);
        };
        if (root) add_plane(r_plane(l), d, h.data());
        h.rowwise() += model.bias(l);
        if (!last) {
          if (cfg.Normalized(l)) model.NormalizeForEval(l, h);
          // ReLU as a plain loop: Eigen's cwiseMax trips a false -Wmaybe-uninitialized in GCC 12's
          // AVX-512 intrinsics (avx512fintrin.h) when built with -march=native on AVX-512 hosts.
          for (float *v = h.data(), *e = v + n * d; v != e; ++v) *v = std::max(*v, 0.0f);
          if (cfg.ResidualAt(l)) add_plane(res_plane(l), dims[l], h.data());
          return write_planes(store[1 - cur], l + 1, off[c], ConstMatrixMap(h.data(), n, d));
        }
        uint64_t corr = 0, cnt = 0, split_cnt[3] = {0, 0, 0};
        double loss[3] = {0, 0, 0};
        for (Eigen::Index i = 0; i < n; ++i) {
          Eigen::Index arg = 0;
          const float top = h.row(i).maxCoeff(&arg);
          const auto pred = static_cast<uint32_t>(arg);
          const uint64_t r = lr + static_cast<uint64_t>(i);
          if (predictions) (*predictions)[off[c] + static_cast<uint64_t>(i)] = Prediction{rows.node_ids[r], pred};
          float* p = probabilities ? probabilities->data() + (off[c] + static_cast<uint64_t>(i)) * d : nullptr;
          const uint32_t label = rows.labels[r];
          double row_loss = 0;
          if (multi_label) {
            // Per task a sigmoid; the loss is the mean binary cross-entropy over the tasks (as
            // SigmoidBinaryCrossEntropy in training).
            const uint32_t* bits = rows.label_bits.data() + r * label_words;
            for (uint32_t k = 0; k < d; ++k) {
              const double x = h(i, k), e = std::exp(-std::fabs(x));
              if (p) p[k] = static_cast<float>(x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
              row_loss += std::max(x, 0.0) - (LabelBit(bits, k) ? x : 0.0) + std::log1p(e);
            }
            row_loss /= static_cast<double>(d);
          } else {
            // Softmax cross-entropy: log(sum exp(h - top)) - (h[label] - top).
            double denom = 0;
            for (uint32_t k = 0; k < d; ++k) denom += std::exp(static_cast<double>(h(i, k) - top));
            if (p)
              for (uint32_t k = 0; k < d; ++k)
                p[k] = static_cast<float>(std::exp(static_cast<double>(h(i, k) - top)) / denom);
            if (label < d) row_loss = std::log(denom) - static_cast<double>(h(i, label) - top);
          }
          if (label == kNoLabel || (!multi_label && label >= d)) continue;  // unlabeled: in no split
          ++cnt;
          corr += !multi_label && pred == label;
          for (int s = 0; s < 3; ++s) {
            if (rows.split[r] & (1u << s)) {
              ++split_cnt[s];
              loss[s] += row_loss;
            }
          }
        }
        scorer.Add(h.data(), static_cast<uint64_t>(n), rows.labels.data() + lr,
                   rows.label_bits.data() + lr * label_words, rows.split.data() + lr);
        std::lock_guard<std::mutex> lock(acc_mu);
        labeled_correct += corr;
        labeled_count += cnt;
        for (int s = 0; s < 3; ++s) {
          split_count[s] += split_cnt[s];
          cluster_loss[uint64_t{3} * c + s] = loss[s];
        }
        return Status::Ok();
      };
      if (plan.fused) {
        // In memory: each cluster's rows are summed into the thread's buffer and finished at once,
        // while its sums are in cache. The wall time is shared between the two phases as their
        // CPU time is.
        std::atomic<uint64_t> sum_ns{0}, finish_ns{0};
        auto ns = [](Clock::duration t) {
          return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t).count());
        };
        // Kept (EvalReuse), the entries' weights are computed once, by the first layer, into the
        // rows, and read from there by the other layers and later evaluations: for gcn each weight
        // gathers a degree scale from anywhere in the graph (15% of a later products evaluation's
        // samples when every layer computed them again).
        const bool weights_in_rows = kept != nullptr;
        const bool fill_weights = weights_in_rows && rows.weights.size() != rows.columns.size();
        if (fill_weights) rows.weights.resize(rows.columns.size());
        CGCN_RETURN_IF_ERROR(ParallelFor(c0, c1, "evaluation", [&](uint32_t c) -> Status {
          EvalLocal& t = locals.local();
          const uint64_t lr = off[c] - r0, n = off[c + 1] - off[c];
          if (n == 0) return Status::Ok();
          const auto t0 = Clock::now();
          if (t.sums.size() < n * sw) t.sums.resize(n * sw);
          std::fill(t.sums.begin(), t.sums.begin() + static_cast<std::ptrdiff_t>(n * sw), 0.0f);
          for (uint64_t i = 0; i < n; ++i) {
            const uint64_t e = rows.offsets[lr + i], end = rows.offsets[lr + i + 1];
            if (!weights_in_rows) {
              sum_entries(t.sums.data() + i * sw, lr + i, e, end, t.weights);
              continue;
            }
            if (fill_weights) entry_weights(lr + i, e, end, rows.weights.data() + e);
            if (e < end) add_entries(t.sums.data() + i * sw, lr + i, e, end, rows.weights.data() + e);
          }
          const auto t1 = Clock::now();
          const Status st = finish_cluster(c, t.sums.data());
          sum_ns += ns(t1 - t0);
          finish_ns += ns(Clock::now() - t1);
          return st;
        }));
        const double wall = since(phase_start), cpu = static_cast<double>(sum_ns + finish_ns);
        const double sum_share = cpu > 0 ? static_cast<double>(sum_ns) / cpu : 0.5;
        times.sum_s += wall * sum_share;
        times.finish_s += wall * (1 - sum_share);
        if (!last) store[1 - cur].Flush();
        continue;
      }

      // Spilled (or gat): every row's sums in the block's buffer, chunk by chunk of Z_l rows, each
      // chunk continuing every row's sums where the previous one stopped (the same additions in
      // the same order as in memory). A row's next column (`next`, in an array of its own) tells
      // whether the chunk has entries for it: most rows have none in a given chunk, and scanning
      // that array costs far less than looking at each row's columns (products, 4 blocks of 80
      // chunks a layer: 220 M row visits).
      rows.cursor.assign(rows.offsets.begin(), rows.offsets.end() - 1);
      rows.next.resize(R);
      for (uint64_t i = 0; i < R; ++i) rows.next[i] = rows.columns[rows.offsets[i]];  // each row has itself
      for (uint64_t k0 = 0; k0 < (gat ? 0 : N); k0 += chunk_rows) {
        const uint64_t k1 = std::min(N, k0 + chunk_rows);
        if (k0 == 0) store[cur].WillRead(0, k1 * sw);
        store[cur].WillRead(k1 * sw,
                            std::min(N, k1 + chunk_rows) * sw);  // the next chunk, read while this one is summed
        tbb::parallel_for(tbb::blocked_range<uint64_t>(0, R, 1024), [&](const tbb::blocked_range<uint64_t>& rr) {
          std::vector<float>& w = locals.local().weights;
          const uint32_t* cols = rows.columns.data();
          // The rows with entries in the chunk, a window at a time; the columns and sums of the
          // row kAhead places on are asked for before each row is summed (each is otherwise a
          // cache miss: the block's columns and sums are far larger than the cache).
          constexpr uint32_t kWindow = 64, kAhead = 4;
          uint64_t work[kWindow];
          for (uint64_t i0 = rr.begin(); i0 < rr.end();) {
            uint32_t n = 0;
            for (; i0 < rr.end() && n < kWindow; ++i0)
              if (rows.next[i0] < k1) work[n++] = i0;
            for (uint32_t j = 0; j < n; ++j) {
              if (j + kAhead < n) {
                const uint64_t a = work[j + kAhead];
                __builtin_prefetch(cols + rows.cursor[a]);
                __builtin_prefetch(sums.get() + a * sw);
              }
              const uint64_t i = work[j];
              float* acc = sums.get() + i * sw;
              const uint64_t e = rows.cursor[i], end = rows.offsets[i + 1];
              if (e == rows.offsets[i]) std::fill(acc, acc + sw, 0.0f);  // the row's first entries
              uint64_t stop = e + 1;
              while (stop < end && cols[stop] < k1) ++stop;
              sum_entries(acc, i, e, stop, w);
              rows.cursor[i] = stop;
              rows.next[i] = stop < end ? cols[stop] : UINT32_MAX;
            }
          }
        });
        store[cur].Drop(k0 * sw, k1 * sw);
        if (store[cur].spilled()) spill_read += (k1 - k0) * sw * sizeof(float);
      }

      times.sum_s += since(phase_start);
      phase_start = Clock::now();
      CGCN_RETURN_IF_ERROR(ParallelFor(c0, c1, "evaluation", [&](uint32_t c) -> Status {
        return finish_cluster(c, sums.get() + (off[c] - r0) * sw);
      }));
      if (!last) store[1 - cur].Flush();
      times.finish_s += since(phase_start);
    }
    if (split && !last) exchange_planes(store[1 - cur], l + 1);
    cur = 1 - cur;
  }
  if (kept != nullptr) {
    kept->shards = &shards;
    kept->num_nodes = N;
    kept->kind = kind;
    kept->blocks = plan.blocks;
    kept->rows_valid = true;
  }
  if (stats) {
    stats->plan = plan;
    stats->reused = reused;
    stats->spill_read_bytes = spill_read;
    stats->block_rows_built = block_rows_built;
    stats->block_rows_loaded = block_rows_loaded;
    stats->rows_file_bytes = rows_file.bytes();
    stats->pass0_s = pass0_s;
    stats->layers = pass_times;
  }
  Accuracy acc = scorer.Summary();
  double loss_sum[3] = {0, 0, 0};
  for (uint32_t c = 0; c < m.num_parts; ++c)
    for (int s = 0; s < 3; ++s) loss_sum[s] += cluster_loss[uint64_t{3} * c + s];
  auto mean = [](double sum, uint64_t n) { return n ? sum / static_cast<double>(n) : std::nan(""); };
  acc.train_loss = mean(loss_sum[0], split_count[0]);
  acc.valid_loss = mean(loss_sum[1], split_count[1]);
  acc.test_loss = mean(loss_sum[2], split_count[2]);
  // Multi-label: micro-F1 at 0.5 over every labeled node is not tallied; the figure stays NaN.
  acc.labeled = multi_label ? std::nan("") : mean(static_cast<double>(labeled_correct), labeled_count);
  acc.labeled_nodes = labeled_count;
  return acc;
}

}  // namespace cgcn
