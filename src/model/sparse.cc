// CSR x dense aggregation and GCNConv normalization.
//
// Each output row is computed by one task from its own CSR row, in CSR order, so the result
// does not depend on how rows are split among threads.
#include "cgcn/sparse.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace cgcn {
namespace {

// Feature columns handled per pass over a row's neighbours: kTile floats of accumulators
// (8 AVX registers) stay in registers while the neighbour rows stream through.
constexpr size_t kTile = 64;

// Rows per TBB task: enough work to amortize scheduling, fine enough to balance skewed degrees.
constexpr uint32_t kRowGrain = 32;

// y[0, len) = sw * self[0, len) + sum_e w[e] * x[col[e] * stride + 0, len), for len <= kTile.
// Len is a template parameter for the full tiles so the compiler unrolls into registers.
template <size_t Len>
inline void AccumulateTile(const float* __restrict x, size_t stride, const uint32_t* cols, const float* w,
                           uint32_t nnz, float sw, const float* __restrict self, float* __restrict y) {
  float acc[Len];
  for (size_t j = 0; j < Len; ++j) acc[j] = sw * self[j];
  for (uint32_t e = 0; e < nnz; ++e) {
    const float* __restrict xr = x + static_cast<size_t>(cols[e]) * stride;
    const float we = w[e];
    for (size_t j = 0; j < Len; ++j) acc[j] += we * xr[j];
  }
  for (size_t j = 0; j < Len; ++j) y[j] = acc[j];
}

inline void AccumulatePartial(const float* __restrict x, size_t stride, const uint32_t* cols, const float* w,
                              uint32_t nnz, float sw, const float* __restrict self, float* __restrict y,
                              size_t len) {
  for (size_t j = 0; j < len; ++j) y[j] = sw * self[j];
  for (uint32_t e = 0; e < nnz; ++e) {
    const float* __restrict xr = x + static_cast<size_t>(cols[e]) * stride;
    const float we = w[e];
    for (size_t j = 0; j < len; ++j) y[j] += we * xr[j];
  }
}

}  // namespace

void Propagate(const SparseRows& a, ConstMatrixMap x, MatrixMap y) {
  const uint32_t n = a.num_rows();
  assert(a.offsets.size() == static_cast<size_t>(n) + 1);
  assert(y.rows() == static_cast<Eigen::Index>(n) && y.cols() == x.cols());
  assert(a.self_base + n <= static_cast<uint64_t>(x.rows()));
  const size_t d = static_cast<size_t>(x.cols());
  const float* xd = x.data();  // [* x d], row stride d
  float* yd = y.data();        // [n x d]
  const uint32_t* offsets = a.offsets.data();
  const uint32_t* columns = a.columns.data();
  const float* weights = a.weights.data();
  const float* self_weights = a.self_weights.data();
  const uint64_t self_base = a.self_base;

  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, kRowGrain), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t i = r.begin(); i != r.end(); ++i) {
      const uint32_t begin = offsets[i];
      const uint32_t nnz = offsets[i + 1] - begin;
      const uint32_t* cols = columns + begin;
      const float* w = weights + begin;
      const float sw = self_weights[i];
      const float* self = xd + (self_base + i) * d;
      float* yi = yd + static_cast<size_t>(i) * d;
      size_t j = 0;
      for (; j + kTile <= d; j += kTile) {
        AccumulateTile<kTile>(xd + j, d, cols, w, nnz, sw, self + j, yi + j);
      }
      if (j < d) AccumulatePartial(xd + j, d, cols, w, nnz, sw, self + j, yi + j, d - j);
    }
  });
}

void GcnNormalize(std::span<const uint32_t> offsets, std::span<const uint32_t> columns, std::span<float> weights,
                  std::span<float> self_weights) {
  assert(!offsets.empty());
  const uint32_t n = static_cast<uint32_t>(offsets.size() - 1);
  assert(self_weights.size() == n);
  assert(weights.size() == columns.size() && columns.size() >= offsets[n]);
  // deg = row length + 1 (the self loop); computed in double, rounded once to float.
  auto degree = [&](uint32_t v) { return static_cast<double>(offsets[v + 1] - offsets[v]) + 1.0; };
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 256), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t i = r.begin(); i != r.end(); ++i) {
      const double deg_i = degree(i);
      self_weights[i] = static_cast<float>(1.0 / deg_i);
      for (uint32_t e = offsets[i]; e < offsets[i + 1]; ++e) {
        assert(columns[e] < n);
        weights[e] = static_cast<float>(1.0 / std::sqrt(deg_i * degree(columns[e])));
      }
    }
  });
}

}  // namespace cgcn
