// Exact full-graph inference over the shards, layer by layer, within a memory limit.
//
// Activations live in "cluster order" (cluster c's nodes at rows [offset_c, offset_c + n_c)) in
// an activation store: a vector, or an unlinked memory-mapped temporary file when two
// [N x width] arrays do not fit the limit (PlanEvaluation decides).
// Pass 0 reads features and computes Z_0 = X W_0 and the full-graph degree of every node.
// Pass l works on blocks of consecutive clusters (sized by the plan): it decodes the block's
// adjacency and inter-cluster edges (every edge of the graph), sorts each row's columns, and
// sums  sum_j dinv_i dinv_j Z_l[j]  over the row's neighbors j and itself in ascending j. A
// spilled Z_l is read in chunks of rows, in order, each chunk continuing every row's sum where
// the previous one stopped, so the additions happen in the same order as in memory and the
// results are bitwise the same. Then b_l is added and, except after the last layer, ReLU and
// W_{l+1} give the block's rows of Z_{l+1}; the last pass takes the argmax and scores it.
#include "cgcn/evaluate.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "cgcn/batch.h"
#include "cgcn/byte_size.h"
#include "cgcn/split.h"
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

  Status Init(uint64_t floats, bool spill, const std::string& tmp_dir) {
    bytes_ = floats * sizeof(float);
    if (!spill) {
      memory_.resize(floats);
      data_ = memory_.data();
      return Status::Ok();
    }
    std::string templ = (std::filesystem::path(tmp_dir) / "cgcn-eval-XXXXXX").string();
    fd_ = mkstemp(templ.data());
    if (fd_ < 0)
      return Status::IoError(tmp_dir + ": cannot create a temporary file for spilled evaluation activations: " +
                             std::strerror(errno) + " (set --tmp-dir)");
    unlink(templ.c_str());  // nothing is left behind, even after a kill
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

  // Floats [begin, end) were written: write them back to the file (so that a memory cgroup
  // never holds dirty pages it cannot reclaim) and drop them from the resident set. Threads
  // writing neighboring ranges may share a page: msync and MADV_DONTNEED on a shared file
  // mapping never lose data (the page cache keeps the page and its dirty state).
  void Written(uint64_t begin, uint64_t end) const {
    if (!spilled()) return;
    auto [b, e] = Outer(begin, end);
    if (b < e) msync(Byte(b), e - b, MS_SYNC);
    Drop(begin, end);
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
  // The byte range of floats [begin, end) widened to whole pages.
  std::pair<uint64_t, uint64_t> Outer(uint64_t begin, uint64_t end) const {
    const uint64_t page = PageSize();
    const uint64_t b = begin * sizeof(float) / page * page;
    const uint64_t e = std::min(bytes_, (end * sizeof(float) + page - 1) / page * page);
    return {b, e};
  }
  std::byte* Byte(uint64_t offset) const { return static_cast<std::byte*>(map_) + offset; }

  std::vector<float> memory_;
  float* data_ = nullptr;
  void* map_ = nullptr;
  uint64_t bytes_ = 0;
  int fd_ = -1;
};

// One block's rows: sorted columns (global, cluster order, self included), labels for scoring.
struct BlockRows {
  std::vector<uint64_t> offsets;  // [R + 1] into columns
  std::vector<uint32_t> columns;
  std::vector<uint64_t> cursor;  // [R] next column to add (chunked sums)
  std::vector<uint32_t> node_ids, labels, label_bits;
  std::vector<uint8_t> split;

  // Memory a block of `rows` rows with `entries` directed edges needs, with the block's sums
  // (width floats per row): per row offsets and cursor, labels, node ids and split; per column
  // entry 4 bytes. (A cluster's new activations are written back and dropped as soon as they
  // are computed.)
  static uint64_t PlannedBytes(uint64_t rows, uint64_t entries, uint32_t width) {
    return rows * (uint64_t{width} * sizeof(float) + 16 + 9) + (entries + rows) * sizeof(uint32_t);
  }
};

// What each thread holds: a decoder and a decoded cluster.
struct EvalLocal {
  ShardDecoder decoder;
  ClusterData data;

  // Memory one thread holds at most: the decoded cluster and its mapped shard (of the largest
  // such), and one cluster's new activations (max_rows x width), resident until written back.
  static uint64_t PlannedBytes(uint64_t max_decoded, uint64_t max_file, uint64_t max_rows, uint32_t width) {
    return max_decoded + max_file + max_rows * width * sizeof(float);
  }
};

uint32_t Width(const GcnConfig& cfg) {
  const std::vector<uint32_t> dims = cfg.Dims();
  uint32_t width = 0;
  for (size_t l = 1; l < dims.size(); ++l) width = std::max(width, dims[l]);
  return width;
}

}  // namespace

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
  const uint32_t width = Width(cfg);
  const uint64_t N = m.num_nodes;
  threads = std::max<uint32_t>(1, threads);
  uint64_t max_decoded = 0, max_file = 0, max_block = 0, max_rows = 0;
  for (const ShardInfo& s : m.shards) {
    max_rows = std::max<uint64_t>(max_rows, s.num_nodes);
    max_decoded = std::max(max_decoded, ClusterData::PlannedBytes(s));
    max_file = std::max(max_file, s.file_size);
    max_block = std::max(max_block, BlockRows::PlannedBytes(s.num_nodes, s.intra_entries + s.inter_entries, width));
  }
  plan.activation_bytes = 2 * ActivationStore::PlannedBytes(N, width);
  // Degrees (dinv), predictions, what each thread holds, and the multi-label scores kept for
  // ROC-AUC (SplitScorer).
  plan.fixed_bytes = N * sizeof(float) + (with_predictions ? N * sizeof(Prediction) : 0) +
                     threads * EvalLocal::PlannedBytes(max_decoded, max_file, max_rows, width) +
                     SplitScorer::PlannedBytes(m.num_valid, m.num_test, m.label_tasks);
  plan.min_bytes = plan.fixed_bytes + max_block + kMinChunkBytes;
  const uint64_t M = options.memory_bytes;
  if (M == 0 || plan.fixed_bytes + plan.activation_bytes + std::min(kMaxBlockBytes, max_block) <= M) {
    plan.block_bytes = M == 0 ? kMaxBlockBytes : std::min(kMaxBlockBytes, M - plan.fixed_bytes - plan.activation_bytes);
  } else {
    plan.spill = true;
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
  return plan;
}

Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, bool row_normalize,
                                   std::vector<Prediction>* predictions, const ProgressFn& progress,
                                   const EvalOptions& options, EvalStats* stats) {
  const Manifest& m = shards.manifest();
  const GcnConfig& cfg = model.config();
  if (cfg.in_dim != m.feat_dim || cfg.out_dim != m.num_classes)
    return Status::InvalidArgument("model dimensions (" + std::to_string(cfg.in_dim) + " -> " +
                                   std::to_string(cfg.out_dim) + ") do not match the shards (" +
                                   std::to_string(m.feat_dim) + " features, " + std::to_string(m.num_classes) +
                                   " classes)");
  CGCN_ASSIGN_OR_RETURN(EvalPlan plan, PlanEvaluation(m, cfg, options, predictions != nullptr, RunnableThreads()));
  const std::vector<uint32_t> dims = cfg.Dims();
  const uint64_t N = m.num_nodes;
  const std::vector<uint64_t>& off = shards.cluster_offsets();
  const uint32_t width = Width(cfg);
  const std::string tmp_dir = SpillDirectory(options);
  ActivationStore store[2];
  CGCN_RETURN_IF_ERROR(store[0].Init(N * width, plan.spill, tmp_dir));
  CGCN_RETURN_IF_ERROR(store[1].Init(N * width, plan.spill, tmp_dir));
  std::vector<float> dinv(N);
  tbb::enumerable_thread_specific<EvalLocal> locals;
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
  auto prefetch_block = [&](size_t b) {
    if (b + 1 < blocks.size())
      for (uint32_t c = blocks[b]; c < blocks[b + 1]; ++c) shards.Prefetch(c);
  };
  uint64_t spill_read = 0;

  // Pass 0: Z_0 = X W_0 and degrees.
  {
    float* z = store[0].data();
    const uint32_t d = dims[1];
    prefetch_block(0);
    for (size_t b = 0; b + 1 < blocks.size(); ++b) {
      prefetch_block(b + 1);
      CGCN_RETURN_IF_ERROR(ParallelFor(blocks[b], blocks[b + 1], "evaluation", [&](uint32_t c) -> Status {
        EvalLocal& t = locals.local();
        CGCN_RETURN_IF_ERROR(shards.Load(
            c,
            SectionBit(SectionKind::kFeatures) | SectionBit(SectionKind::kAdjacency) | SectionBit(SectionKind::kInter),
            t.decoder, t.data));
        const uint32_t n = t.data.num_nodes;
        std::vector<uint32_t> deg(n);
        for (uint32_t i = 0; i < n; ++i) deg[i] = t.data.adj_offsets[i + 1] - t.data.adj_offsets[i] + 1;
        for (uint32_t s : t.data.inter_src) ++deg[s];
        for (uint32_t i = 0; i < n; ++i) dinv[off[c] + i] = 1.0f / std::sqrt(static_cast<float>(deg[i]));
        tick();
        if (n == 0) return Status::Ok();
        if (row_normalize) RowNormalize(t.data.features.data(), n, m.feat_dim);
        ConstMatrixMap x(t.data.features.data(), n, m.feat_dim);
        MatMul(x, model.weight(0), MatrixMap(z + off[c] * d, n, d));
        store[0].Written(off[c] * d, off[c + 1] * d);
        return Status::Ok();
      }));
      store[0].Written(off[blocks[b]] * d, off[blocks[b + 1]] * d);  // pages shared with the next block
    }
  }

  BlockRows rows;
  std::vector<float> sums;
  SplitScorer scorer(m.num_classes, m.label_tasks);  // the scoring at the last layer (cgcn/metrics.h)
  const uint32_t label_words = LabelWords(m.label_tasks);
  if (predictions) predictions->assign(N, Prediction{0, 0});
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
    rows.offsets.reserve(max_rows + 1);
    rows.cursor.reserve(max_rows);
    rows.columns.reserve(max_entries);
    rows.node_ids.reserve(max_rows);
    rows.labels.reserve(max_rows);
    rows.label_bits.reserve(max_rows * label_words);
    rows.split.reserve(max_rows);
    sums.reserve(max_rows * width);
  }
  int cur = 0;
  for (uint32_t l = 0; l < L; ++l) {
    const bool last = l + 1 == L;
    const uint32_t d = dims[l + 1];
    const float* z = store[cur].data();
    float* znext = store[1 - cur].data();
    SectionMask mask = kStructureSections;
    if (last) mask |= SectionBit(SectionKind::kLabels) | SectionBit(SectionKind::kSplit);
    const uint64_t chunk_rows =
        plan.spill ? std::max<uint64_t>(1, plan.chunk_bytes / (uint64_t{d} * sizeof(float))) : std::max<uint64_t>(1, N);
    prefetch_block(0);
    for (size_t b = 0; b + 1 < blocks.size(); ++b) {
      prefetch_block(b + 1);
      const uint32_t c0 = blocks[b], c1 = blocks[b + 1];
      const uint64_t r0 = off[c0], R = off[c1] - r0;
      // The block's rows: degree counts first (from the manifest's layout), then columns.
      rows.offsets.assign(R + 1, 0);
      rows.columns.clear();
      rows.node_ids.resize(last ? R : 0);
      rows.labels.resize(last ? R : 0);
      rows.label_bits.resize(last ? R * label_words : 0);
      rows.split.resize(last ? R : 0);
      // Each cluster's columns start where the manifest's counts put them.
      std::vector<uint64_t> cluster_start(c1 - c0 + 1, 0);
      for (uint32_t c = c0; c < c1; ++c) cluster_start[c - c0 + 1] = cluster_start[c - c0] + columns_of(c);
      const uint64_t entries = cluster_start.back();
      rows.columns.resize(entries);
      CGCN_RETURN_IF_ERROR(ParallelFor(c0, c1, "evaluation", [&](uint32_t c) -> Status {
        EvalLocal& t = locals.local();
        CGCN_RETURN_IF_ERROR(shards.Load(c, mask, t.decoder, t.data));
        const ClusterData& cd = t.data;
        const uint32_t n = cd.num_nodes;
        tick();
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
        if (last) {
          std::copy(cd.node_ids.begin(), cd.node_ids.end(), rows.node_ids.begin() + static_cast<std::ptrdiff_t>(lr));
          std::copy(cd.labels.begin(), cd.labels.end(), rows.labels.begin() + static_cast<std::ptrdiff_t>(lr));
          std::copy(cd.label_bits.begin(), cd.label_bits.end(),
                    rows.label_bits.begin() + static_cast<std::ptrdiff_t>(lr * label_words));
          std::copy(cd.split.begin(), cd.split.end(), rows.split.begin() + static_cast<std::ptrdiff_t>(lr));
        }
        return Status::Ok();
      }));
      rows.offsets[R] = entries;
      rows.cursor.assign(rows.offsets.begin(), rows.offsets.end() - 1);
      sums.assign(R * d, 0.0f);

      // Sums over the neighbors, chunk by chunk of Z_l rows, each row in ascending column order.
      for (uint64_t k0 = 0; k0 < N; k0 += chunk_rows) {
        const uint64_t k1 = std::min(N, k0 + chunk_rows);
        store[cur].WillRead(k0 * d, k1 * d);
        tbb::parallel_for(tbb::blocked_range<uint64_t>(0, R, 256), [&](const tbb::blocked_range<uint64_t>& rr) {
          for (uint64_t i = rr.begin(); i != rr.end(); ++i) {
            float* __restrict acc = sums.data() + i * d;
            const float di = dinv[r0 + i];
            uint64_t e = rows.cursor[i];
            const uint64_t end = rows.offsets[i + 1];
            for (; e < end && rows.columns[e] < k1; ++e) {
              const uint32_t j = rows.columns[e];
              const float w = di * dinv[j];
              const float* __restrict zj = z + uint64_t{j} * d;
              for (uint32_t k = 0; k < d; ++k) acc[k] += w * zj[k];
            }
            rows.cursor[i] = e;
          }
        });
        store[cur].Drop(k0 * d, k1 * d);
        if (store[cur].spilled()) spill_read += (k1 - k0) * d * sizeof(float);
      }

      // Bias, then ReLU and the next layer's weights, or the scores.
      CGCN_RETURN_IF_ERROR(ParallelFor(c0, c1, "evaluation", [&](uint32_t c) -> Status {
        const uint64_t lr = off[c] - r0;
        const auto n = static_cast<Eigen::Index>(off[c + 1] - off[c]);
        if (n == 0) return Status::Ok();
        MatrixMap h(sums.data() + lr * d, n, d);
        h.rowwise() += model.bias(l);
        if (!last) {
          // ReLU as a plain loop: Eigen's cwiseMax trips a false -Wmaybe-uninitialized in GCC 12's
          // AVX-512 intrinsics (avx512fintrin.h) when built with -march=native on AVX-512 hosts.
          for (float *v = h.data(), *e = v + n * d; v != e; ++v) *v = std::max(*v, 0.0f);
          const uint32_t d2 = dims[l + 2];
          MatMul(ConstMatrixMap(h.data(), n, d), model.weight(l + 1), MatrixMap(znext + off[c] * d2, n, d2));
          store[1 - cur].Written(off[c] * d2, off[c + 1] * d2);
          return Status::Ok();
        }
        if (predictions) {
          for (Eigen::Index i = 0; i < n; ++i) {
            Eigen::Index arg = 0;
            h.row(i).maxCoeff(&arg);
            const uint64_t r = lr + static_cast<uint64_t>(i);
            (*predictions)[off[c] + static_cast<uint64_t>(i)] =
                Prediction{rows.node_ids[r], static_cast<uint32_t>(arg)};
          }
        }
        scorer.Add(h.data(), static_cast<uint64_t>(n), rows.labels.data() + lr,
                   rows.label_bits.data() + lr * label_words, rows.split.data() + lr);
        return Status::Ok();
      }));
      if (!last) store[1 - cur].Written(off[c0] * dims[l + 2], off[c1] * dims[l + 2]);
    }
    cur = 1 - cur;
  }
  if (stats) {
    stats->plan = plan;
    stats->spill_read_bytes = spill_read;
  }
  return scorer.Summary();
}

}  // namespace cgcn
