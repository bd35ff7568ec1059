// Stage 3, out of core: a multilevel k-way partition of a CSR too large for METIS (graph.h's
// MappedCsr), holding 4 bytes per node in RAM plus a coarse graph that fits the budget.
//   1. size-constrained label propagation (Meyerhenke, Sanders & Schulz; KaHIP's SCLaP) in
//      sequential passes over the CSR: a label per node, a cluster may not grow past a fraction
//      of a final part; parallel with oneTBB, the same result for a seed whatever the thread count;
//   2. contraction to a weighted coarse graph in a streaming pass (vertex weight = nodes,
//      edge weight = fine edges between the two clusters);
//   3. METIS_PartGraphKway on the coarse graph with vertex and edge weights;
//   4. projection to the fine nodes and balance-respecting refinement moves that lower the cut,
//      for a fixed number of rounds or until the cut stops improving.
#pragma once

#include <cstdint>

#include "cgcn/csr.h"
#include "cgcn/partition.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

struct ExternalPartitionOptions {
  int32_t num_parts = 1;
  int64_t seed = 0;  // label-propagation order and METIS_OPTION_SEED
  // Bytes the partitioner may hold (labels, cluster sizes, the coarse graph and METIS's work on
  // it); 0 = no limit. Too small for 4 bytes a node plus the smallest coarse graph: kInvalidArgument.
  uint64_t mem_budget = 0;
  // Largest part at most ceil((1 + imbalance) * N / P).
  double imbalance = 0.03;
  int coarsen_rounds = 0;  // label-propagation passes per level; 0 = the default
  int refine_rounds = 0;   // refinement passes at most; 0 = the default
};

struct ExternalPartitionReport {
  int levels = 0;               // coarsening levels run (the first over the fine CSR)
  uint64_t coarse_nodes = 0;    // nodes of the graph METIS partitioned
  uint64_t coarse_entries = 0;  // its adjacency entries
  uint64_t metis_entries = 0;   // of those, handed to METIS (the lightest dropped on dense coarse graphs)
  uint64_t cut_projected = 0;   // edge cut of METIS's result on the fine graph
  uint64_t edge_cut = 0;        // after refinement
  int refine_rounds_run = 0;
  int contract_scans = 0;           // scans of a graph's rows by the contractions (ranges x sweeps)
  int rebalance_passes = 0;         // passes that moved nodes out of parts above the bound
  uint64_t max_part_nodes = 0;      // largest part
  uint64_t part_limit_nodes = 0;    // the balance bound it respects
  uint64_t peak_bytes_planned = 0;  // what the plan held at most
  double coarsen_s = 0, contract_s = 0, metis_s = 0, refine_s = 0;
};

Result<Partition> PartitionExternal(const CsrView& graph, const ExternalPartitionOptions& options,
                                    ExternalPartitionReport* report = nullptr, const ProgressFn& progress = {});

}  // namespace cgcn
