#include "cgcn/batch_stream.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_pipeline.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "cgcn/mapped_file.h"
#include "util/huge_pages.h"
#include "util/parallel.h"
#include "util/random.h"

namespace cgcn {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU time of the calling thread, in seconds.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// A copy of d's arrays in one piece of the arena, as a view; nothing when they do not fit.
std::optional<ClusterView> CopyToArena(const ClusterData& d, HugePageArena& arena) {
  ClusterView v(d);
  auto padded = [](auto span) { return HugePageArena::Padded(span.size_bytes()); };
  const size_t total = padded(v.node_ids) + padded(v.adj_offsets) + padded(v.adj_neighbors) + padded(v.inter_groups) +
                       padded(v.inter_src) + padded(v.inter_dst) + padded(v.features) + padded(v.labels) +
                       padded(v.label_bits) + padded(v.split);
  auto* at = static_cast<std::byte*>(arena.TryAllocate(total));
  if (at == nullptr) return std::nullopt;
  auto copy = [&](auto& span) {
    using T = typename std::remove_reference_t<decltype(span)>::element_type;
    auto* dst = reinterpret_cast<std::remove_const_t<T>*>(at);
    if (!span.empty()) std::memcpy(dst, span.data(), span.size_bytes());
    at += padded(span);
    span = std::span<T>(dst, span.size());
  };
  copy(v.node_ids);
  copy(v.adj_offsets);
  copy(v.adj_neighbors);
  copy(v.inter_groups);
  copy(v.inter_src);
  copy(v.inter_dst);
  copy(v.features);
  copy(v.labels);
  copy(v.label_bits);
  copy(v.split);
  return v;
}

}  // namespace

struct BatchStream::Slot {
  std::vector<ClusterData> decoded;  // [q], buffers reused
  std::vector<ClusterView> ordered;  // [q] for AssembleBatch: decoded[k] or the cache's copy
  std::vector<double> decode_cpu_s;  // [q]
  std::vector<uint8_t> cache_hit;    // [q]
  Batch batch;
  double decode_s = 0, assemble_s = 0;
  uint64_t raw_bytes = 0;
};

std::vector<std::vector<uint32_t>> EpochBatches(uint32_t num_clusters, uint32_t q, uint64_t seed, uint32_t epoch) {
  std::vector<uint32_t> order(num_clusters);
  std::iota(order.begin(), order.end(), 0u);
  Rng rng(SplitMix64(seed) ^ SplitMix64(0x5eed0000ULL + epoch));
  for (uint32_t i = num_clusters; i > 1; --i) std::swap(order[i - 1], order[rng.Below(i)]);  // Fisher-Yates
  std::vector<std::vector<uint32_t>> groups;
  if (q == 0) q = 1;
  for (uint32_t i = 0; i < num_clusters; i += q) {
    std::vector<uint32_t> g(order.begin() + i, order.begin() + std::min(num_clusters, i + q));
    std::sort(g.begin(), g.end());
    groups.push_back(std::move(g));
  }
  return groups;
}

BatchStream::BatchStream(const ShardDirectory& shards, const StreamOptions& options)
    : shards_(shards), options_(options) {
  options_.prefetch = std::max<uint32_t>(1, options_.prefetch);
  options_.clusters_per_batch = std::max<uint32_t>(1, std::min(options_.clusters_per_batch, shards.num_clusters()));
  for (uint32_t i = 0; i < options_.prefetch; ++i) {
    auto s = std::make_unique<Slot>();
    s->decoded.resize(options_.clusters_per_batch);
    s->decode_cpu_s.resize(options_.clusters_per_batch);
    s->cache_hit.resize(options_.clusters_per_batch);
    slots_.push_back(std::move(s));
  }
  if (options_.cache_bytes > 0) {
    cache_.resize(shards.num_clusters());
    arena_ = std::make_unique<HugePageArena>(options_.cache_bytes);
  }
}

BatchStream::~BatchStream() = default;

uint64_t BatchStream::InFlightBytes(uint64_t decoded_bytes, uint64_t nodes, uint64_t entries, uint32_t feat_dim,
                                    uint32_t label_tasks) {
  return decoded_bytes + Batch::PlannedBytes(nodes, entries, feat_dim, label_tasks);
}

void BatchStream::DropCache() {
  for (auto& c : cache_) c.reset();
  if (arena_) arena_->Clear();
}

uint64_t BatchStream::cache_used_bytes() const { return arena_ ? arena_->used_bytes() : 0; }

void BatchStream::ReleaseBuffers() {
  for (auto& s : slots_) {
    for (ClusterData& d : s->decoded) d = ClusterData{};
    s->batch = Batch{};
  }
}

Status BatchStream::RunEpoch(uint32_t epoch, const std::function<Status(const Batch&)>& consume, EpochStats* stats,
                             uint64_t first_batch) {
  const auto groups = EpochBatches(shards_.num_clusters(), options_.clusters_per_batch, options_.seed, epoch);
  tbb::enumerable_thread_specific<ShardDecoder> decoders;
  EpochStats st;
  // The batches this rank streams, in order.
  std::vector<uint32_t> mine;
  for (uint64_t i = std::min<uint64_t>(first_batch, groups.size()); i < groups.size(); ++i)
    if (BatchOwner(i, options_.num_ranks, options_.accumulate) == options_.rank)
      mine.push_back(static_cast<uint32_t>(i));
  size_t next = 0;  // into mine
  const DiskReadCounters disk0 = ReadDiskCounters();
  const Clock::time_point start = Clock::now();
  Clock::time_point idle_since = start;
  const size_t K = slots_.size();
  // Read-ahead: when batch i is picked, the files of batch i + K + 2 (K batches in flight) start loading
  // into the page cache, so with a cold cache the disk works in the background rather than in
  // the decoders. One batch ahead was not enough: batch i + 1 is often picked (and decoded) right
  // after batch i, and a decoder that faults on a page still being read blocks its TBB worker,
  // which the training step's parallel loops then lack (no input wait shows it; the step slows).
  const size_t read_ahead_batches = K + 2;
  double read_ahead_s = 0;  // the input stage's own total (st belongs to the output stage)
  auto read_ahead = [&](size_t i) {
    if (i >= mine.size()) return;
    const Clock::time_point t0 = Clock::now();
    for (uint32_t c : groups[mine[i]])
      if (cache_.empty() || !cache_[c]) shards_.Prefetch(c);  // no write to cache_[c] yet: its batch is later
    read_ahead_s += Seconds(t0, Clock::now());
  };
  for (size_t i = next; i < next + read_ahead_batches; ++i) read_ahead(i);
  CGCN_RETURN_IF_ERROR(CatchStatus("streaming batches", [&] {
    tbb::parallel_pipeline(
        K, tbb::make_filter<void, Slot*>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Slot* {
             if (next == mine.size()) {
               fc.stop();
               return nullptr;
             }
             // Safe reuse: batch `next - K` has left the serial output stage
             // before token `next` can exist (at most K live tokens, in order).
             Slot* s = slots_[next % K].get();
             s->batch.epoch = epoch;
             s->batch.index = mine[next];
             s->batch.clusters = groups[mine[next]];
             ++next;
             read_ahead(next - 1 + read_ahead_batches);
             return s;
           }) & tbb::make_filter<Slot*, Slot*>(tbb::filter_mode::parallel, [&](Slot* s) -> Slot* {
             const auto& ids = s->batch.clusters;
             const size_t q = ids.size();
             const Clock::time_point t0 = Clock::now();
             s->ordered.assign(q, ClusterView{});
             // The lowest-numbered failure in the batch stops the pipeline.
             const Status loaded = ParallelFor(size_t{0}, q, "decoding a batch", [&](size_t k) {
               const uint32_t c = ids[k];
               s->cache_hit[k] = 0;
               s->decode_cpu_s[k] = 0;
               if (!cache_.empty() && cache_[c]) {
                 s->ordered[k] = *cache_[c];
                 s->cache_hit[k] = 1;
                 return Status::Ok();
               }
               const double c0 = ThreadCpuSeconds();
               Status status = shards_.Load(c, kAllSections, decoders.local(), s->decoded[k]);
               s->ordered[k] = s->decoded[k];
               // A cluster the cache has room for is copied into it.
               if (status.ok() && !cache_.empty()) cache_[c] = CopyToArena(s->decoded[k], *arena_);
               s->decode_cpu_s[k] = ThreadCpuSeconds() - c0;
               return status;
             });
             if (!loaded.ok()) throw StatusException{loaded};
             const Clock::time_point t1 = Clock::now();
             s->decode_s = Seconds(t0, t1);
             s->raw_bytes = 0;
             for (size_t k = 0; k < q; ++k)
               if (!s->cache_hit[k]) s->raw_bytes += shards_.manifest().shards[ids[k]].raw_bytes;
             AssembleBatch(s->ordered, options_.feature_norm, s->batch, options_.propagate_features,
                           options_.train_only);
             s->assemble_s = Seconds(t1, Clock::now());
             return s;
           }) & tbb::make_filter<Slot*, void>(tbb::filter_mode::serial_in_order, [&](Slot* s) {
             const Clock::time_point t0 = Clock::now();
             st.input_wait_s += Seconds(idle_since, t0);
             st.decode_s += s->decode_s;
             for (size_t k = 0; k < s->batch.clusters.size(); ++k) {
               st.decode_cpu_s += s->decode_cpu_s[k];
               st.cache_hits += s->cache_hit[k];
             }
             st.assemble_s += s->assemble_s;
             st.decompressed_bytes += s->raw_bytes;
             st.batches += 1;
             st.batch_nodes += s->batch.num_nodes;
             st.batch_entries += s->batch.offsets[s->batch.num_nodes];
             Status status = consume(s->batch);
             if (!status.ok()) throw StatusException{status};
             idle_since = Clock::now();
             st.consume_s += Seconds(t0, idle_since);
           }));
  }));
  st.wall_s = Seconds(start, Clock::now());
  st.read_ahead_s = read_ahead_s;
  st.cache_bytes = cache_used_bytes();
  const DiskReadCounters disk1 = ReadDiskCounters();
  st.major_faults = disk1.major_faults - disk0.major_faults;
  st.disk_read_bytes = disk1.read_bytes - disk0.read_bytes;
  if (stats) *stats = st;
  return Status::Ok();
}

}  // namespace cgcn
