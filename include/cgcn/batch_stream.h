// Stage 5-6 driver: a oneTBB parallel_pipeline that picks q clusters per batch, maps,
// verifies and decodes their shards in parallel, assembles the batch, and hands it to a
// serial consumer (the training step), with at most `prefetch` batches in flight.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "cgcn/batch.h"
#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

class HugePageArena;  // util/huge_pages.h

struct StreamOptions {
  uint32_t clusters_per_batch = 1;  // q
  uint32_t prefetch = 2;            // batches in flight (live pipeline tokens), >= 1
  uint64_t seed = 0;
  FeatureNorm feature_norm;         // applied to every batch's features (default: row)
  bool train_only = false;          // --inductive: batches hold training nodes and their edges only
  bool propagate_features = false;  // also compute Batch::propagated (Gcn::AggregatesInputFirst)
  // Data parallelism (cgcn/comm.h): this process streams only the batches BatchOwner gives its
  // rank; the others are neither read nor decoded.
  uint32_t num_ranks = 1, rank = 0, accumulate = 1;
  // Decoded clusters kept in memory for later epochs, up to this many bytes (of copies, each at
  // most BatchStream::CachedBytes); 0: none. A cluster enters the cache when it is first decoded and
  // stays until the stream is destroyed or DropCache; later batches that pick it neither map,
  // verify nor decode its shard. When the clusters do not all fit, the first ones decoded stay:
  // batches pick clusters uniformly at random, so no eviction order would raise the hit rate.
  uint64_t cache_bytes = 0;
};

// The rank that trains batch `batch` of an epoch: the batches form groups of num_ranks x
// accumulate consecutive batches (one optimizer step each), and rank r takes the group's
// batches r x accumulate .. (r + 1) x accumulate - 1.
inline uint32_t BatchOwner(uint64_t batch, uint32_t num_ranks, uint32_t accumulate) {
  return static_cast<uint32_t>((batch % (uint64_t{num_ranks} * accumulate)) / accumulate);
}

// Seconds per pipeline stage, summed over an epoch.
struct EpochStats {
  uint64_t batches = 0;
  uint64_t batch_nodes = 0;
  uint64_t batch_entries = 0;  // directed adjacency entries, no self loops
  double input_wait_s = 0;     // consumer idle, waiting for the next batch (wall)
  double decode_s = 0;         // map + verify + decompress, wall time of each batch's decode
  double decode_cpu_s = 0;     // the same, CPU time of the decoding threads (summed over threads)
  double assemble_s = 0;       // batch assembly (wall, summed over batches)
  double consume_s = 0;        // the consumer (training step, wall)
  double read_ahead_s = 0;     // issuing the read-ahead of later batches' shard files (wall; with a
                               // cold cache, mostly the kernel allocating pages and submitting reads)
  double wall_s = 0;
  uint64_t decompressed_bytes = 0;  // section bytes after decompression (decoded clusters only)
  uint64_t cache_hits = 0;          // clusters taken from the decoded-cluster cache (not decoded)
  uint64_t cache_bytes = 0;         // bytes the cache holds at the end of the epoch
  // Storage reads of the whole process during the epoch (ReadDiskCounters): zero with a warm
  // page cache; with a cold one, read_bytes is what the read-ahead fetched and major_faults
  // counts the times a thread still had to wait for the disk.
  uint64_t major_faults = 0;
  uint64_t disk_read_bytes = 0;
  // Decompressed bytes per CPU-second of decoding: decode throughput per core.
  double DecodeGBPerCoreSecond() const {
    return decode_cpu_s > 0 ? static_cast<double>(decompressed_bytes) / decode_cpu_s / 1e9 : 0;
  }
};

// The epoch's batches: a seeded shuffle of cluster ids (seed, epoch) split into groups
// of q (the last may be smaller), each group sorted ascending.
std::vector<std::vector<uint32_t>> EpochBatches(uint32_t num_clusters, uint32_t q, uint64_t seed, uint32_t epoch);

class BatchStream {
 public:
  BatchStream(const ShardDirectory& shards, const StreamOptions& options);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // Runs one epoch from batch `first_batch` on (earlier batches are skipped, not read: used
  // when resuming from a checkpoint), the batches this rank owns only (BatchOwner).
  // `consume` is called serially, in batch order; a non-ok
  // Status from it or from decoding cancels the pipeline and is returned.
  Status RunEpoch(uint32_t epoch, const std::function<Status(const Batch&)>& consume, EpochStats* stats,
                  uint64_t first_batch = 0);

  // Frees the decoded clusters and batches kept for reuse (they are reallocated by the next
  // RunEpoch); the trainer calls it before evaluation so the two never hold memory at once.
  void ReleaseBuffers();
  // Empties the decoded-cluster cache (StreamOptions::cache_bytes); later epochs fill it again.
  void DropCache();
  uint64_t cache_used_bytes() const;
  // The most the cache takes to hold shard s's cluster (of num_clusters): its arrays, each padded
  // to 64 bytes; an inter-cluster group takes 16 bytes in memory against 8 in the shard.
  static uint64_t CachedBytes(const ShardInfo& s, uint32_t num_clusters) {
    return ClusterData::PlannedBytes(s) + 10 * 64 + 8 * std::min<uint64_t>(s.inter_entries, num_clusters);
  }
  // Cluster c from the cache, or null; between epochs only (RunEpoch fills the cache).
  const ClusterView* Cached(uint32_t c) const { return cache_.empty() || !cache_[c] ? nullptr : &*cache_[c]; }

  // Memory one batch in flight holds, for memory plans: its decoded clusters (decoded_bytes,
  // the sum of ClusterData::PlannedBytes) and the assembled Batch.
  static uint64_t InFlightBytes(uint64_t decoded_bytes, uint64_t nodes, uint64_t entries, uint32_t feat_dim,
                                uint32_t label_tasks = 0);

 private:
  struct Slot;
  const ShardDirectory& shards_;
  StreamOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;  // [prefetch], reused every epoch
  // [num_clusters]: the decoded-cluster cache, views of copies in arena_ (of cache_bytes, in huge
  // pages: a products-sized cache of 1.6 GiB would otherwise first-touch 400,000 fresh 4 KiB
  // pages, which on the VMs measured here cost its first epoch about 4 s). Within an epoch each
  // cluster is in one batch, so each entry is written by one task, and read only in later epochs.
  std::vector<std::optional<ClusterView>> cache_;
  std::unique_ptr<HugePageArena> arena_;
};

}  // namespace cgcn
