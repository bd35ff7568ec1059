// CSR x dense aggregation and GCNConv normalization.
//
// Each output row is computed by one task from its own CSR row, in CSR order, so the result
// does not depend on how rows are split among threads.
#include "cgcn/sparse.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace cgcn {
namespace {

// Eight floats: one AVX register with -mavx (two SSE registers without). GCC/Clang vector
// extensions, because plain loops over the feature dimension nested in the neighbour loop
// get interchanged by GCC into scalar code, about 5x slower than this.
typedef float Vec8 __attribute__((vector_size(32)));
constexpr size_t kVec = 8;

// Feature columns handled per pass over a row's neighbours: kMaxVecs accumulators
// (8 of the 16 AVX registers) stay in registers while the neighbour rows stream through.
constexpr int kMaxVecs = 8;
constexpr size_t kTile = kMaxVecs * kVec;

// Rows per TBB task: enough work to amortize scheduling, fine enough to balance skewed degrees.
constexpr uint32_t kRowGrain = 32;

// One output row's columns [0, 8 V): y = sw * self + sum_e w[e] * x[cols[e] * stride + .].
// x, self and y are already offset to the first column; loads and stores are unaligned.
template <int V>
inline void RowTile(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float sw,
                    const float* self, float* y) {
  Vec8 acc[V];
  for (int v = 0; v < V; ++v) {
    Vec8 s;
    __builtin_memcpy(&s, self + kVec * v, sizeof s);
    acc[v] = sw * s;
  }
  for (uint32_t e = 0; e < nnz; ++e) {
    const float* xr = x + static_cast<size_t>(cols[e]) * stride;
    const float we = w[e];
    for (int v = 0; v < V; ++v) {
      Vec8 r;
      __builtin_memcpy(&r, xr + kVec * v, sizeof r);
      acc[v] += we * r;
    }
  }
  for (int v = 0; v < V; ++v) __builtin_memcpy(y + kVec * v, &acc[v], sizeof acc[v]);
}

// The same for the last len < 8 columns. With AVX they are one masked vector: the lanes past
// len are neither loaded nor stored, and each lane does the same multiply-adds in the same
// order as the scalar loop (so widths 100, 20 or 47 no longer pay a scalar gather per column
// and neighbour: on a 10k-node batch this tail took as long as the 96 vector columns before it).
inline void RowTail(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float sw,
                    const float* self, float* y, size_t len) {
#if defined(__AVX2__) && defined(__FMA__)
  alignas(32) static constexpr int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - len));
  __m256 acc = _mm256_mul_ps(_mm256_set1_ps(sw), _mm256_maskload_ps(self, mask));
  for (uint32_t e = 0; e < nnz; ++e)
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(w[e]), _mm256_maskload_ps(x + static_cast<size_t>(cols[e]) * stride, mask), acc);
  _mm256_maskstore_ps(y, mask, acc);
#else
  for (size_t j = 0; j < len; ++j) {
    float acc = sw * self[j];
    for (uint32_t e = 0; e < nnz; ++e) acc += w[e] * x[static_cast<size_t>(cols[e]) * stride + j];
    y[j] = acc;
  }
#endif
}

// Calls RowTile<V> for V = vecs (1 <= vecs < kMaxVecs).
inline void RowTileN(int vecs, const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz,
                     float sw, const float* self, float* y) {
  switch (vecs) {
    case 1:
      return RowTile<1>(x, stride, cols, w, nnz, sw, self, y);
    case 2:
      return RowTile<2>(x, stride, cols, w, nnz, sw, self, y);
    case 3:
      return RowTile<3>(x, stride, cols, w, nnz, sw, self, y);
    case 4:
      return RowTile<4>(x, stride, cols, w, nnz, sw, self, y);
    case 5:
      return RowTile<5>(x, stride, cols, w, nnz, sw, self, y);
    case 6:
      return RowTile<6>(x, stride, cols, w, nnz, sw, self, y);
    case 7:
      return RowTile<7>(x, stride, cols, w, nnz, sw, self, y);
    default:
      assert(false);
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
      for (; j + kTile <= d; j += kTile) RowTile<kMaxVecs>(xd + j, d, cols, w, nnz, sw, self + j, yi + j);
      const int vecs = static_cast<int>((d - j) / kVec);
      if (vecs > 0) {
        RowTileN(vecs, xd + j, d, cols, w, nnz, sw, self + j, yi + j);
        j += static_cast<size_t>(vecs) * kVec;
      }
      if (j < d) RowTail(xd + j, d, cols, w, nnz, sw, self + j, yi + j, d - j);
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
