// The general model path (cluster-gcn, sage, gcn with norm and residual) against independent
// references: a dense forward pass written with naive loops from the adjacency, and central
// finite differences of the loss for every parameter (weights, root weights, biases, norm
// scales and shifts).
// GCC 12 with AVX-512 reports false "may be used uninitialized" warnings inside Eigen's GEMM
// kernels; the pragma must precede the first Eigen include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "cgcn/evaluate.h"
#include "cgcn/gcn.h"
#include "cgcn/shard_directory.h"
#include "testutil/shards.h"

namespace cgcn {
namespace {

using Edges = std::vector<std::pair<uint32_t, uint32_t>>;
using Dense = std::vector<std::vector<double>>;

//   0 --- 1 --- 2        7 (isolated)
//   |     |
//   3 --- 4     5 --- 6
const Edges kEdges = {{0, 1}, {1, 2}, {0, 3}, {1, 4}, {3, 4}, {5, 6}};
constexpr uint32_t kN = 8;

struct Graph {
  std::vector<uint32_t> offsets, columns;
  std::vector<float> weights, self_weights;
  SparseRows Rows() const { return SparseRows{offsets, columns, weights, self_weights, 0}; }
};

Graph MakeGraph(uint32_t n, const Edges& edges) {
  std::vector<std::vector<uint32_t>> adj(n);
  for (auto [a, b] : edges) {
    adj[a].push_back(b);
    adj[b].push_back(a);
  }
  Graph g;
  g.offsets.push_back(0);
  for (auto& row : adj) {
    std::sort(row.begin(), row.end());
    g.columns.insert(g.columns.end(), row.begin(), row.end());
    g.offsets.push_back(static_cast<uint32_t>(g.columns.size()));
  }
  g.weights.resize(g.columns.size());
  g.self_weights.resize(n);
  GcnNormalize(g.offsets, g.columns, g.weights, g.self_weights);
  return g;
}

// The layer's aggregation matrix, from its definition.
Dense DenseAggregation(const GcnConfig& c, uint32_t n, const Edges& edges) {
  Dense a(n, std::vector<double>(n, 0.0));
  for (auto [u, v] : edges) a[u][v] = a[v][u] = 1.0;
  std::vector<double> deg(n, 0.0);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = 0; j < n; ++j) deg[i] += a[i][j];
  Dense p(n, std::vector<double>(n, 0.0));
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = 0; j < n; ++j) {
      switch (c.kind) {
        case LayerKind::kGcn:  // D^-1/2 (A + I) D^-1/2, degrees with the self loop
          p[i][j] = (a[i][j] + (i == j ? 1.0 : 0.0)) / std::sqrt((deg[i] + 1) * (deg[j] + 1));
          break;
        case LayerKind::kClusterGcn:  // (A' + lambda diag(A')), A' = (D + I)^-1 (A + I)
          p[i][j] = (a[i][j] + (i == j ? 1.0 + c.diag_lambda : 0.0)) / (deg[i] + 1);
          break;
        case LayerKind::kSage:  // mean over the neighbours
          p[i][j] = deg[i] > 0 ? a[i][j] / deg[i] : 0.0;
          break;
        case LayerKind::kGat:  // attention: computed per layer in DenseForward
          p[i][j] = a[i][j] + (i == j ? 1.0 : 0.0);
          break;
      }
    }
  return p;
}

Dense Mul(const Dense& a, const Dense& b) {
  Dense c(a.size(), std::vector<double>(b[0].size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k) {
      if (a[i][k] == 0.0) continue;  // the aggregations are mostly zeros
      for (size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
    }
  return c;
}

template <typename M>
Dense FromMap(const M& m) {
  Dense d(static_cast<size_t>(m.rows()), std::vector<double>(static_cast<size_t>(m.cols())));
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) d[i][j] = m(i, j);
  return d;
}

// The model's forward pass without dropout, naive loops in double. training: batch norm uses the
// batch's statistics (biased variance), else the running ones.
Dense DenseForward(const Gcn& model, const Dense& x, const Edges& edges, bool training) {
  const GcnConfig& c = model.config();
  const auto n = static_cast<uint32_t>(x.size());
  const Dense p = DenseAggregation(c, n, edges);
  Dense h = x;
  for (uint32_t l = 0; l < c.layers; ++l) {
    Dense out;
    if (c.kind == LayerKind::kGat) {
      // Per head: alpha_ij = softmax over j in N(i) + i of LeakyReLU_0.2(a_src . Z_j + a_dst . Z_i).
      const Dense z = Mul(h, FromMap(model.weight(l)));
      const size_t d = z[0].size(), heads = c.HeadsAt(l), width = d / heads;
      out.assign(n, std::vector<double>(d, 0.0));
      for (size_t hd = 0; hd < heads; ++hd) {
        std::vector<double> s(n, 0.0), t(n, 0.0);
        for (uint32_t i = 0; i < n; ++i)
          for (size_t k = hd * width; k < (hd + 1) * width; ++k) {
            s[i] += z[i][k] * model.att_src(l)(static_cast<Eigen::Index>(k));
            t[i] += z[i][k] * model.att_dst(l)(static_cast<Eigen::Index>(k));
          }
        for (uint32_t i = 0; i < n; ++i) {
          std::vector<double> e(n, -1e300);
          double mx = -1e300;
          for (uint32_t j = 0; j < n; ++j) {
            if (p[i][j] == 0.0) continue;
            const double v = s[j] + t[i];
            e[j] = v > 0 ? v : 0.2 * v;
            mx = std::max(mx, e[j]);
          }
          double sum = 0;
          for (uint32_t j = 0; j < n; ++j)
            if (p[i][j] != 0.0) sum += std::exp(e[j] - mx);
          for (uint32_t j = 0; j < n; ++j) {
            if (p[i][j] == 0.0) continue;
            const double alpha = std::exp(e[j] - mx) / sum;
            for (size_t k = hd * width; k < (hd + 1) * width; ++k) out[i][k] += alpha * z[j][k];
          }
        }
      }
    } else {
      out = Mul(p, Mul(h, FromMap(model.weight(l))));
    }
    if (c.HasRoot()) {
      const Dense r = Mul(h, FromMap(model.root_weight(l)));
      for (uint32_t i = 0; i < n; ++i)
        for (size_t j = 0; j < out[i].size(); ++j) out[i][j] += r[i][j];
    }
    const size_t d = out[0].size();
    for (uint32_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) out[i][j] += model.bias(l)(static_cast<Eigen::Index>(j));
    if (l + 1 == c.layers) return out;
    if (c.Normalized(l)) {
      const auto gamma = model.norm_scale(l);
      const auto beta = model.norm_shift(l);
      if (c.norm == NormKind::kLayer) {
        for (uint32_t i = 0; i < n; ++i) {
          double mean = 0, var = 0;
          for (size_t j = 0; j < d; ++j) mean += out[i][j] / static_cast<double>(d);
          for (size_t j = 0; j < d; ++j) var += (out[i][j] - mean) * (out[i][j] - mean) / static_cast<double>(d);
          for (size_t j = 0; j < d; ++j)
            out[i][j] = (out[i][j] - mean) / std::sqrt(var + 1e-5) * gamma(static_cast<Eigen::Index>(j)) +
                        beta(static_cast<Eigen::Index>(j));
        }
      } else {
        Gcn& m = const_cast<Gcn&>(model);
        for (size_t j = 0; j < d; ++j) {
          double mean = 0, var = 0;
          if (training) {
            for (uint32_t i = 0; i < n; ++i) mean += out[i][j] / n;
            for (uint32_t i = 0; i < n; ++i) var += (out[i][j] - mean) * (out[i][j] - mean) / n;
          } else {
            mean = m.running_mean(l)(static_cast<Eigen::Index>(j));
            var = m.running_var(l)(static_cast<Eigen::Index>(j));
          }
          for (uint32_t i = 0; i < n; ++i)
            out[i][j] = (out[i][j] - mean) / std::sqrt(var + 1e-5) * gamma(static_cast<Eigen::Index>(j)) +
                        beta(static_cast<Eigen::Index>(j));
        }
      }
    }
    for (uint32_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) {
        out[i][j] = std::max(out[i][j], 0.0);
        if (c.ResidualAt(l)) out[i][j] += h[i][j];
      }
    h = out;
  }
  return h;
}

RowMatrix RandomMatrix(Eigen::Index rows, Eigen::Index cols, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  RowMatrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

// Every 10th entry kept: at most 1/8 non-zero, so layer 0 runs over X's non-zeros.
RowMatrix Sparsified(RowMatrix x) {
  for (Eigen::Index e = 0; e < x.size(); ++e)
    if (e % 10 != 3) x.data()[e] = 0.0f;
  return x;
}

ConstMatrixMap CView(const RowMatrix& m) { return ConstMatrixMap(m.data(), m.rows(), m.cols()); }
MatrixMap MView(RowMatrix& m) { return MatrixMap(m.data(), m.rows(), m.cols()); }

struct Case {
  LayerKind kind;
  NormKind norm;
  bool residual;
  uint32_t layers;
  uint32_t in_dim;
  bool sparse;
};

std::string Name(const Case& k) {
  return std::string(LayerKindName(k.kind)) + " norm=" + NormKindName(k.norm) +
         " residual=" + std::to_string(k.residual) + " layers=" + std::to_string(k.layers) +
         " in=" + std::to_string(k.in_dim) + (k.sparse ? " sparse" : "");
}

GcnConfig ConfigOf(const Case& k, float dropout) {
  GcnConfig c;
  c.in_dim = k.in_dim;
  c.hidden = 5;
  c.out_dim = 3;
  c.layers = k.layers;
  c.dropout = dropout;
  c.kind = k.kind;
  c.diag_lambda = k.kind == LayerKind::kClusterGcn ? 0.7f : 0.0f;
  if (k.kind == LayerKind::kGat) {  // two or three heads of 3 or 2 units
    c.hidden = 6;
    c.heads = k.sparse ? 3 : 2;
  }
  c.residual = k.residual;
  c.norm = k.norm;
  return c;
}

// Every parameter and buffer away from its initial value (biases, norm scales and shifts,
// running statistics), so that each path is exercised.
void Perturb(Gcn& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.4f, 0.4f);
  const GcnConfig& c = model.config();
  for (uint32_t l = 0; l < c.layers; ++l) {
    for (Eigen::Index j = 0; j < model.bias(l).size(); ++j) model.bias(l)(j) = u(rng);
    if (!c.Normalized(l)) continue;
    for (Eigen::Index j = 0; j < model.norm_scale(l).size(); ++j) {
      model.norm_scale(l)(j) = 1.0f + u(rng);
      model.norm_shift(l)(j) = u(rng);
    }
    if (c.norm == NormKind::kBatch)
      for (Eigen::Index j = 0; j < model.running_mean(l).size(); ++j) {
        model.running_mean(l)(j) = u(rng);
        model.running_var(l)(j) = 0.5f + u(rng) + 0.4f;
      }
  }
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (NormKind norm : {NormKind::kNone, NormKind::kLayer, NormKind::kBatch})
      for (bool residual : {false, true}) {
        if (kind == LayerKind::kGcn && norm == NormKind::kNone && !residual) continue;  // the plain path
        cases.push_back({kind, norm, residual, 3, 5, false});
        cases.push_back({kind, norm, residual, 2, 13, true});
      }
  cases.push_back({LayerKind::kClusterGcn, NormKind::kNone, false, 1, 4, false});
  cases.push_back({LayerKind::kSage, NormKind::kNone, false, 1, 13, true});
  cases.push_back({LayerKind::kGat, NormKind::kNone, false, 1, 13, true});
  cases.push_back({LayerKind::kGat, NormKind::kLayer, true, 3, 6, false});  // residual from layer 0
  return cases;
}

TEST(LayersConfig, ParamCountsLayoutAndNames) {
  GcnConfig c = ConfigOf({LayerKind::kSage, NormKind::kBatch, true, 3, 5, false}, 0.0f);
  // Per layer W, b, W_root; the two hidden layers add gamma and beta: 5x5 +5 +25 +10, twice, then 5x3 +3 +15.
  EXPECT_EQ(Gcn::ParamCount(c), 2u * (25 + 5 + 25 + 10) + 15 + 3 + 15);
  EXPECT_EQ(Gcn::BufferCount(c), 2u * 10);
  Gcn model(c, 1);
  EXPECT_EQ(model.params().size(), Gcn::ParamCount(c));
  EXPECT_EQ(model.buffers().size(), 20u);
  EXPECT_EQ(model.weight_offset(1), 65u);
  EXPECT_EQ(model.root_offset(0), 30u);
  EXPECT_EQ(model.scale_offset(0), 55u);
  EXPECT_TRUE(model.norm_scale(1).isOnes());
  EXPECT_TRUE(model.norm_shift(1).isZero());
  EXPECT_TRUE(model.running_mean(0).isZero());
  EXPECT_TRUE(model.running_var(0).isOnes());
  EXPECT_TRUE(c.ResidualAt(0) && c.ResidualAt(1) && !c.ResidualAt(2));
  c.in_dim = 6;
  EXPECT_FALSE(c.ResidualAt(0));
  EXPECT_FALSE(model.AggregatesInputFirst());
  LayerKind k;
  NormKind nk;
  EXPECT_TRUE(ParseLayerKind("cluster-gcn", &k));
  EXPECT_EQ(k, LayerKind::kClusterGcn);
  EXPECT_FALSE(ParseLayerKind("gin", &k));
  EXPECT_TRUE(ParseNormKind("layer", &nk));
  EXPECT_EQ(nk, NormKind::kLayer);
  EXPECT_FALSE(ParseNormKind("group", &nk));
  // The root weight is drawn after W, so W_0 is the plain GCN's W_0 for the same seed.
  GcnConfig plain = c;
  plain.kind = LayerKind::kGcn;
  plain.norm = NormKind::kNone;
  plain.residual = false;
  Gcn a(plain, 9), b(c, 9);
  EXPECT_EQ(a.weight(0), b.weight(0));
}

TEST(LayersForward, MatchesDenseReference) {
  const Graph g = MakeGraph(kN, kEdges);
  for (const Case& k : AllCases())
    for (bool training : {true, false}) {
      SCOPED_TRACE(Name(k) + (training ? " training" : " eval"));
      Gcn model(ConfigOf(k, 0.0f), 3);
      Perturb(model, 4);
      const RowMatrix x = k.sparse ? Sparsified(RandomMatrix(kN, k.in_dim, 5)) : RandomMatrix(kN, k.in_dim, 5);
      const Dense ref = DenseForward(model, FromMap(x), kEdges, training);
      const RowMatrix logits = model.Forward(g.Rows(), CView(x), training, 1);
      EXPECT_EQ(model.LastInputWasSparse(), k.sparse);
      ASSERT_EQ(logits.rows(), kN);
      for (uint32_t i = 0; i < kN; ++i)
        for (uint32_t j = 0; j < 3; ++j) EXPECT_NEAR(logits(i, j), ref[i][j], 2e-5 * (1 + std::abs(ref[i][j])));
    }
}

TEST(LayersForward, BatchNormRunningStatisticsFollowTorch) {
  const Graph g = MakeGraph(kN, kEdges);
  GcnConfig c = ConfigOf({LayerKind::kSage, NormKind::kBatch, false, 2, 5, false}, 0.0f);
  Gcn model(c, 3);
  const RowMatrix x = RandomMatrix(kN, 5, 5);
  // The hidden layer's pre-norm values from the dense reference of a 1-layer model with the same
  // layer 0 (5 -> 5): its logits are C_0.
  GcnConfig one = c;
  one.layers = 1;
  one.out_dim = c.hidden;
  Gcn first(one, 0);
  std::copy_n(model.weight(0).data(), 25, first.weight(0).data());
  std::copy_n(model.root_weight(0).data(), 25, first.root_weight(0).data());
  const Dense pre = DenseForward(first, FromMap(x), kEdges, true);
  model.Forward(g.Rows(), CView(x), true, 1);
  model.Forward(g.Rows(), CView(x), true, 2);  // twice: the update compounds
  for (Eigen::Index j = 0; j < 5; ++j) {
    double mean = 0, var = 0;
    for (uint32_t i = 0; i < kN; ++i) mean += pre[i][j] / kN;
    for (uint32_t i = 0; i < kN; ++i) var += (pre[i][j] - mean) * (pre[i][j] - mean) / (kN - 1);  // unbiased
    const double m1 = 0.1 * mean, v1 = 0.9 + 0.1 * var;
    EXPECT_NEAR(model.running_mean(0)(j), 0.9 * m1 + 0.1 * mean, 1e-5);
    EXPECT_NEAR(model.running_var(0)(j), 0.9 * v1 + 0.1 * var, 1e-5);
  }
  // Evaluation leaves them alone.
  const std::vector<float> before(model.buffers().begin(), model.buffers().end());
  model.Forward(g.Rows(), CView(x), false, 3);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), model.buffers().begin()));
}

struct Batch {
  Graph graph = MakeGraph(kN, kEdges);
  RowMatrix x;
  std::vector<uint32_t> labels = {0, 2, 1, 1, 0, 2, 1, 0};
  std::vector<uint8_t> mask = {1, 1, 1, 0, 1, 1, 1, 1};
  RowMatrix grad = RowMatrix(kN, 3);

  float Loss(Gcn& model, bool training, uint64_t seed) {
    uint32_t count = 0;
    const ConstMatrixMap logits = model.Forward(graph.Rows(), CView(x), training, seed);
    return SoftmaxCrossEntropy(logits, labels, mask, MView(grad), &count);
  }
};

void CheckGradients(const Case& k, float dropout, bool training, float input_dropout = 0.0f) {
  SCOPED_TRACE(Name(k) + " dropout " + std::to_string(dropout) + " input dropout " + std::to_string(input_dropout) +
               (training ? " training" : " eval"));
  GcnConfig config = ConfigOf(k, dropout);
  config.input_dropout = input_dropout;
  Gcn model(config, 11);
  Perturb(model, 12);
  Batch batch;
  batch.x = k.sparse ? Sparsified(RandomMatrix(kN, k.in_dim, 21)) : RandomMatrix(kN, k.in_dim, 21);
  const uint64_t seed = 77;
  model.ZeroGrad();
  batch.Loss(model, training, seed);
  model.Backward(batch.graph.Rows(), CView(batch.x), CView(batch.grad));
  const std::vector<float> analytic(model.grads().begin(), model.grads().end());
  std::span<float> params = model.params();
  auto numeric_at = [&](size_t i, float eps) {
    const float saved = params[i];
    const float up = saved + eps, down = saved - eps;
    params[i] = up;
    const double loss_up = batch.Loss(model, training, seed);
    params[i] = down;
    const double loss_down = batch.Loss(model, training, seed);
    params[i] = saved;
    return (loss_up - loss_down) / (static_cast<double>(up) - static_cast<double>(down));
  };
  size_t nonzero = 0, kinks = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const double numeric = numeric_at(i, 1e-3f);
    const double tol = 3e-4 + 3e-2 * std::abs(numeric);
    // A ReLU kink within the step makes the central difference depend on the step: then the
    // parameter is skipped (and counted: at most a few may be).
    if (std::abs(analytic[i] - numeric) > tol && std::abs(numeric_at(i, 2.5e-4f) - numeric) > tol) {
      ++kinks;
      continue;
    }
    EXPECT_NEAR(analytic[i], numeric, tol) << "parameter " << i;
    nonzero += std::abs(numeric) > 1e-3;
  }
  EXPECT_LE(kinks, 1 + params.size() / 100);
  EXPECT_GT(nonzero, params.size() / 4);
  // Every kind of parameter got a gradient: the last W_root and the first norm scale and shift.
  const GcnConfig& c = model.config();
  if (c.HasRoot()) {
    const size_t r = model.root_offset(c.layers - 1);
    // W_root of the last layer: [dims[L-1] x C], its first (at most) 15 entries.
    const size_t root_size = size_t{c.layers > 1 ? c.hidden : c.in_dim} * c.out_dim;
    float largest = 0;
    for (size_t i = r; i < r + std::min<size_t>(15, root_size); ++i) largest = std::max(largest, std::abs(analytic[i]));
    EXPECT_GT(largest, 1e-3f);
  }
  if (c.kind == LayerKind::kGat) {  // both attention vectors of the first layer
    const size_t a = model.att_offset(0);
    float largest_src = 0, largest_dst = 0;
    if (c.layers > 1) {
      for (size_t i = 0; i < c.hidden; ++i) {
        largest_src = std::max(largest_src, std::abs(analytic[a + i]));
        largest_dst = std::max(largest_dst, std::abs(analytic[a + c.hidden + i]));
      }
      EXPECT_GT(largest_src, 1e-4f);
      EXPECT_GT(largest_dst, 1e-4f);
    }
  }
  if (c.Normalized(0)) {
    const size_t s = model.scale_offset(0);
    float largest = 0;
    for (size_t i = s; i < s + 10; ++i) largest = std::max(largest, std::abs(analytic[i]));
    EXPECT_GT(largest, 1e-3f);
  }
}

TEST(LayersGradient, EveryKindNormAndResidualMatchFiniteDifferences) {
  for (const Case& k : AllCases()) CheckGradients(k, 0.0f, true);
}

TEST(LayersGradient, WithDropoutMatchFiniteDifferences) {
  for (LayerKind kind : {LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (NormKind norm : {NormKind::kLayer, NormKind::kBatch})
      CheckGradients({kind, norm, true, 3, 5, false}, 0.3f, true);
}

// Input dropout on the general path (every kind; dense and sparse inputs).
TEST(LayersGradient, WithInputDropoutMatchFiniteDifferences) {
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (bool sparse : {false, true}) CheckGradients({kind, NormKind::kLayer, true, 2, 13, sparse}, 0.2f, true, 0.4f);
}

TEST(LayersGradient, EvalModeBatchNormMatchesFiniteDifferences) {
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    CheckGradients({kind, NormKind::kBatch, true, 3, 5, false}, 0.0f, false);
}

// fn() with at most `threads` TBB threads.
template <typename Fn>
auto RunWithThreads(int threads, const Fn& fn) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  return arena.execute(fn);
}

std::vector<float> Step(LayerKind kind, NormKind norm) {
  const uint32_t n = 5000;
  Edges edges;
  std::mt19937 rng(3);
  for (uint32_t e = 0; e < 30000; ++e) {
    const auto a = static_cast<uint32_t>(rng() % n), b = static_cast<uint32_t>(rng() % n);
    if (a != b) edges.emplace_back(std::min(a, b), std::max(a, b));
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  const Graph g = MakeGraph(n, edges);
  GcnConfig c;
  c.in_dim = 40;
  c.hidden = 40;
  c.out_dim = 7;
  c.layers = 3;
  c.kind = kind;
  c.norm = norm;
  c.residual = true;
  c.heads = kind == LayerKind::kGat ? 4 : 1;
  Gcn model(c, 9);
  const RowMatrix x = RandomMatrix(n, c.in_dim, 4);
  std::vector<uint32_t> labels(n);
  std::vector<uint8_t> mask(n);
  for (uint32_t i = 0; i < n; ++i) {
    labels[i] = static_cast<uint32_t>(rng() % c.out_dim);
    mask[i] = rng() % 3 == 0;
  }
  RowMatrix grad(n, c.out_dim);
  std::vector<float> out;
  for (int step = 0; step < 2; ++step) {
    model.ZeroGrad();
    const RowMatrix logits = model.Forward(g.Rows(), CView(x), true, 11);
    uint32_t count = 0;
    SoftmaxCrossEntropy(CView(logits), labels, mask, MView(grad), &count);
    model.Backward(g.Rows(), CView(x), CView(grad));
    out.assign(logits.data(), logits.data() + logits.size());
  }
  out.insert(out.end(), model.grads().begin(), model.grads().end());
  out.insert(out.end(), model.buffers().begin(), model.buffers().end());
  return out;
}

TEST(LayersDeterminism, BitIdenticalWithOneAndTwoThreads) {
  for (LayerKind kind : {LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (NormKind norm : {NormKind::kLayer, NormKind::kBatch}) {
      const std::vector<float> one = RunWithThreads(1, [&] { return Step(kind, norm); });
      const std::vector<float> two = RunWithThreads(2, [&] { return Step(kind, norm); });
      ASSERT_EQ(one.size(), two.size());
      EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0)
          << LayerKindName(kind) << " " << NormKindName(norm);
    }
}

// The same with every product on oneDNN.
TEST(LayersDeterminism, OneDnnBitIdenticalWithOneAndTwoThreads) {
  if (!OneDnnAvailable()) GTEST_SKIP() << "built without oneDNN";
  const ScopedDenseBackend onednn({DenseBackend::kOneDnn, 0.0});
  for (LayerKind kind : {LayerKind::kClusterGcn, LayerKind::kGat}) {
    const std::vector<float> one = RunWithThreads(1, [&] { return Step(kind, NormKind::kBatch); });
    const std::vector<float> two = RunWithThreads(2, [&] { return Step(kind, NormKind::kBatch); });
    ASSERT_EQ(one.size(), two.size());
    EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0) << LayerKindName(kind);
  }
}

// Every layer kind's gradients with every product on oneDNN.
TEST(LayersGradient, OneDnnProductsMatchFiniteDifferences) {
  if (!OneDnnAvailable()) GTEST_SKIP() << "built without oneDNN";
  const ScopedDenseBackend onednn({DenseBackend::kOneDnn, 0.0});
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (bool sparse : {false, true}) CheckGradients({kind, NormKind::kLayer, true, 2, 13, sparse}, 0.2f, true, 0.4f);
}

// Exact full-graph evaluation over shards (src/train/evaluate.cc) of every kind, norm and
// residual against the dense full-graph forward pass, in memory and spilled (bitwise the same).
class LayersEvalTest : public ::testing::Test {
 protected:
  // Large enough that the activations exceed the smallest spill chunk (64 KiB) several times.
  static constexpr uint32_t kNodes = 2500, kFeat = 12, kClasses = 4;
  void SetUp() override {
    spec_ = testutil::RandomRawDataset(kNodes, 12000, kFeat, kClasses, 31);
    testutil::BuildShards(spec_, tmp_.path(), tmp_.Join("shards"), 10);
    auto d = ShardDirectory::Open(tmp_.Join("shards"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dir_ = std::make_unique<ShardDirectory>(std::move(d).value());
    std::filesystem::create_directories(tmp_.Join("spill"));
    for (auto [u, v] : testutil::NaiveEdgeSet(spec_)) edges_.emplace_back(u, v);
    x_.assign(kNodes, std::vector<double>(kFeat));
    for (uint32_t v = 0; v < kNodes; ++v) {
      double sum = 0;
      for (float f : spec_.features[v]) sum += f;
      for (uint32_t f = 0; f < kFeat; ++f) x_[v][f] = spec_.features[v][f] / std::max(sum, 1.0);
    }
  }
  testutil::TempDir tmp_;
  testutil::RawDatasetSpec spec_;
  std::unique_ptr<ShardDirectory> dir_;
  Edges edges_;
  Dense x_;
};

TEST_F(LayersEvalTest, EveryKindMatchesDenseForwardInMemoryAndSpilled) {
  // Hidden kFeat: the residual applies from layer 0. Hidden 2 kFeat (not gat): layer 0 aggregates
  // its narrower input before W_0 (AggregateFirst in evaluate.cc), the residual from layer 1.
  std::vector<std::pair<Case, uint32_t>> cases;
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (NormKind norm : {NormKind::kNone, NormKind::kLayer, NormKind::kBatch})
      for (bool residual : {false, true})
        for (uint32_t hidden : {kFeat, 2 * kFeat})
          if (hidden == kFeat || kind != LayerKind::kGat)
            cases.push_back({{kind, norm, residual, 3, kFeat, false}, hidden});
  for (const auto& [k, hidden] : cases) {
    SCOPED_TRACE(Name(k) + " hidden=" + std::to_string(hidden));
    GcnConfig c = ConfigOf(k, 0.5f);
    c.hidden = hidden;
    c.heads = k.kind == LayerKind::kGat ? 3 : 1;
    c.out_dim = kClasses;
    Gcn model(c, 5);
    Perturb(model, 6);
    const Dense ref = DenseForward(model, x_, edges_, /*training=*/false);
    std::vector<Prediction> mem, spilled;
    EvalStats mem_stats, spill_stats;
    Result<Accuracy> a = EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &mem, {}, EvalOptions{}, &mem_stats);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_EQ(mem.size(), kNodes);
    uint32_t compared = 0;
    for (const Prediction& p : mem) {
      const std::vector<double>& row = ref[p.node_id];
      std::vector<double> sorted = row;
      std::sort(sorted.rbegin(), sorted.rend());
      if (sorted[0] - sorted[1] < 1e-4) continue;  // a near tie: float and double may differ
      ++compared;
      EXPECT_EQ(p.label, static_cast<uint32_t>(std::max_element(row.begin(), row.end()) - row.begin()))
          << "node " << p.node_id;
    }
    EXPECT_GT(compared, kNodes * 9 / 10);

    const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
    Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), c, EvalOptions{}, true, threads);
    ASSERT_TRUE(probe.ok());
    Result<Accuracy> b = EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &spilled, {},
                                           EvalOptions{probe->min_bytes, tmp_.Join("spill")}, &spill_stats);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_TRUE(spill_stats.plan.spill);
    EXPECT_GT(spill_stats.plan.blocks.size(), 3u);
    EXPECT_LT(spill_stats.plan.chunk_bytes, uint64_t{kNodes} * kFeat * sizeof(float)) << "one chunk";
    EXPECT_GT(spill_stats.spill_read_bytes, 0u);
    EXPECT_EQ(b->test, a->test);
    EXPECT_EQ(b->valid, a->valid);
    ASSERT_EQ(spilled.size(), mem.size());
    for (size_t i = 0; i < mem.size(); ++i) {
      EXPECT_EQ(spilled[i].node_id, mem[i].node_id);
      EXPECT_EQ(spilled[i].label, mem[i].label) << "node " << mem[i].node_id;
    }
  }
}

}  // namespace
}  // namespace cgcn
