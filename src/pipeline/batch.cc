#include "cgcn/batch.h"

#include <cstring>

#include "cgcn/split.h"

namespace cgcn {

uint64_t Batch::PlannedBytes(uint64_t nodes, uint64_t entries, uint32_t feat_dim, uint32_t label_tasks) {
  // features; columns and weights; offsets, self weights, labels, node ids and the mask; task bits.
  return nodes * feat_dim * sizeof(float) + entries * (sizeof(uint32_t) + sizeof(float)) +
         nodes * (sizeof(uint32_t) + sizeof(float) + sizeof(uint32_t) + sizeof(uint32_t) + sizeof(uint8_t)) +
         nodes * LabelWords(label_tasks) * sizeof(uint32_t);
}

SparseRows Batch::Adjacency() const {
  SparseRows a;
  a.offsets = std::span<const uint32_t>(offsets.data(), uint64_t{num_nodes} + 1);
  a.columns = std::span<const uint32_t>(columns.data(), offsets[num_nodes]);
  a.weights = std::span<const float>(weights.data(), offsets[num_nodes]);
  a.self_weights = std::span<const float>(self_weights.data(), num_nodes);
  a.self_base = 0;
  return a;
}

ConstMatrixMap Batch::Features() const { return ConstMatrixMap(features.data(), num_nodes, feat_dim); }

void RowNormalize(float* data, uint64_t rows, uint32_t cols) {
  for (uint64_t i = 0; i < rows; ++i) {
    float* r = data + i * cols;
    float sum = 0;
    for (uint32_t j = 0; j < cols; ++j) sum += r[j];
    const float inv = 1.0f / (sum < 1.0f ? 1.0f : sum);  // PyG: x / x.sum(-1).clamp(min=1)
    for (uint32_t j = 0; j < cols; ++j) r[j] *= inv;
  }
}

namespace {

// Keeps the training nodes of an assembled batch (columns filled, not yet normalized) and the
// edges among them, renumbered in order.
void KeepTrainingNodes(Batch& b) {
  const uint32_t n = b.num_nodes, F = b.feat_dim, W = LabelWords(b.label_tasks);
  thread_local std::vector<uint32_t> new_id;
  new_id.assign(n, UINT32_MAX);
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; ++i)
    if (b.train_mask[i]) new_id[i] = kept++;
  uint32_t pos = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t begin = b.offsets[i], end = b.offsets[i + 1];
    if (new_id[i] == UINT32_MAX) continue;
    const uint32_t r = new_id[i];
    b.offsets[r] = pos;
    for (uint32_t e = begin; e < end; ++e)
      if (const uint32_t j = new_id[b.columns[e]]; j != UINT32_MAX) b.columns[pos++] = j;
    if (r != i) {
      std::memmove(b.features.data() + uint64_t{r} * F, b.features.data() + uint64_t{i} * F, sizeof(float) * F);
      b.labels[r] = b.labels[i];
      if (W != 0)
        std::memmove(b.label_bits.data() + uint64_t{r} * W, b.label_bits.data() + uint64_t{i} * W,
                     sizeof(uint32_t) * W);
      b.node_ids[r] = b.node_ids[i];
    }
    b.train_mask[r] = 1;
  }
  b.offsets[kept] = pos;
  b.offsets.resize(uint64_t{kept} + 1);
  b.columns.resize(pos);
  b.weights.resize(pos);
  b.self_weights.resize(kept);
  b.features.resize(uint64_t{kept} * F);
  b.labels.resize(kept);
  b.label_bits.resize(uint64_t{kept} * W);
  b.node_ids.resize(kept);
  b.train_mask.resize(kept);
  b.num_nodes = kept;
  b.num_train = kept;
}

}  // namespace

void AssembleBatch(std::span<const ClusterView> clusters, const FeatureNorm& norm, Batch& out, bool propagate_features,
                   bool train_only) {
  const size_t q = clusters.size();
  out.clusters.resize(q);
  uint64_t n = 0;
  // Position of each chosen cluster's first node in the batch.
  thread_local std::vector<uint32_t> starts;
  starts.resize(q);
  for (size_t k = 0; k < q; ++k) {
    out.clusters[k] = clusters[k].cluster_id;
    starts[k] = static_cast<uint32_t>(n);
    n += clusters[k].num_nodes;
  }
  const uint32_t F = q ? clusters[0].feat_dim : 0;
  out.num_nodes = static_cast<uint32_t>(n);
  out.feat_dim = F;

  // Pass 1: row lengths = intra degree + edges to chosen clusters (merge-walk: both lists ascend).
  out.offsets.assign(n + 1, 0);
  for (size_t k = 0; k < q; ++k) {
    const ClusterView& c = clusters[k];
    uint32_t* len = out.offsets.data() + 1 + starts[k];
    for (uint32_t i = 0; i < c.num_nodes; ++i) len[i] = c.adj_offsets[i + 1] - c.adj_offsets[i];
    size_t j = 0;
    for (const InterGroup& g : c.inter_groups) {
      while (j < q && out.clusters[j] < g.cluster) ++j;
      if (j == q) break;
      if (out.clusters[j] != g.cluster) continue;
      for (uint64_t e = g.begin; e < g.begin + g.count; ++e) ++len[c.inter_src[e]];
    }
  }
  for (uint64_t i = 0; i < n; ++i) out.offsets[i + 1] += out.offsets[i];
  const uint64_t nnz = out.offsets[n];
  out.columns.resize(nnz);
  out.weights.resize(nnz);
  out.self_weights.resize(n);

  // Pass 2: fill columns (intra first, then inter in ascending cluster order).
  thread_local std::vector<uint32_t> cursor;
  cursor.assign(out.offsets.begin(), out.offsets.end() - 1);
  for (size_t k = 0; k < q; ++k) {
    const ClusterView& c = clusters[k];
    const uint32_t s = starts[k];
    for (uint32_t i = 0; i < c.num_nodes; ++i) {
      uint32_t* dst = out.columns.data() + cursor[s + i];
      for (uint32_t e = c.adj_offsets[i]; e < c.adj_offsets[i + 1]; ++e) *dst++ = c.adj_neighbors[e] + s;
      cursor[s + i] += c.adj_offsets[i + 1] - c.adj_offsets[i];
    }
    size_t j = 0;
    for (const InterGroup& g : c.inter_groups) {
      while (j < q && out.clusters[j] < g.cluster) ++j;
      if (j == q) break;
      if (out.clusters[j] != g.cluster) continue;
      const uint32_t t = starts[j];
      for (uint64_t e = g.begin; e < g.begin + g.count; ++e)
        out.columns[cursor[s + c.inter_src[e]]++] = c.inter_dst[e] + t;
    }
  }
  // Node data.
  out.features.resize(n * F);
  out.labels.resize(n);
  out.label_tasks = q == 0 ? 0 : clusters[0].label_tasks;
  const uint32_t words = LabelWords(out.label_tasks);
  out.label_bits.resize(n * words);
  out.train_mask.resize(n);
  out.node_ids.resize(n);
  uint32_t train = 0;
  for (size_t k = 0; k < q; ++k) {
    const ClusterView& c = clusters[k];
    const uint32_t s = starts[k];
    if (c.num_nodes == 0) continue;
    std::memcpy(out.features.data() + uint64_t{s} * F, c.features.data(), sizeof(float) * c.features.size());
    std::memcpy(out.labels.data() + s, c.labels.data(), sizeof(uint32_t) * c.num_nodes);
    if (words != 0)
      std::memcpy(out.label_bits.data() + uint64_t{s} * words, c.label_bits.data(),
                  sizeof(uint32_t) * c.label_bits.size());
    std::memcpy(out.node_ids.data() + s, c.node_ids.data(), sizeof(uint32_t) * c.num_nodes);
    for (uint32_t i = 0; i < c.num_nodes; ++i) {
      const uint8_t t = (c.split[i] & kSplitTrain) ? 1 : 0;
      out.train_mask[s + i] = t;
      train += t;
    }
  }
  out.num_train = train;
  if (train_only) KeepTrainingNodes(out);
  n = out.num_nodes;
  GcnNormalize(std::span<const uint32_t>(out.offsets.data(), n + 1),
               std::span<const uint32_t>(out.columns.data(), out.offsets[n]),
               std::span<float>(out.weights.data(), out.offsets[n]), std::span<float>(out.self_weights.data(), n));
  norm.Apply(out.features.data(), n, F);
  out.has_propagated = propagate_features;
  if (propagate_features) {
    out.propagated.resize(n * F);
    Propagate(out.Adjacency(), out.Features(), MatrixMap(out.propagated.data(), static_cast<Eigen::Index>(n), F));
  }
}

}  // namespace cgcn
