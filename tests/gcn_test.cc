// Gcn, SoftmaxCrossEntropy and Adam against independent references: a dense forward pass,
// central finite differences, hand computations.
// GCC 12 with AVX-512 reports false "may be used uninitialized" warnings inside Eigen's GEMM
// kernels; the pragma must precede the first Eigen include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cgcn/gcn.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

namespace cgcn {
namespace {

using Edges = std::vector<std::pair<uint32_t, uint32_t>>;

// A normalized undirected graph in CSR.
struct Csr {
  std::vector<uint32_t> offsets, columns;
  std::vector<float> weights, self_weights;
  SparseRows Rows() const { return SparseRows{offsets, columns, weights, self_weights, 0}; }
};

Csr FromEdges(uint32_t n, const Edges& edges) {
  std::vector<std::vector<uint32_t>> adj(n);
  for (auto [a, b] : edges) {
    adj[a].push_back(b);
    adj[b].push_back(a);
  }
  Csr g;
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

Eigen::MatrixXd DenseAHat(uint32_t n, const Edges& edges) {
  Eigen::MatrixXd a = Eigen::MatrixXd::Identity(n, n);
  for (auto [u, v] : edges) a(u, v) = a(v, u) = 1.0;
  const Eigen::VectorXd dinv = a.rowwise().sum().array().rsqrt();
  return dinv.asDiagonal() * a * dinv.asDiagonal();
}

RowMatrix RandomMatrix(Eigen::Index rows, Eigen::Index cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  RowMatrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

ConstMatrixMap CView(const RowMatrix& m) { return ConstMatrixMap(m.data(), m.rows(), m.cols()); }
MatrixMap MView(RowMatrix& m) { return MatrixMap(m.data(), m.rows(), m.cols()); }

// The 7-node batch used by the gradient tests:
//
//   0 --- 1 --- 2
//   |     |
//   3 --- 4     5 --- 6
const Edges kSmallEdges = {{0, 1}, {1, 2}, {0, 3}, {1, 4}, {3, 4}, {5, 6}};
constexpr uint32_t kSmallN = 7;

// in_dim 5 <= 2 x hidden: layer 0 aggregates the input first ((A_hat X) W_0); with
// kWideInput > 2 x hidden it transforms first (A_hat (X W_0)). Tests cover both. (With 11 inputs
// one hidden unit sits within the finite-difference step of the ReLU kink; 13 avoids that.)
constexpr uint32_t kWideInput = 13;

GcnConfig SmallConfig(uint32_t layers, float dropout, uint32_t in_dim = 5, float input_dropout = 0.0f) {
  GcnConfig c;
  c.in_dim = in_dim;
  c.hidden = 4;
  c.out_dim = 3;
  c.layers = layers;
  c.dropout = dropout;
  c.input_dropout = input_dropout;
  return c;
}

TEST(GcnConfig, Dims) {
  GcnConfig c = SmallConfig(1, 0.0f);
  EXPECT_EQ(c.Dims(), (std::vector<uint32_t>{5, 3}));
  c.layers = 2;
  EXPECT_EQ(c.Dims(), (std::vector<uint32_t>{5, 4, 3}));
  c.layers = 3;
  EXPECT_EQ(c.Dims(), (std::vector<uint32_t>{5, 4, 4, 3}));
}

TEST(GcnInit, LayoutGlorotRangeZeroBiasAndSeed) {
  GcnConfig c;
  c.in_dim = 100;
  c.hidden = 64;
  c.out_dim = 10;
  c.layers = 3;
  Gcn model(c, 42);
  // W_0 [100 x 64], b_0 [64], W_1 [64 x 64], b_1 [64], W_2 [64 x 10], b_2 [10].
  const size_t expected = 100 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10;
  ASSERT_EQ(model.params().size(), expected);
  ASSERT_EQ(model.grads().size(), expected);
  EXPECT_EQ(model.weight(0).data(), model.params().data());
  EXPECT_EQ(model.bias(0).data(), model.params().data() + 6400);
  EXPECT_EQ(model.weight(1).data(), model.params().data() + 6464);
  EXPECT_EQ(model.bias(2).data(), model.params().data() + expected - 10);
  EXPECT_EQ(model.weight_grad(1).data(), model.grads().data() + 6464);
  EXPECT_EQ(model.bias_grad(2).data(), model.grads().data() + expected - 10);
  EXPECT_EQ(model.weight(2).rows(), 64);
  EXPECT_EQ(model.weight(2).cols(), 10);

  const std::vector<uint32_t> dims = c.Dims();
  for (uint32_t l = 0; l < 3; ++l) {
    const double a = std::sqrt(6.0 / (dims[l] + dims[l + 1]));
    auto w = model.weight(l);
    EXPECT_LE(w.cwiseAbs().maxCoeff(), a) << "layer " << l;
    EXPECT_GE(w.cwiseAbs().maxCoeff(), 0.95 * a) << "layer " << l;  // fills the range
    // U(-a, a): mean 0, variance a^2 / 3.
    const double mean = w.cast<double>().mean();
    const double var = w.cast<double>().array().square().mean();
    EXPECT_NEAR(mean, 0.0, 4 * a / std::sqrt(3.0 * static_cast<double>(w.size()))) << "layer " << l;
    EXPECT_NEAR(var / (a * a / 3.0), 1.0, 0.1) << "layer " << l;
    EXPECT_TRUE(model.bias(l).isZero(0.0f)) << "layer " << l;
  }
  Gcn same(c, 42), other(c, 43);
  EXPECT_TRUE(std::equal(model.params().begin(), model.params().end(), same.params().begin()));
  EXPECT_FALSE(std::equal(model.params().begin(), model.params().end(), other.params().begin()));
}

// Sets every bias to small random values so the bias paths are exercised.
void RandomizeBiases(Gcn& model, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  for (uint32_t l = 0; l < model.config().layers; ++l)
    for (Eigen::Index j = 0; j < model.bias(l).size(); ++j) model.bias(l)(j) = u(rng);
}

// Keeps every 10th entry of x (row-major order) and zeroes the rest: at most 1/8 non-zero, so a
// transform-first layer 0 takes the sparse-input path.
RowMatrix Sparsified(RowMatrix x) {
  for (Eigen::Index e = 0; e < x.size(); ++e)
    if (e % 10 != 3) x.data()[e] = 0.0f;
  return x;
}

TEST(GcnForward, MatchesDenseReferenceWithoutDropout) {
  for (bool sparse : {false, true})
    for (uint32_t in_dim : {5u, kWideInput})
      for (uint32_t layers : {1u, 2u, 3u}) {
        SCOPED_TRACE(testing::Message() << "layers " << layers << ", in_dim " << in_dim << ", sparse " << sparse);
        Gcn model(SmallConfig(layers, 0.5f, in_dim), 7);
        EXPECT_EQ(model.AggregatesInputFirst(), in_dim <= 2 * model.config().Dims()[1]);
        RandomizeBiases(model, 8);
        const Csr g = FromEdges(kSmallN, kSmallEdges);
        const RowMatrix x = sparse ? Sparsified(RandomMatrix(kSmallN, in_dim, 9)) : RandomMatrix(kSmallN, in_dim, 9);
        const Eigen::MatrixXd ahat = DenseAHat(kSmallN, kSmallEdges);
        Eigen::MatrixXd h = x.cast<double>();
        for (uint32_t l = 0; l < layers; ++l) {
          h = ahat * (h * model.weight(l).cast<double>());
          h.rowwise() += model.bias(l).cast<double>();
          if (l + 1 < layers) h = h.cwiseMax(0.0);
        }
        // Evaluation mode: no dropout even though config.dropout = 0.5.
        const ConstMatrixMap logits = model.Forward(g.Rows(), CView(x), /*training=*/false, 1);
        EXPECT_EQ(model.LastInputWasSparse(), sparse && !model.AggregatesInputFirst());
        ASSERT_EQ(logits.rows(), kSmallN);
        ASSERT_EQ(logits.cols(), 3);
        for (Eigen::Index i = 0; i < logits.rows(); ++i)
          for (Eigen::Index j = 0; j < logits.cols(); ++j) EXPECT_NEAR(logits(i, j), h(i, j), 1e-5);
      }
}

// Loss of the model's current parameters on the small batch (labels/mask fixed).
struct SmallBatch {
  explicit SmallBatch(uint32_t in_dim = 5, bool sparse = false)
      : x(sparse ? Sparsified(RandomMatrix(kSmallN, in_dim, 21)) : RandomMatrix(kSmallN, in_dim, 21)) {}
  Csr graph = FromEdges(kSmallN, kSmallEdges);
  RowMatrix x;
  std::vector<uint32_t> labels = {0, 2, 1, 1, 0, 2, 1};
  std::vector<uint8_t> mask = {1, 1, 1, 0, 1, 1, 1};  // node 3 is not a training node
  RowMatrix grad = RowMatrix(kSmallN, 3);

  float Loss(Gcn& model, bool training, uint64_t dropout_seed) {
    uint32_t count = 0;
    const ConstMatrixMap logits = model.Forward(graph.Rows(), CView(x), training, dropout_seed);
    return SoftmaxCrossEntropy(logits, labels, mask, MView(grad), &count);
  }
};

// Checks every parameter's gradient against a central difference of the float loss.
void CheckGradients(uint32_t layers, float dropout, bool training, uint32_t in_dim = 5, bool sparse = false,
                    float input_dropout = 0.0f) {
  Gcn model(SmallConfig(layers, dropout, in_dim, input_dropout), 100 + layers);
  RandomizeBiases(model, 5);
  SmallBatch batch(in_dim, sparse);
  const uint64_t dropout_seed = 77;
  model.ZeroGrad();
  batch.Loss(model, training, dropout_seed);
  EXPECT_EQ(model.LastInputWasSparse(), sparse && !model.AggregatesInputFirst());
  model.Backward(batch.graph.Rows(), CView(batch.x), CView(batch.grad));
  const std::vector<float> analytic(model.grads().begin(), model.grads().end());

  // A bias or weight of every layer must get a nonzero gradient, or the check proves little.
  float largest = 0.0f;
  for (float v : analytic) largest = std::max(largest, std::abs(v));
  ASSERT_GT(largest, 1e-2f);

  const float eps = 1e-3f;
  std::span<float> params = model.params();
  size_t checked_nonzero = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const float saved = params[i];
    const float up = saved + eps, down = saved - eps;
    params[i] = up;
    const double loss_up = batch.Loss(model, training, dropout_seed);
    params[i] = down;
    const double loss_down = batch.Loss(model, training, dropout_seed);
    params[i] = saved;
    const double numeric = (loss_up - loss_down) / (static_cast<double>(up) - static_cast<double>(down));
    EXPECT_NEAR(analytic[i], numeric, 2e-4 + 2e-2 * std::abs(numeric)) << "parameter " << i;
    checked_nonzero += std::abs(numeric) > 1e-3;
  }
  EXPECT_GT(checked_nonzero, params.size() / 3);
}

TEST(GcnGradient, TwoLayersMatchFiniteDifferences) { CheckGradients(2, 0.0f, true); }
TEST(GcnGradient, ThreeLayersMatchFiniteDifferences) { CheckGradients(3, 0.0f, true); }
TEST(GcnGradient, TwoLayersEvalModeMatchFiniteDifferences) { CheckGradients(2, 0.5f, false); }
TEST(GcnGradient, TwoLayersWithDropoutMatchFiniteDifferences) { CheckGradients(2, 0.3f, true); }
TEST(GcnGradient, ThreeLayersWithDropoutMatchFiniteDifferences) { CheckGradients(3, 0.3f, true); }
TEST(GcnGradient, TransformFirstTwoLayersMatchFiniteDifferences) { CheckGradients(2, 0.0f, true, kWideInput); }
TEST(GcnGradient, TransformFirstThreeLayersWithDropoutMatchFiniteDifferences) {
  CheckGradients(3, 0.3f, true, kWideInput);
}
TEST(GcnGradient, TransformFirstOneLayerMatchesFiniteDifferences) { CheckGradients(1, 0.0f, true, kWideInput); }
TEST(GcnGradient, AggregateFirstOneLayerMatchesFiniteDifferences) { CheckGradients(1, 0.0f, true, 2); }
// Sparse inputs (bag-of-words): layer 0 runs over X's non-zeros in CSR and CSC form.
TEST(GcnGradient, SparseInputTwoLayersMatchFiniteDifferences) { CheckGradients(2, 0.0f, true, kWideInput, true); }
TEST(GcnGradient, SparseInputThreeLayersWithDropoutMatchFiniteDifferences) {
  CheckGradients(3, 0.3f, true, kWideInput, true);
}
TEST(GcnGradient, SparseInputOneLayerMatchesFiniteDifferences) { CheckGradients(1, 0.0f, true, kWideInput, true); }

// Input dropout: the gradient is that of the loss on the dropped input (the same draw for the
// same seed), on every layer-0 path.
TEST(GcnGradient, InputDropoutAggregateFirstMatchesFiniteDifferences) { CheckGradients(2, 0.3f, true, 5, false, 0.4f); }
TEST(GcnGradient, InputDropoutTransformFirstMatchesFiniteDifferences) {
  CheckGradients(2, 0.3f, true, kWideInput, false, 0.4f);
}
TEST(GcnGradient, InputDropoutSparseInputMatchesFiniteDifferences) {
  CheckGradients(2, 0.0f, true, kWideInput, true, 0.4f);
}

// The plain path's gradients with every product on oneDNN (aggregate-first, transform-first,
// sparse input).
TEST(GcnGradient, OneDnnProductsMatchFiniteDifferences) {
  if (!OneDnnAvailable()) GTEST_SKIP() << "built without oneDNN";
  const ScopedDenseBackend onednn({DenseBackend::kOneDnn, 0.0});
  CheckGradients(3, 0.3f, true);
  CheckGradients(2, 0.3f, true, kWideInput);
  CheckGradients(2, 0.0f, true, kWideInput, true);
}

TEST(GcnGradient, BackwardAccumulatesUntilZeroGrad) {
  Gcn model(SmallConfig(2, 0.0f), 3);
  SmallBatch batch;
  model.ZeroGrad();
  batch.Loss(model, true, 1);
  model.Backward(batch.graph.Rows(), CView(batch.x), CView(batch.grad));
  const std::vector<float> once(model.grads().begin(), model.grads().end());
  model.Backward(batch.graph.Rows(), CView(batch.x), CView(batch.grad));
  for (size_t i = 0; i < once.size(); ++i) EXPECT_FLOAT_EQ(model.grads()[i], 2.0f * once[i]);
  model.ZeroGrad();
  for (float v : model.grads()) EXPECT_EQ(v, 0.0f);
}

// No edges (A_hat = I), W_0 = 0 and b_0 = 1 so every hidden unit is 1 before dropout, and
// W_1 = I, b_1 = 0: the logits are exactly the dropout factors of layer 0.
struct DropoutProbe {
  static constexpr uint32_t kN = 2000, kHidden = 64;
  Csr graph = FromEdges(kN, {});
  RowMatrix x = RandomMatrix(kN, 3, 1);
  Gcn model;

  explicit DropoutProbe(float p) : model(Config(p), 0) {
    model.weight(0).setZero();
    model.bias(0).setOnes();
    model.weight(1).setIdentity();
    model.bias(1).setZero();
  }
  static GcnConfig Config(float p) {
    GcnConfig c;
    c.in_dim = 3;
    c.hidden = kHidden;
    c.out_dim = kHidden;
    c.layers = 2;
    c.dropout = p;
    return c;
  }
  RowMatrix Run(bool training, uint64_t seed) { return model.Forward(graph.Rows(), CView(x), training, seed); }
};

// The fraction of h's entries kept by a dropout of probability p (each entry must be 0 or
// 1 / (1 - p), else -1).
double KeptFraction(const RowMatrix& h, float p) {
  const float scale = 1.0f / (1.0f - p);
  size_t kept = 0;
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    const float v = h.data()[i];
    if (v != 0.0f && v != scale) {
      ADD_FAILURE() << "entry " << i << " is " << v << ", expected 0 or " << scale;
      return -1.0;
    }
    kept += v != 0.0f;
  }
  return static_cast<double>(kept) / static_cast<double>(h.size());
}

TEST(GcnDropout, KeepsAboutOneMinusPAndScales) {
  const float p = 0.3f;
  DropoutProbe probe(p);
  const RowMatrix h = probe.Run(true, 5);
  // 128000 draws: the standard deviation of the kept fraction is about 0.0013.
  EXPECT_NEAR(KeptFraction(h, p), 1.0 - p, 0.01);
  // Each column (unit) and row (node) is dropped independently, not all-or-nothing.
  EXPECT_GT(h.col(0).cwiseEqual(0.0f).count(), 400);
  EXPECT_GT(h.row(0).cwiseEqual(0.0f).count(), 5);
  // Masks come from the element index: no two nodes share a 64-unit pattern (by chance
  // that would take 2^-50 or so), whichever rows a task happened to process.
  std::vector<std::vector<float>> patterns;
  for (Eigen::Index i = 0; i < 300; ++i) patterns.emplace_back(h.row(i).begin(), h.row(i).end());
  std::sort(patterns.begin(), patterns.end());
  EXPECT_EQ(std::unique(patterns.begin(), patterns.end()) - patterns.begin(), 300);

  // Same seed: the same mask; another seed: a different one; evaluation: no dropout.
  EXPECT_EQ(probe.Run(true, 5), h);
  EXPECT_NE(probe.Run(true, 6), h);
  EXPECT_EQ(probe.Run(false, 5), RowMatrix::Ones(DropoutProbe::kN, DropoutProbe::kHidden));
}

// One layer, no edges (A_hat = I), W_0 = I, b_0 = 0, x = 1: the logits are exactly the input
// dropout's factors.
struct InputDropoutProbe {
  static constexpr uint32_t kN = 2000, kDim = 64;
  Csr graph = FromEdges(kN, {});
  RowMatrix x = RowMatrix::Ones(kN, kDim);
  Gcn model;

  explicit InputDropoutProbe(float p) : model(Config(p), 0) {
    model.weight(0).setIdentity();
    model.bias(0).setZero();
  }
  static GcnConfig Config(float p) {
    GcnConfig c;
    c.in_dim = kDim;
    c.hidden = kDim;
    c.out_dim = kDim;
    c.layers = 1;
    c.dropout = 0.0f;
    c.input_dropout = p;
    return c;
  }
  RowMatrix Run(bool training, uint64_t seed, const float* propagated = nullptr) {
    return model.Forward(graph.Rows(), CView(x), training, seed, propagated);
  }
};

TEST(GcnInputDropout, DropsAboutPOfTheInputsAndScalesTheRest) {
  const float p = 0.4f;
  InputDropoutProbe probe(p);
  const RowMatrix h = probe.Run(true, 5);
  // 128000 draws: the standard deviation of the kept fraction is about 0.0014.
  EXPECT_NEAR(KeptFraction(h, p), 1.0 - p, 0.01);
  EXPECT_GT(h.col(0).cwiseEqual(0.0f).count(), 600);
  // Same seed: the same draw; another seed: another; evaluation: the input as it is.
  EXPECT_EQ(probe.Run(true, 5), h);
  EXPECT_NE(probe.Run(true, 6), h);
  EXPECT_EQ(probe.Run(false, 5), probe.x);
  // The hidden layers' dropout draws from other keys: a 2-layer probe's layer-0 mask (DropoutProbe,
  // same seed) is not this one.
  DropoutProbe hidden(p);
  const RowMatrix hidden_mask = hidden.Run(true, 5);
  EXPECT_NE((hidden_mask.array() != 0.0f).matrix(), (h.array() != 0.0f).matrix());
  // A_hat x computed by the caller is of the undropped input: training ignores it.
  const RowMatrix garbage = RowMatrix::Constant(InputDropoutProbe::kN, InputDropoutProbe::kDim, 7.0f);
  EXPECT_EQ(probe.Run(true, 5, garbage.data()), h);
}

TEST(GcnDropout, ZeroProbabilityKeepsEverything) {
  DropoutProbe probe(0.0f);
  EXPECT_EQ(probe.Run(true, 5), RowMatrix::Ones(DropoutProbe::kN, DropoutProbe::kHidden));
}

// fn() with at most `threads` TBB threads, in an arena of that size (so partitioners see it too).
template <typename Fn>
auto RunWithThreads(int threads, const Fn& fn) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  return arena.execute(fn);
}

struct StepResult {
  RowMatrix logits;
  std::vector<float> grads;
};

StepResult TrainStep() {
  const uint32_t n = 6000;
  Edges edges;
  std::mt19937 rng(3);
  for (uint32_t e = 0; e < 40000; ++e) {
    const auto a = static_cast<uint32_t>(rng() % n), b = static_cast<uint32_t>(rng() % n);
    if (a != b) edges.emplace_back(std::min(a, b), std::max(a, b));
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  const Csr g = FromEdges(n, edges);
  GcnConfig c;
  c.in_dim = 30;
  c.hidden = 72;
  c.out_dim = 7;
  c.layers = 3;
  c.dropout = 0.5f;
  Gcn model(c, 9);
  const RowMatrix x = RandomMatrix(n, c.in_dim, 4);
  std::vector<uint32_t> labels(n);
  std::vector<uint8_t> mask(n);
  for (uint32_t i = 0; i < n; ++i) {
    labels[i] = static_cast<uint32_t>(rng() % c.out_dim);
    mask[i] = rng() % 3 == 0;
  }
  RowMatrix grad(n, c.out_dim);
  StepResult r;
  for (int step = 0; step < 2; ++step) {  // the second step runs on warm workspaces
    model.ZeroGrad();
    r.logits = model.Forward(g.Rows(), CView(x), true, 11);
    uint32_t count = 0;
    SoftmaxCrossEntropy(CView(r.logits), labels, mask, MView(grad), &count);
    model.Backward(g.Rows(), CView(x), CView(grad));
  }
  r.grads.assign(model.grads().begin(), model.grads().end());
  return r;
}

TEST(GcnDeterminism, ForwardBackwardBitIdenticalWithOneAndTwoThreads) {
  const StepResult one = RunWithThreads(1, TrainStep);
  const StepResult two = RunWithThreads(2, TrainStep);
  ASSERT_EQ(one.logits.size(), two.logits.size());
  EXPECT_EQ(std::memcmp(one.logits.data(), two.logits.data(), sizeof(float) * static_cast<size_t>(one.logits.size())),
            0);
  ASSERT_EQ(one.grads.size(), two.grads.size());
  EXPECT_EQ(std::memcmp(one.grads.data(), two.grads.data(), sizeof(float) * one.grads.size()), 0);
}

TEST(GcnInputDropout, TheSameForOneAndTwoThreads) {
  InputDropoutProbe probe(0.5f);
  const RowMatrix one = RunWithThreads(1, [&] { return probe.Run(true, 9); });
  const RowMatrix two = RunWithThreads(2, [&] { return probe.Run(true, 9); });
  EXPECT_EQ(one, two);
}

// The plan counts the dropped copy of x; checkpoint signatures name input dropout only when set
// (so a checkpoint written before the option existed still resumes).
TEST(GcnInputDropout, CountedInTheWorkspaceAndNamedInTheSignatureWhenSet) {
  GcnConfig with = SmallConfig(2, 0.5f, 13, 0.5f), without = SmallConfig(2, 0.5f, 13);
  EXPECT_EQ(Gcn::WorkspaceBytes(with, 1000) - Gcn::WorkspaceBytes(without, 1000), 1000u * 13u * sizeof(float));
  with.norm = without.norm = NormKind::kLayer;  // the general path
  EXPECT_EQ(Gcn::WorkspaceBytes(with, 1000, 50) - Gcn::WorkspaceBytes(without, 1000, 50), 1000u * 13u * sizeof(float));
  EXPECT_EQ(without.LayerSignature(), "model=gcn diag_lambda=0 heads=1 residual=0 norm=layer");
  EXPECT_EQ(with.LayerSignature(), "model=gcn diag_lambda=0 heads=1 residual=0 norm=layer input_dropout=0.5");
}

TEST(SoftmaxCrossEntropy, MatchesHandComputationWithMaskedRow) {
  // Row 1 is masked out (its huge logit must not matter); rows 0 and 2 count.
  RowMatrix logits(3, 3);
  logits << 1.0f, 2.0f, 3.0f,  //
      100.0f, 0.0f, 0.0f,      //
      0.5f, -1.0f, 2.0f;
  const std::vector<uint32_t> labels = {2, 1, 1};
  const std::vector<uint8_t> mask = {1, 0, 1};
  RowMatrix grad = RowMatrix::Constant(3, 3, std::nanf(""));
  uint32_t count = 99;
  const float loss = SoftmaxCrossEntropy(CView(logits), labels, mask, MView(grad), &count);
  EXPECT_EQ(count, 2u);
  // Row 0: log(e^1 + e^2 + e^3) - 3 = 0.40760596; row 2: log(e^0.5 + e^-1 + e^2) + 1 = 3.24131130.
  EXPECT_NEAR(loss, (0.40760596 + 3.24131130) / 2.0, 1e-6);
  // grad = (softmax - onehot) / 2.
  const double z0 = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const double z2 = std::exp(0.5) + std::exp(-1.0) + std::exp(2.0);
  const double want[3][3] = {{std::exp(1.0) / z0 / 2, std::exp(2.0) / z0 / 2, (std::exp(3.0) / z0 - 1) / 2},
                             {0, 0, 0},
                             {std::exp(0.5) / z2 / 2, (std::exp(-1.0) / z2 - 1) / 2, std::exp(2.0) / z2 / 2}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(grad(i, j), want[i][j], 1e-6) << i << "," << j;
}

TEST(SoftmaxCrossEntropy, EmptyMaskGivesZeroLossAndGrad) {
  const RowMatrix logits = RandomMatrix(4, 5, 1);
  const std::vector<uint32_t> labels = {0, 1, 2, 3};
  const std::vector<uint8_t> mask(4, 0);
  RowMatrix grad = RowMatrix::Constant(4, 5, 7.0f);
  uint32_t count = 99;
  EXPECT_EQ(SoftmaxCrossEntropy(CView(logits), labels, mask, MView(grad), &count), 0.0f);
  EXPECT_EQ(count, 0u);
  EXPECT_TRUE(grad.isZero(0.0f));
}

TEST(SoftmaxCrossEntropy, StableForLargeLogits) {
  RowMatrix logits(1, 2);
  logits << 1000.0f, 0.0f;
  const std::vector<uint32_t> labels = {1};
  const std::vector<uint8_t> mask = {1};
  RowMatrix grad(1, 2);
  uint32_t count = 0;
  EXPECT_NEAR(SoftmaxCrossEntropy(CView(logits), labels, mask, MView(grad), &count), 1000.0f, 1e-3f);
  EXPECT_NEAR(grad(0, 0), 1.0f, 1e-6f);
  EXPECT_NEAR(grad(0, 1), -1.0f, 1e-6f);
}

TEST(Adam, TwoStepsMatchHandUnrolledTorchUpdate) {
  const double lr = 0.1, wd = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<float> params = {0.5f, -1.0f, 0.0f};
  const std::vector<float> g1 = {0.2f, -3.0f, 0.0f}, g2 = {-0.1f, 1.5f, 0.0f};
  Adam adam(3, static_cast<float>(lr), static_cast<float>(wd));
  adam.Step(params, g1);
  EXPECT_EQ(adam.steps(), 1u);
  adam.Step(params, g2);
  EXPECT_EQ(adam.steps(), 2u);

  // torch.optim.Adam, written out for two steps: g += wd * p; m = b1 m + (1 - b1) g;
  // v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  const double p0[3] = {0.5, -1.0, 0.0}, grad1[3] = {0.2, -3.0, 0.0}, grad2[3] = {-0.1, 1.5, 0.0};
  for (int i = 0; i < 3; ++i) {
    double p = p0[i];
    const double ga = grad1[i] + wd * p;
    const double m1 = (1 - b1) * ga, v1 = (1 - b2) * ga * ga;
    p -= lr / (1 - b1) * m1 / (std::sqrt(v1) / std::sqrt(1 - b2) + eps);
    const double gb = grad2[i] + wd * p;
    const double m2 = b1 * m1 + (1 - b1) * gb, v2 = b2 * v1 + (1 - b2) * gb * gb;
    p -= lr / (1 - b1 * b1) * m2 / (std::sqrt(v2) / std::sqrt(1 - b2 * b2) + eps);
    EXPECT_NEAR(params[i], p, 1e-6) << i;
    EXPECT_NEAR(adam.m()[i], m2, 1e-7) << i;
    // 1 - 0.999f is 0.00100005 in float: v is only good to about 5e-5 relative.
    EXPECT_NEAR(adam.v()[i], v2, 1e-4 * v2) << i;
  }
  // The zero parameter with zero gradient does not move (weight decay of 0 is 0).
  EXPECT_EQ(params[2], 0.0f);
}

TEST(Adam, FirstStepMovesEachParameterByLrAgainstTheGradient) {
  std::vector<float> params = {1.0f, 1.0f, -2.0f};
  const std::vector<float> grads = {1e-3f, -50.0f, 4.0f};
  Adam adam(3, 0.01f, 0.0f);
  adam.Step(params, grads);
  EXPECT_NEAR(params[0], 1.0f - 0.01f, 1e-6f);
  EXPECT_NEAR(params[1], 1.0f + 0.01f, 1e-6f);
  EXPECT_NEAR(params[2], -2.0f - 0.01f, 1e-6f);
}

}  // namespace
}  // namespace cgcn
