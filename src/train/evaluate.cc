// Exact full-graph inference over the shards, layer by layer.
//
// Activations live in "cluster order" (cluster c's nodes at rows [offset_c, offset_c + n_c)).
// Pass 0 reads features and computes Z_0 = X W_0 and the full-graph degree of every node.
// Pass l reads each cluster's adjacency and inter-cluster edges (every edge of the graph),
// aggregates Z_l with full-graph GCN normalization, adds b_l and, except after the last
// layer, applies ReLU and W_{l+1}; the last pass takes the argmax and scores it.
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <cmath>
#include <mutex>

#include "cgcn/batch.h"
#include "cgcn/raw_reader.h"
#include "cgcn/trainer.h"

namespace cgcn {
namespace {

struct EvalLocal {
  ShardDecoder decoder;
  ClusterData data;
  std::vector<uint32_t> offsets, columns;
  std::vector<float> weights, self_weights;
  Workspace h;
};

// Runs fn(cluster, local) over all clusters in parallel; returns the first error.
template <typename Fn>
Status ForEachCluster(const ShardDirectory& shards, tbb::enumerable_thread_specific<EvalLocal>& locals, Fn&& fn) {
  std::mutex mu;
  Status first;
  std::atomic<bool> failed{false};
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, shards.num_clusters(), 1), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t c = r.begin(); c != r.end(); ++c) {
      if (failed.load()) return;
      Status s = fn(c, locals.local());
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  });
  return first;
}

}  // namespace

Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, bool row_normalize,
                                   std::vector<Prediction>* predictions, const ProgressFn& progress) {
  const Manifest& m = shards.manifest();
  const GcnConfig& cfg = model.config();
  if (cfg.in_dim != m.feat_dim || cfg.out_dim != m.num_classes)
    return Status::InvalidArgument("model dimensions (" + std::to_string(cfg.in_dim) + " -> " + std::to_string(cfg.out_dim) +
                                   ") do not match the shards (" + std::to_string(m.feat_dim) + " features, " +
                                   std::to_string(m.num_classes) + " classes)");
  const std::vector<uint32_t> dims = cfg.Dims();
  const auto N = static_cast<Eigen::Index>(m.num_nodes);
  const std::vector<uint64_t>& off = shards.cluster_offsets();
  uint32_t width = 0;
  for (size_t l = 1; l < dims.size(); ++l) width = std::max(width, dims[l]);
  std::vector<float> zbuf(static_cast<size_t>(N) * width), znext(static_cast<size_t>(N) * width);
  std::vector<float> dinv(static_cast<size_t>(N));
  tbb::enumerable_thread_specific<EvalLocal> locals;
  const uint32_t L = cfg.layers;
  const uint64_t total_steps = uint64_t{L + 1} * shards.num_clusters();
  std::atomic<uint64_t> steps{0};
  std::mutex progress_mu;
  auto tick = [&]() {
    const uint64_t d = ++steps;
    if (progress) {
      std::lock_guard<std::mutex> lock(progress_mu);
      progress("evaluate", d, total_steps);
    }
  };

  // Pass 0: Z_0 = X W_0 and degrees.
  CGCN_RETURN_IF_ERROR(ForEachCluster(shards, locals, [&](uint32_t c, EvalLocal& t) -> Status {
    CGCN_RETURN_IF_ERROR(shards.Load(c, SectionBit(SectionKind::kFeatures) | SectionBit(SectionKind::kAdjacency) |
                                            SectionBit(SectionKind::kInter),
                                     t.decoder, t.data));
    const uint32_t n = t.data.num_nodes;
    std::vector<uint32_t> deg(n);
    for (uint32_t i = 0; i < n; ++i) deg[i] = t.data.adj_offsets[i + 1] - t.data.adj_offsets[i] + 1;
    for (uint32_t s : t.data.inter_src) ++deg[s];
    for (uint32_t i = 0; i < n; ++i) dinv[off[c] + i] = 1.0f / std::sqrt(static_cast<float>(deg[i]));
    tick();
    if (n == 0) return Status::Ok();
    if (row_normalize) RowNormalize(t.data.features.data(), n, m.feat_dim);
    ConstMatrixMap x(t.data.features.data(), n, m.feat_dim);
    MatMul(x, model.weight(0), MatrixMap(zbuf.data() + off[c] * dims[1], n, dims[1]));
    return Status::Ok();
  }));

  std::vector<uint64_t> correct(3, 0), count(3, 0);
  std::mutex acc_mu;
  if (predictions) predictions->assign(static_cast<size_t>(N), Prediction{0, 0});
  for (uint32_t l = 0; l < L; ++l) {
    const bool last = l + 1 == L;
    const uint32_t d = dims[l + 1];
    ConstMatrixMap z(zbuf.data(), N, d);
    SectionMask mask = kStructureSections;
    if (last) mask |= SectionBit(SectionKind::kLabels) | SectionBit(SectionKind::kSplit);
    CGCN_RETURN_IF_ERROR(ForEachCluster(shards, locals, [&](uint32_t c, EvalLocal& t) -> Status {
      CGCN_RETURN_IF_ERROR(shards.Load(c, mask, t.decoder, t.data));
      const ClusterData& cd = t.data;
      const uint32_t n = cd.num_nodes;
      tick();
      if (n == 0) return Status::Ok();
      // This cluster's rows of the full normalized adjacency, columns in cluster order.
      t.offsets.assign(uint64_t{n} + 1, 0);
      for (uint32_t i = 0; i < n; ++i) t.offsets[i + 1] = cd.adj_offsets[i + 1] - cd.adj_offsets[i];
      for (uint32_t s : cd.inter_src) ++t.offsets[s + 1];
      for (uint32_t i = 0; i < n; ++i) t.offsets[i + 1] += t.offsets[i];
      const uint64_t nnz = t.offsets[n];
      t.columns.resize(nnz);
      t.weights.resize(nnz);
      t.self_weights.resize(n);
      std::vector<uint32_t> cursor(t.offsets.begin(), t.offsets.end() - 1);
      const uint64_t base = off[c];
      for (uint32_t i = 0; i < n; ++i)
        for (uint32_t e = cd.adj_offsets[i]; e < cd.adj_offsets[i + 1]; ++e)
          t.columns[cursor[i]++] = static_cast<uint32_t>(base + cd.adj_neighbors[e]);
      for (const InterGroup& g : cd.inter_groups)
        for (uint64_t e = g.begin; e < g.begin + g.count; ++e)
          t.columns[cursor[cd.inter_src[e]]++] = static_cast<uint32_t>(off[g.cluster] + cd.inter_dst[e]);
      for (uint32_t i = 0; i < n; ++i) {
        const float di = dinv[base + i];
        t.self_weights[i] = di * di;
        for (uint32_t e = t.offsets[i]; e < t.offsets[i + 1]; ++e) t.weights[e] = di * dinv[t.columns[e]];
      }
      SparseRows a{t.offsets, t.columns, t.weights, t.self_weights, base};
      MatrixMap h = t.h.Get(n, d);
      Propagate(a, z, h);
      h.rowwise() += model.bias(l);
      if (!last) {
        h = h.cwiseMax(0.0f);
        const uint32_t d2 = dims[l + 2];
        MatMul(ConstMatrixMap(h.data(), n, d), model.weight(l + 1), MatrixMap(znext.data() + base * d2, n, d2));
      } else {
        uint64_t corr[3] = {0, 0, 0}, cnt[3] = {0, 0, 0};
        for (uint32_t i = 0; i < n; ++i) {
          Eigen::Index arg = 0;
          h.row(i).maxCoeff(&arg);
          const auto pred = static_cast<uint32_t>(arg);
          if (predictions) (*predictions)[base + i] = Prediction{cd.node_ids[i], pred};
          for (int s = 0; s < 3; ++s) {
            if (cd.split[i] & (1u << s)) {
              ++cnt[s];
              corr[s] += pred == cd.labels[i];
            }
          }
        }
        std::lock_guard<std::mutex> lock(acc_mu);
        for (int s = 0; s < 3; ++s) {
          correct[s] += corr[s];
          count[s] += cnt[s];
        }
      }
      return Status::Ok();
    }));
    if (!last) std::swap(zbuf, znext);
  }
  auto ratio = [](uint64_t a, uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : std::nan(""); };
  Accuracy acc;
  acc.train = ratio(correct[0], count[0]);
  acc.valid = ratio(correct[1], count[1]);
  acc.test = ratio(correct[2], count[2]);
  return acc;
}

}  // namespace cgcn
