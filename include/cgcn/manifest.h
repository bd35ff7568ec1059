// The shard directory's manifest (docs/FORMAT.md): graph statistics, partition
// parameters, the raw input's fingerprint and every shard's size and checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cgcn/feature_source.h"
#include "cgcn/input_digest.h"
#include "cgcn/status.h"

namespace cgcn {

inline constexpr char kManifestMagic[8] = {'C', 'G', 'C', 'N', 'M', 'A', 'N', 'I'};
// Writers write kManifestVersion; readers accept kOldestManifestVersion to kManifestVersion.
// Version 3 records the label kind (byte 52, label_tasks) and the feature source (after the input
// file records); versions 1 and 2 read as multi-class with features from a file.
inline constexpr uint32_t kManifestVersion = 3;
inline constexpr uint32_t kOldestManifestVersion = 1;
inline constexpr const char* kManifestFileName = "MANIFEST";

struct ShardInfo {
  uint32_t num_nodes = 0;
  uint64_t intra_entries = 0;    // directed intra-cluster adjacency entries
  uint64_t inter_entries = 0;    // directed entries to other clusters
  uint64_t raw_bytes = 0;        // sum of section sizes after decompression
  uint64_t file_size = 0;        // bytes of the shard file
  uint64_t header_checksum = 0;  // the shard's header checksum (covers every section checksum)
};

struct Manifest {
  uint32_t version = kManifestVersion;
  uint64_t num_nodes = 0;
  uint64_t num_edges = 0;  // undirected, after symmetrization and dedup
  uint32_t feat_dim = 0;
  uint32_t num_classes = 0;  // classes, or L tasks when multi-label
  uint32_t label_tasks = 0;  // 0: multi-class (softmax); L >= 2: multi-label with L = num_classes tasks
  uint32_t num_parts = 0;
  int64_t seed = 0;
  int32_t zstd_level = 0;
  uint64_t edge_cut = 0;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  uint64_t input_fingerprint = 0;
  uint64_t input_bytes = 0;
  std::string split_name;
  std::vector<InputFileDigest> input_files;  // in reading order
  FeatureSource feature_source;              // file, or computed (FastRP) for a featureless input
  std::vector<ShardInfo> shards;             // [num_parts]

  // Prefix sums of shard node counts: [num_parts + 1]; cluster c's nodes occupy
  // [offsets[c], offsets[c+1]) in "cluster order".
  std::vector<uint64_t> ClusterOffsets() const;
  // Nodes of the largest cluster, and its ratio to the mean cluster (N / P): the partition's
  // balance, 1.0 when every cluster has the same size.
  uint64_t LargestCluster() const;
  double Balance() const;
  // Edge cut as a share of the undirected edges.
  double CutFraction() const;
  bool multi_label() const { return label_tasks != 0; }
};

std::string ShardFileName(uint32_t cluster);  // "shard-000042.cgs"

std::vector<std::byte> EncodeManifest(const Manifest& manifest);
// Validates everything (checksum, magic, version, bounds, per-shard sums); `name` for messages.
Result<Manifest> DecodeManifest(std::span<const std::byte> bytes, const std::string& name);

}  // namespace cgcn
