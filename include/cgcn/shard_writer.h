// Stage 4b: raw input (streamed) + CSR (CsrView: in memory or mapped) + partition -> a shard
// directory, written atomically.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cgcn/csr.h"
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
  // The features' stored element type: f32 (lossless), or bf16/f16, half the bytes (EncodeShard).
  FeatureDtype feature_dtype = FeatureDtype::kF32;
  // Replace an existing out_dir, only once the new one is complete and only when it holds
  // nothing but a shard directory's files (CheckShardDirectoryIsCgcns).
  bool overwrite = false;
  // Directories out_dir must not be, contain or lie inside (the raw input).
  std::vector<std::string> input_dirs;
  int64_t seed = 0;                          // recorded in the manifest
  std::vector<InputFileDigest> input_files;  // recorded in the manifest (DigestRawInput)
  // Bytes the writer may hold: the graph-sized arrays it is given (the CSR if it is on the heap,
  // partition, split) plus the cluster layout it builds must fit (a mapped CSR is page cache,
  // not counted), and the rest bounds how many clusters are gathered and
  // encoded at once. 0 = no limit (one cluster per thread). Too small: kInvalidArgument naming
  // the numbers. Does not change a single output byte.
  uint64_t mem_budget = 0;
};

// How the writer used memory (all figures in bytes).
struct ShardMemoryPlan {
  uint64_t budget = 0;            // 0 = none
  uint64_t graph_bytes = 0;       // CSR if on the heap + partition + split + cluster layout, held throughout
  uint64_t csr_heap_bytes = 0;    // the CSR's share of graph_bytes (CsrView::heap_bytes)
  uint64_t csr_mapped_bytes = 0;  // a mapped CSR's files: read through the page cache, not in graph_bytes
  uint64_t largest_cluster = 0;   // upper bound on one cluster's gather + encode buffers
  uint32_t clusters_in_flight = 0;
};

struct ShardWriteReport {
  Manifest manifest;
  uint64_t raw_bytes = 0;     // sum of uncompressed section bytes
  uint64_t stored_bytes = 0;  // sum of shard file sizes
  ShardMemoryPlan memory;
};

class StagedDirectory;

// Writes a shard directory atomically through a StagedDirectory (src/util/output_dir.h): the
// output path is resolved and locked ("OUT.cgcn-lock"), everything goes into a marked temporary
// sibling "OUT.cgcn-tmp.<random>" (fsynced, MANIFEST last), which replaces OUT atomically when
// complete. The temporary also holds "scratch/", where the reader's streamed input goes
// (RawInput); it is removed before the publish. Until Write succeeds, destroying the writer (or
// SIGINT/SIGTERM in a tool) removes the temporary; a killed run's temporary is removed by the
// next Create for the same out_dir when its marker proves cgcn made it.
class ShardDirectoryWriter {
 public:
  // Resolves and locks out_dir, refuses an existing one unless options.overwrite and it is a
  // shard directory, refuses one that is, contains or lies inside an input directory, and
  // creates the temporary directory and its scratch/. Nothing is written before these checks.
  static Result<ShardDirectoryWriter> Create(const ShardWriteOptions& options);
  ShardDirectoryWriter(ShardDirectoryWriter&& o) noexcept;
  ShardDirectoryWriter& operator=(ShardDirectoryWriter&&) = delete;
  ~ShardDirectoryWriter();

  const std::string& temp_dir() const;
  const std::string& out_dir() const;  // the resolved output path
  const std::string& scratch_dir() const { return scratch_; }
  // The input's digests to record in the manifest (when not given in the options): the caller
  // may digest the input after Create has checked the output path.
  void set_input_files(std::vector<InputFileDigest> files) { options_.input_files = std::move(files); }

  // Gathers each cluster (adjacency from `graph`'s rows, in memory or mapped, feature rows and labels from the raw
  // input's scratch files with pread), encodes and writes it, clusters in parallel within
  // options.mem_budget; then removes scratch/, writes MANIFEST and publishes. Call once.
  Result<ShardWriteReport> Write(const RawInput& raw, const CsrView& graph, const Partition& partition,
                                 const ProgressFn& progress = {});

 private:
  ShardDirectoryWriter() = default;
  ShardWriteOptions options_;
  std::unique_ptr<StagedDirectory> staged_;  // null after Write or a move
  std::string scratch_;
};

// For tests and small graphs: the same writer, fed from an in-memory RawGraph (its features
// and labels are first written to the scratch files the streamed reader would have made).
Result<ShardWriteReport> WriteShardDirectory(const RawGraph& raw, const CsrView& graph, const Partition& partition,
                                             const ShardWriteOptions& options, const ProgressFn& progress = {});

}  // namespace cgcn
