// GcnNormalize and Propagate against a dense D^-1/2 (A + I) D^-1/2 X built from an edge list.
// GCC 12 with AVX-512 reports false "may be used uninitialized" warnings inside Eigen's GEMM
// kernels; the pragma must precede the first Eigen include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cgcn/sparse.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace cgcn {
namespace {

// An undirected graph in CSR (both directions, sorted columns, no self loops), normalized.
struct Csr {
  uint32_t n = 0;
  std::vector<uint32_t> offsets, columns;
  std::vector<float> weights, self_weights;

  SparseRows Rows() const { return SparseRows{offsets, columns, weights, self_weights, 0}; }
};

Csr FromEdges(uint32_t n, const std::vector<std::pair<uint32_t, uint32_t>>& edges) {
  std::vector<std::vector<uint32_t>> adj(n);
  for (auto [a, b] : edges) {
    adj[a].push_back(b);
    adj[b].push_back(a);
  }
  Csr g;
  g.n = n;
  g.offsets.push_back(0);
  for (auto& row : adj) {
    std::sort(row.begin(), row.end());
    g.columns.insert(g.columns.end(), row.begin(), row.end());
    g.offsets.push_back(static_cast<uint32_t>(g.columns.size()));
  }
  g.weights.assign(g.columns.size(), -1.0f);
  g.self_weights.assign(n, -1.0f);
  GcnNormalize(g.offsets, g.columns, g.weights, g.self_weights);
  return g;
}

// D^-1/2 (A + I) D^-1/2 straight from the definition, in double.
Eigen::MatrixXd DenseAHat(uint32_t n, const std::vector<std::pair<uint32_t, uint32_t>>& edges) {
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

//   0 ----- 1
//   | \     |
//   |   \   |        4   (isolated: only its self loop)
//   |     \ |
//   3 ----- 2
//
// degrees with the self loop: 0:4, 1:3, 2:4, 3:3, 4:1
const std::vector<std::pair<uint32_t, uint32_t>> kTinyEdges = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {2, 3}};
constexpr uint32_t kTinyN = 5;

TEST(SparseGcnNormalize, MatchesDenseDefinitionOnTinyGraph) {
  const Csr g = FromEdges(kTinyN, kTinyEdges);
  const Eigen::MatrixXd ahat = DenseAHat(kTinyN, kTinyEdges);
  for (uint32_t i = 0; i < kTinyN; ++i) {
    EXPECT_NEAR(g.self_weights[i], ahat(i, i), 1e-7) << "node " << i;
    for (uint32_t e = g.offsets[i]; e < g.offsets[i + 1]; ++e)
      EXPECT_NEAR(g.weights[e], ahat(i, g.columns[e]), 1e-7) << "edge " << i << "-" << g.columns[e];
  }
  // A few entries by hand: deg(0) = 4, deg(1) = 3.
  EXPECT_FLOAT_EQ(g.self_weights[0], 0.25f);
  EXPECT_FLOAT_EQ(g.self_weights[4], 1.0f);
  EXPECT_FLOAT_EQ(g.weights[0], static_cast<float>(1.0 / std::sqrt(12.0)));  // edge 0-1
  // Symmetric: w(0, 2) == w(2, 0).
  EXPECT_EQ(g.weights[1], g.weights[g.offsets[2]]);
}

void ExpectMatches(const RowMatrix& y, const Eigen::MatrixXd& ref) {
  ASSERT_EQ(y.rows(), ref.rows());
  ASSERT_EQ(y.cols(), ref.cols());
  for (Eigen::Index i = 0; i < y.rows(); ++i)
    for (Eigen::Index j = 0; j < y.cols(); ++j) ASSERT_NEAR(y(i, j), ref(i, j), 1e-5) << "(" << i << ", " << j << ")";
}

TEST(SparsePropagate, MatchesDenseOnTinyGraph) {
  const Csr g = FromEdges(kTinyN, kTinyEdges);
  const Eigen::MatrixXd ahat = DenseAHat(kTinyN, kTinyEdges);
  // Every width up to 2 register tiles (64 floats each): every count of leftover 8-float
  // vectors and of leftover single floats, alone and after full tiles.
  for (Eigen::Index d = 1; d <= 136; ++d) {
    const RowMatrix x = RandomMatrix(kTinyN, d, static_cast<uint32_t>(d));
    RowMatrix y = RowMatrix::Constant(kTinyN, d, std::nanf(""));
    Propagate(g.Rows(), ConstMatrixMap(x.data(), kTinyN, d), MatrixMap(y.data(), kTinyN, d));
    SCOPED_TRACE(d);
    ExpectMatches(y, ahat * x.cast<double>());
  }
}

TEST(SparsePropagate, SelfBaseReadsLaterOperandRows) {
  // Rows 2..4 of the tiny graph as their own SparseRows whose columns (and self loops, via
  // self_base = 2) index the full 5-row operand: rows 2..4 of A_hat X.
  const Csr g = FromEdges(kTinyN, kTinyEdges);
  const uint32_t first = 2;
  std::vector<uint32_t> offsets;
  for (uint32_t i = first; i <= kTinyN; ++i) offsets.push_back(g.offsets[i] - g.offsets[first]);
  const std::span<const uint32_t> columns(g.columns.data() + g.offsets[first], offsets.back());
  const std::span<const float> weights(g.weights.data() + g.offsets[first], offsets.back());
  const std::span<const float> self_weights(g.self_weights.data() + first, kTinyN - first);
  const SparseRows rows{offsets, columns, weights, self_weights, first};
  ASSERT_EQ(rows.num_rows(), 3u);

  const Eigen::Index d = 9;
  const RowMatrix x = RandomMatrix(kTinyN, d, 11);
  RowMatrix y(3, d);
  Propagate(rows, ConstMatrixMap(x.data(), kTinyN, d), MatrixMap(y.data(), 3, d));
  const Eigen::MatrixXd full = DenseAHat(kTinyN, kTinyEdges) * x.cast<double>();
  ExpectMatches(y, full.middleRows(first, 3));
}

// A random graph with skewed degrees, big enough for many parallel tasks.
std::vector<std::pair<uint32_t, uint32_t>> RandomEdges(uint32_t n, uint32_t m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  while (edges.size() < m) {
    auto a = static_cast<uint32_t>(rng() % n), b = static_cast<uint32_t>(rng() % n);
    if (rng() % 4 == 0) b = static_cast<uint32_t>(rng() % 16);  // hubs
    if (a == b) continue;
    edges.emplace_back(std::min(a, b), std::max(a, b));
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

// Propagate with at most `threads` TBB threads, in an arena of that size.
RowMatrix PropagateWithThreads(int threads, const Csr& g, const RowMatrix& x) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  RowMatrix y(x.rows(), x.cols());
  arena.execute([&] {
    Propagate(g.Rows(), ConstMatrixMap(x.data(), x.rows(), x.cols()), MatrixMap(y.data(), y.rows(), y.cols()));
  });
  return y;
}

TEST(SparsePropagate, BitIdenticalWithOneAndTwoThreadsAndMatchesDense) {
  const uint32_t n = 1500;
  const auto edges = RandomEdges(n, 12000, 5);
  const Csr g = FromEdges(n, edges);
  const RowMatrix x = RandomMatrix(n, 67, 6);
  const RowMatrix one = PropagateWithThreads(1, g, x);
  const RowMatrix two = PropagateWithThreads(2, g, x);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), sizeof(float) * static_cast<size_t>(one.size())), 0);
  ExpectMatches(two, DenseAHat(n, edges) * x.cast<double>());
}

// AccumulateRow, the full-graph evaluation's kernel, against the sums written out by hand: each
// y[k] a chain of multiply-adds over the entries in order (fused, as the kernel's are on FMA
// builds), for widths around the kernel's 64-float tiles, 8-float vectors and masked tails,
// and rows shorter than its prefetch distance. Summed over several calls, each continuing where
// the previous stopped, a row equals one call.
TEST(SparseAccumulateRow, EqualsOrderedMultiplyAddsAndContinuesAcrossCalls) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const uint32_t rows = 300;
  for (const uint32_t d : {1u, 3u, 8u, 20u, 47u, 64u, 100u, 129u, 256u}) {
    std::vector<float> x(size_t{rows} * d);
    for (float& v : x) v = u(rng);
    for (const uint32_t nnz : {0u, 1u, 3u, 4u, 5u, 37u}) {
      std::vector<uint32_t> cols(nnz);
      std::vector<float> w(nnz);
      for (uint32_t e = 0; e < nnz; ++e) {
        cols[e] = static_cast<uint32_t>(rng() % rows);
        w[e] = u(rng);
      }
      std::vector<float> start(d);
      for (float& v : start) v = u(rng);
      std::vector<float> expect = start;
      std::vector<double> exact(start.begin(), start.end());
      for (uint32_t e = 0; e < nnz; ++e)
        for (uint32_t k = 0; k < d; ++k) {
          expect[k] = std::fma(w[e], x[size_t{cols[e]} * d + k], expect[k]);
          exact[k] += double{w[e]} * x[size_t{cols[e]} * d + k];
        }
      std::vector<float> one = start;
      AccumulateRow(x.data(), d, cols.data(), w.data(), nnz, one.data(), d);
      // In three calls, split at a third and at two thirds of the entries.
      std::vector<float> three = start;
      const uint32_t a = nnz / 3, b = 2 * nnz / 3;
      AccumulateRow(x.data(), d, cols.data(), w.data(), a, three.data(), d);
      AccumulateRow(x.data(), d, cols.data() + a, w.data() + a, b - a, three.data(), d);
      AccumulateRow(x.data(), d, cols.data() + b, w.data() + b, nnz - b, three.data(), d);
      SCOPED_TRACE("d " + std::to_string(d) + ", nnz " + std::to_string(nnz));
      EXPECT_EQ(std::memcmp(one.data(), three.data(), sizeof(float) * d), 0);
      for (uint32_t k = 0; k < d; ++k) ASSERT_NEAR(one[k], exact[k], 1e-5 * (1 + std::fabs(exact[k]))) << k;
#if defined(__FMA__)
      EXPECT_EQ(std::memcmp(one.data(), expect.data(), sizeof(float) * d), 0);
#endif
    }
  }
}

}  // namespace
}  // namespace cgcn
