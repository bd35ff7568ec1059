// Stage 5: an opened shard directory: the manifest and memory-mapped shard files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/manifest.h"
#include "cgcn/mapped_file.h"
#include "cgcn/shard_format.h"
#include "cgcn/status.h"

namespace cgcn {

// Thread-safe after Open and set_drop_page_cache: all other members are const.
class ShardDirectory {
 public:
  // Reads and validates MANIFEST and checks that every shard file exists with the
  // recorded size.
  static Result<ShardDirectory> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  uint32_t num_clusters() const { return manifest_.num_parts; }
  const std::vector<uint64_t>& cluster_offsets() const { return offsets_; }  // [P + 1]
  std::string ShardPath(uint32_t cluster) const;

  // Memory-maps shard `cluster`.
  Result<MappedFile> Map(uint32_t cluster) const;
  ShardExpectation Expectation(uint32_t cluster) const;

  // Checks that the raw input in `raw_dir` is, file for file, the input these shards were
  // built from (sizes and XXH3-64 of every file recorded in the manifest). A stale directory
  // gets kCorruption with a message naming each file that differs.
  Status CheckInput(const std::string& raw_dir) const;

  // Maps, verifies and decodes `mask` sections of shard `cluster` into `out`, then releases
  // the mapped pages (and, with drop_page_cache, the file's page cache).
  Status Load(uint32_t cluster, SectionMask mask, ShardDecoder& decoder, ClusterData& out) const;

  // Starts reading shard `cluster` into the page cache in the background (POSIX_FADV_WILLNEED)
  // so that a later Load does not wait for the disk.
  void Prefetch(uint32_t cluster) const;

  // Bounded-memory mode: evict each shard file from the page cache once it is decoded, so the
  // page cache of old shards is not charged to the process's memory cgroup. Off by default.
  // Set before sharing the directory across threads.
  void set_drop_page_cache(bool drop) { drop_page_cache_ = drop; }
  bool drop_page_cache() const { return drop_page_cache_; }

 private:
  std::string dir_;
  Manifest manifest_;
  std::vector<uint64_t> offsets_;
  std::vector<uint32_t> sizes_;
  bool drop_page_cache_ = false;
};

// Whether `dir` holds nothing but what cgcn-preprocess writes, so that --overwrite may replace
// it: regular files named MANIFEST (starting with the manifest magic) and shard-NNNNNN.cgs
// (starting with the shard magic), or nothing at all. Otherwise kInvalidArgument naming the
// first entry cgcn did not write ("it holds 'notes.txt', which cgcn does not write").
Status CheckShardDirectoryIsCgcns(const std::string& dir);

}  // namespace cgcn
