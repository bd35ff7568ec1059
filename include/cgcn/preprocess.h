// Stages 1-4 as one operation, the one cgcn-preprocess runs: a raw graph directory (OGB
// node-property layout) is read and validated, symmetrized into a CSR built on disk and mapped
// (graph.h's BuildExternalCsr), partitioned into P clusters with METIS and written as a shard directory
// (docs/FORMAT.md), atomically, within a memory budget. The output path is checked, locked and prepared before any
// input is parsed (src/util/output_dir.h); nothing half-written is ever left at it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/external_partition.h"
#include "cgcn/fastrp.h"
#include "cgcn/graph.h"
#include "cgcn/partitioner_choice.h"
#include "cgcn/progress.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_writer.h"
#include "cgcn/status.h"

namespace cgcn {

struct PreprocessOptions {
  RawReadOptions read;      // input directory and split
  ShardWriteOptions write;  // out_dir, overwrite, zstd level, compression rule, seed, mem_budget
  int32_t parts = 0;        // clusters P, from 1 to 2^24
  // METIS in memory, the out-of-core multilevel partitioner, or auto (partitioner_choice.h).
  PartitionerKind partitioner = PartitionerKind::kAuto;
  // Node features: from the input's node-feat file, or FastRP (cgcn/fastrp.h) computed from the
  // graph: kAuto uses the file when there is one and FastRP otherwise; kFile requires the file;
  // kFastRp computes FastRP and ignores the file. Recorded in the manifest.
  enum class Features { kAuto, kFile, kFastRp };
  Features features = Features::kAuto;
  FastRpParams fastrp;  // its seed is --seed's unless set with --fastrp-seed (the tool's choice)
  // Checks every value with sentences ("--parts must be from 1 to 16777216, found 0"); the seed
  // is METIS's 32-bit int: 0 to 2147483647.
  Status Validate() const;
};

// Announces step `step` of `steps` ("reading DIR", "partitioning into 8 clusters ...").
using PhaseFn = std::function<void(int step, int steps, std::string_view what)>;

struct PreprocessReport {
  std::string out_dir;  // the resolved path written
  // Reading.
  uint32_t num_nodes = 0, feat_dim = 0, num_classes = 0;
  uint64_t num_edge_lines = 0, input_bytes = 0;
  std::string split_name;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  std::vector<RawPhaseStats> phases;
  // Symmetrizing.
  CsrBuildStats csr;            // buckets, scratch and CSR file bytes, planned peak
  uint64_t csr_mem_budget = 0;  // what --mem-budget left the CSR build (0 = none)
  uint64_t undirected_edges = 0;
  // Features (after the CSR, before partitioning).
  FeatureSource feature_source;  // as recorded in the manifest
  FastRpReport fastrp;           // when FastRP ran
  double features_s = 0;
  // Partitioning.
  PartitionerKind partitioner = PartitionerKind::kMetis;  // the one that ran
  std::string partitioner_reason;                         // why (ChoosePartitioner)
  ExternalPartitionReport external;                       // when the external partitioner ran
  uint64_t edge_cut = 0;
  double part_balance = 0;               // largest part / mean part (PartBalance)
  uint64_t metis_array_bytes = 0;        // int32 xadj, adjncy and part as METIS is handed them (MetisArrayBytes)
  uint64_t metis_workspace_bytes = 0;    // what METIS allocated beyond that and the mapped CSR (sampled RSS)
  uint64_t rss_outside_metis_bytes = 0;  // sampled every 2 ms while reading, building the CSR and writing
  // Writing.
  FeatureDtype feature_dtype = FeatureDtype::kF32;  // how the shards store the features
  ShardWriteReport write;
  uint32_t min_cluster_nodes = 0, max_cluster_nodes = 0, empty_clusters = 0;
  // Wall time of each step, seconds.
  double read_s = 0, csr_s = 0, partition_s = 0, write_s = 0, total_s = 0;
  double peak_rss_mb = 0;   // the process's peak resident set (with mapped pages of the CSR and shards it read)
  double peak_anon_mb = 0;  // peak of the RSS not backed by files (sampled every 2 ms): the heap

  // MB/s (10^6 bytes) of each step: read = input files as stored; symmetrize = the edge list
  // (8 bytes a line); partition = the CSR's two files; write = shard files as stored.
  struct Throughput {
    double read = 0, symmetrize = 0, partition = 0, write = 0;
  };
  Throughput PhaseMBps() const;

  // One line of JSON with the figures above (the last line cgcn-preprocess prints).
  std::string SummaryJson() const;
};

// Validates the options, prepares the output (StagedDirectory: refuses an --out that exists
// without overwrite, is not a shard directory, or is, contains or lies inside the input), then
// reads, partitions and writes. On any failure nothing is left at or beside the output path.
Result<PreprocessReport> Preprocess(const PreprocessOptions& options, const ProgressFn& progress = {},
                                    const PhaseFn& on_phase = {});

}  // namespace cgcn
