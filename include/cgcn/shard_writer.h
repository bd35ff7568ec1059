// Stage 4b: raw graph + partition -> a shard directory, written atomically.
#pragma once

#include <cstdint>
#include <string>

#include "cgcn/graph.h"
#include "cgcn/manifest.h"
#include "cgcn/partition.h"
#include "cgcn/progress.h"
#include "cgcn/raw_reader.h"
#include "cgcn/status.h"

namespace cgcn {

struct ShardWriteOptions {
  std::string out_dir;
  int zstd_level = 3;
  bool overwrite = false;  // replace an existing out_dir (only once the new one is complete)
  int64_t seed = 0;        // recorded in the manifest
  std::vector<InputFileDigest> input_files;  // recorded in the manifest (DigestRawInput)
};

struct ShardWriteReport {
  Manifest manifest;
  uint64_t raw_bytes = 0;     // sum of uncompressed section bytes
  uint64_t stored_bytes = 0;  // sum of shard file sizes
};

// Builds every cluster's data and writes it: shards into a temporary sibling
// "<out_dir>.tmp-<pid>", fsyncs, writes MANIFEST last, renames to out_dir.
// On failure the temporary is removed and out_dir is untouched.
Result<ShardWriteReport> WriteShardDirectory(const RawGraph& raw, const CsrGraph& graph, const Partition& partition,
                                             const ShardWriteOptions& options, const ProgressFn& progress = {});

}  // namespace cgcn
