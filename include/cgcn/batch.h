// Stage 6: q decoded clusters -> one training batch (ClusterLoader semantics).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cgcn/feature_norm.h"
#include "cgcn/shard_format.h"
#include "cgcn/sparse.h"

namespace cgcn {

// The union of q clusters with every edge among them (intra- and inter-cluster),
// GCN-normalized on the batch subgraph. Nodes are ordered cluster by cluster in
// ascending cluster id, each cluster's nodes in ascending original id.
// Buffers keep their capacity across batches.
struct Batch {
  uint32_t epoch = 0;
  uint64_t index = 0;              // batch number within the epoch
  std::vector<uint32_t> clusters;  // ascending
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;
  uint32_t num_train = 0;
  std::vector<uint32_t> offsets;     // [n + 1]
  std::vector<uint32_t> columns;     // batch-local ids
  std::vector<float> weights;        // D^-1/2 A D^-1/2 entries (degrees include the self loop)
  std::vector<float> self_weights;   // [n] 1 / deg
  std::vector<float> features;       // [n x feat_dim]
  std::vector<uint32_t> labels;      // [n] class ids (multi-label: 0), kNoLabel for unlabeled nodes
  uint32_t label_tasks = 0;          // 0: multi-class; L: multi-label (label_bits)
  std::vector<uint32_t> label_bits;  // [n x LabelWords(label_tasks)] task bits (cgcn/split.h)
  std::vector<uint8_t> train_mask;   // [n] 1 for training nodes
  std::vector<uint32_t> node_ids;    // [n] original ids
  // A_hat features [n x feat_dim] when assembled with propagate_features (the GCN's first
  // aggregation, which does not depend on the parameters: see Gcn::AggregatesInputFirst).
  bool has_propagated = false;
  std::vector<float> propagated;

  SparseRows Adjacency() const;
  ConstMatrixMap Features() const;

  // Memory an assembled batch of `nodes` nodes and `entries` directed adjacency entries holds,
  // for memory plans: features, the CSR with its weights, self weights, labels, ids and the
  // training mask (propagated is not counted).
  static uint64_t PlannedBytes(uint64_t nodes, uint64_t entries, uint32_t feat_dim, uint32_t label_tasks = 0);
};

// `clusters` must hold distinct clusters, sorted by cluster_id, each decoded with all sections.
// Features are normalized with `norm` (cgcn/feature_norm.h).
// With propagate_features, also computes out.propagated = A_hat features.
// With train_only (--inductive), the batch holds only the clusters' training nodes and the edges
// among them (in the same order), GCN-normalized on that subgraph.
void AssembleBatch(std::span<const ClusterView> clusters, const FeatureNorm& norm, Batch& out,
                   bool propagate_features = false, bool train_only = false);

// PyG NormalizeFeatures on a [rows x cols] row-major block, in place.
void RowNormalize(float* data, uint64_t rows, uint32_t cols);

}  // namespace cgcn
