// Kernels shared by the model's plain GCN path (gcn.cc) and its general path (layers.cc):
// dropout masks, ReLU, deterministic column sums, sparse-input products.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "cgcn/dense.h"

namespace cgcn::model_detail {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function: a bijective 64-bit mixer.
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from the top 24 bits (every value exactly representable as a float).
inline float UnitFloat(uint64_t r) { return static_cast<float>(r >> 40) * 0x1.0p-24f; }

// A bijective 32-bit mixer (Wellons' "lowbias32"): two multiplies, so a row's draws vectorize
// (AVX2 has 32-bit but no 64-bit lane multiplies).
inline uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The dropout key of row `row` of a layer: both halves of the 64-bit layer key and the row.
inline uint32_t RowKey(uint64_t layer_key, uint64_t row) {
  return Mix32(Mix32(static_cast<uint32_t>(row) ^ static_cast<uint32_t>(layer_key)) ^
               static_cast<uint32_t>(layer_key >> 32) ^ static_cast<uint32_t>(row >> 32));
}

// The dropout draw of element j of a row: the top 24 bits of Mix32(row_key ^ (j + 1) * golden32).
// The element is kept when the draw, read as a fraction of 2^24, is >= p, i.e. when it is
// >= threshold = ceil(p * 2^24); this depends only on (layer key, row, j), never on which thread
// runs the row. 32-bit integer lanes, so the loops below vectorize eight elements at a time.
inline uint32_t ElementDraw(uint32_t row_key, Eigen::Index j) {
  return Mix32(row_key ^ (static_cast<uint32_t>(j) + 1u) * 0x9E3779B9u) >> 8;
}

// One row of h = relu(y + b) * dropout, in place in y [d], and mask [d] = d h / d y (0 where
// y + b <= 0 or the unit is dropped, else keep_scale). Branch-free.
inline void ReluDropoutRow(float* __restrict y, float* __restrict mask, const float* __restrict b, Eigen::Index d,
                           uint32_t row_key, uint32_t threshold, float keep_scale) {
  for (Eigen::Index j = 0; j < d; ++j) {
    const float v = y[j] + b[j];
    const float kept = ElementDraw(row_key, j) >= threshold ? keep_scale : 0.0f;
    mask[j] = v > 0.0f ? kept : 0.0f;
    y[j] = std::max(v, 0.0f) * kept;
  }
}

// One row of out = x * dropout (input dropout): the same draw as ReluDropoutRow's, no ReLU.
inline void DropoutRow(const float* __restrict x, float* __restrict out, Eigen::Index d, uint32_t row_key,
                       uint32_t threshold, float keep_scale) {
  for (Eigen::Index j = 0; j < d; ++j) out[j] = x[j] * (ElementDraw(row_key, j) >= threshold ? keep_scale : 0.0f);
}

// The layer index whose key draws the input dropout (no model has that many layers).
constexpr uint32_t kInputDropoutLayer = 0xFFFFFFFEu;

// The dropout of one Forward: whether units are dropped, the factor of a kept unit (p >= 1 drops
// everything), the 24-bit threshold a draw must reach to keep its unit (u >= ceil(p 2^24), exact)
// and the step's key; layer l's key is LayerKey(l), row i's RowKey(LayerKey(l), i).
struct DropoutDraw {
  bool drop = false;
  float keep_scale = 1.0f;
  uint32_t threshold = 0;
  uint64_t seed_key = 0;

  DropoutDraw(float p, bool training, uint64_t dropout_seed)
      : drop(training && p > 0.0f),
        keep_scale(p < 1.0f ? 1.0f / (1.0f - p) : 0.0f),
        threshold(static_cast<uint32_t>(std::ceil(std::clamp(static_cast<double>(p), 0.0, 1.0) * 0x1.0p24))),
        seed_key(Mix64(dropout_seed + kGolden)) {}
  uint64_t LayerKey(uint32_t l) const { return Mix64(seed_key + (l + 1) * kGolden); }
};

// The same without dropout: h = relu(y + b), mask = 1 where y + b > 0.
inline void ReluRow(float* __restrict y, float* __restrict mask, const float* __restrict b, Eigen::Index d) {
  for (Eigen::Index j = 0; j < d; ++j) {
    const float v = y[j] + b[j];
    mask[j] = static_cast<float>(v > 0.0f);
    y[j] = std::max(v, 0.0f);
  }
}

// Rows per task for the elementwise passes over [n x d] activations.
constexpr Eigen::Index kRowGrain = 64;
// Rows per partial sum in AddColumnSums (fixed: the reduction order must not depend on threads).
constexpr Eigen::Index kSumRows = 2048;

// Eigen has no implicit MatrixMap -> ConstMatrixMap conversion.
inline ConstMatrixMap AsConst(MatrixMap m) { return ConstMatrixMap(m.data(), m.rows(), m.cols()); }

// Calls fn(begin, end) over [0, rows) in parallel; fn must treat rows independently.
template <typename Fn>
void ParallelRows(Eigen::Index rows, const Fn& fn) {
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, rows, kRowGrain),
                    [&](const tbb::blocked_range<Eigen::Index>& r) { fn(r.begin(), r.end()); });
}

// acc[d] += sum of the rows of m [n x d], summed per fixed chunk of kSumRows rows and the chunk
// partials added in order. scratch holds the partials.
inline void AddColumnSums(ConstMatrixMap m, Eigen::Map<Eigen::RowVectorXf> acc, Workspace& scratch) {
  const Eigen::Index n = m.rows(), d = m.cols();
  const Eigen::Index chunks = (n + kSumRows - 1) / kSumRows;
  if (chunks == 0) return;
  MatrixMap partials = scratch.Get(chunks, d);  // [chunks x d]
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, chunks, 1),
      [&](const tbb::blocked_range<Eigen::Index>& r) {
        for (Eigen::Index c = r.begin(); c != r.end(); ++c) {
          const Eigen::Index begin = c * kSumRows, end = std::min(n, begin + kSumRows);
          auto p = partials.row(c);
          p = m.row(begin);
          for (Eigen::Index i = begin + 1; i < end; ++i) p += m.row(i);
        }
      },
      tbb::simple_partitioner());
  for (Eigen::Index c = 0; c < chunks; ++c) acc += partials.row(c);
}

// z [n x m] = X w for X [n x k] in CSR (row_offsets, cols, vals) and w [k x m] row-major; rows in
// parallel, each row summed over its non-zeros in ascending column order (deterministic).
inline void SparseTimesDense(std::span<const uint32_t> row_offsets, std::span<const uint32_t> cols,
                             std::span<const float> vals, ConstMatrixMap w, MatrixMap z) {
  const Eigen::Index n = z.rows(), m = z.cols();
  ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      float* zi = z.data() + i * m;
      std::fill(zi, zi + m, 0.0f);
      for (uint32_t e = row_offsets[i]; e < row_offsets[i + 1]; ++e) {
        const float v = vals[e];
        const float* wk = w.data() + static_cast<Eigen::Index>(cols[e]) * m;
        for (Eigen::Index j = 0; j < m; ++j) zi[j] += v * wk[j];
      }
    }
  });
}

}  // namespace cgcn::model_detail
