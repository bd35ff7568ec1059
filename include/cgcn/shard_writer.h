// Stage 4b: raw input (streamed) + CSR + partition -> a shard directory, written atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/graph.h"
#include "cgcn/manifest.h"
#include "cgcn/partition.h"
#include "cgcn/progress.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_format.h"
#include "cgcn/status.h"

namespace cgcn {

struct ShardWriteOptions {
  std::string out_dir;
  int zstd_level = 3;
  // Sections zstd shrinks by less than this factor are stored uncompressed (EncodeShard).
  double min_compression_ratio = kDefaultMinCompressionRatio;
  bool overwrite = false;                    // replace an existing out_dir (only once the new one is complete)
  int64_t seed = 0;                          // recorded in the manifest
  std::vector<InputFileDigest> input_files;  // recorded in the manifest (DigestRawInput)
  // Bytes the writer may hold: the graph-sized arrays it is given (CSR, partition, split) plus
  // the cluster layout it builds must fit, and the rest bounds how many clusters are gathered and
  // encoded at once. 0 = no limit (one cluster per thread). Too small: kInvalidArgument naming
  // the numbers. Does not change a single output byte.
  uint64_t mem_budget = 0;
};

// How the writer used memory (all figures in bytes).
struct ShardMemoryPlan {
  uint64_t budget = 0;           // 0 = none
  uint64_t graph_bytes = 0;      // CSR + partition + split + cluster layout, held throughout
  uint64_t largest_cluster = 0;  // upper bound on one cluster's gather + encode buffers
  uint32_t clusters_in_flight = 0;
};

struct ShardWriteReport {
  Manifest manifest;
  uint64_t raw_bytes = 0;     // sum of uncompressed section bytes
  uint64_t stored_bytes = 0;  // sum of shard file sizes
  ShardMemoryPlan memory;
};

// Writes a shard directory atomically: everything goes into a temporary sibling
// "<out_dir>.tmp-<pid>" (fsynced, MANIFEST last), which is renamed to out_dir when complete.
// The temporary also holds "scratch/", where the reader's streamed input goes (RawInput);
// it is removed before the rename. Until Write succeeds, destroying the writer removes the
// temporary; a killed run's temporary is removed by the next Create for the same out_dir.
class ShardDirectoryWriter {
 public:
  // Cleans up after killed runs, refuses an existing out_dir unless options.overwrite, and
  // creates the temporary directory and its scratch/.
  static Result<ShardDirectoryWriter> Create(const ShardWriteOptions& options);
  ShardDirectoryWriter(ShardDirectoryWriter&& o) noexcept;
  ShardDirectoryWriter& operator=(ShardDirectoryWriter&&) = delete;
  ~ShardDirectoryWriter();

  const std::string& temp_dir() const { return tmp_; }
  const std::string& scratch_dir() const { return scratch_; }

  // Gathers each cluster (adjacency from `graph`, feature rows and labels from the raw
  // input's scratch files with pread), encodes and writes it, clusters in parallel within
  // options.mem_budget; then removes scratch/, writes MANIFEST and publishes. Call once.
  Result<ShardWriteReport> Write(const RawInput& raw, const CsrGraph& graph, const Partition& partition,
                                 const ProgressFn& progress = {});

 private:
  ShardDirectoryWriter() = default;
  ShardWriteOptions options_;
  std::string out_, tmp_, scratch_;
  bool armed_ = false;  // remove tmp_ on destruction
};

// For tests and small graphs: the same writer, fed from an in-memory RawGraph (its features
// and labels are first written to the scratch files the streamed reader would have made).
Result<ShardWriteReport> WriteShardDirectory(const RawGraph& raw, const CsrGraph& graph, const Partition& partition,
                                             const ShardWriteOptions& options, const ProgressFn& progress = {});

}  // namespace cgcn
