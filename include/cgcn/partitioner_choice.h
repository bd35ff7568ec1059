// Stage 3's first decision: which partitioner cgcn-preprocess runs. METIS (partition.h) holds
// the whole graph in 32-bit arrays plus a workspace several times their size; the out-of-core
// multilevel partitioner (external_partition.h) holds 4 bytes a node and a coarse graph.
// `auto` runs METIS when its arrays and measured workspace fit the memory budget (or, without
// one, this machine's RAM) and the graph fits METIS's 32-bit idx_t; `external` otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cgcn/partition.h"
#include "cgcn/status.h"

namespace cgcn {

enum class PartitionerKind { kAuto, kMetis, kExternal };

// "auto", "metis", "external".
Result<PartitionerKind> ParsePartitionerKind(std::string_view name);
const char* PartitionerName(PartitionerKind kind);

// METIS_PartGraphKway's peak allocation beyond its input arrays (xadj, adjncy, part), as a
// multiple of those arrays: measured with Debian's libmetis 5.1 by sampling the RSS while it ran
// (cgcn-preprocess's metis_workspace_mb; products-sized graph, P = 1500: 4.4 GiB over 491.6 MiB,
// 9.2x; 1M-node graph, P = 612: see docs/BENCHMARKS.md), rounded up.
inline constexpr double kMetisWorkspaceFactor = 10.0;

// The largest adjacency and node count METIS's idx_t (IDXTYPEWIDTH 32) can index.
inline constexpr uint64_t kMetisMaxEntries = 2147483647;
inline constexpr uint64_t kMetisMaxNodes = 2147483646;

// MetisArrayBytes (partition.h) plus the workspace: what running METIS costs.
uint64_t MetisNeedBytes(uint64_t num_nodes, uint64_t entries);

struct PartitionerPlan {
  PartitionerKind kind = PartitionerKind::kMetis;  // kMetis or kExternal, never kAuto
  std::string reason;                              // one sentence, for the report
  uint64_t metis_need_bytes = 0;
};

// `budget` is --mem-budget (0: none, then `machine_bytes`, the RAM, is the bound for auto);
// `held_bytes` is what preprocessing holds beside the partitioner (the split, 1 byte a node).
// An explicit `metis` that cannot fit the 32-bit limit is kUnsupported, one that cannot fit the
// budget kInvalidArgument, both naming the numbers and `--partitioner external`.
Result<PartitionerPlan> ChoosePartitioner(PartitionerKind requested, uint64_t num_nodes, uint64_t entries,
                                          uint64_t budget, uint64_t held_bytes, uint64_t machine_bytes);

}  // namespace cgcn
