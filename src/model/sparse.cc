// CSR x dense aggregation and GCNConv normalization.
//
// Each output row is computed by one task from its own CSR row, in CSR order, so the result
// does not depend on how rows are split among threads.
#include "cgcn/sparse.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>

#if defined(__AVX2__) || defined(__FMA__)
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

// c + a * b, fused (one rounding) where the CPU has FMA: written out, because the compiler's
// contraction of `c += a * b` is a choice it may make differently from one instantiation to the
// next, and AccumulateRow promises each element the same chain of multiply-adds however a row
// is tiled or split.
inline Vec8 MulAdd(float a, Vec8 b, Vec8 c) {
#if defined(__FMA__)
  return reinterpret_cast<Vec8>(
      _mm256_fmadd_ps(_mm256_set1_ps(a), reinterpret_cast<__m256>(b), reinterpret_cast<__m256>(c)));
#else
  return c + a * b;
#endif
}

// Feature columns handled per pass over a row's neighbours: kMaxVecs accumulators
// (8 of the 16 AVX registers) stay in registers while the neighbour rows stream through.
constexpr int kMaxVecs = 8;
constexpr size_t kTile = kMaxVecs * kVec;

// Rows per TBB task: enough work to amortize scheduling, fine enough to balance skewed degrees.
constexpr uint32_t kRowGrain = 32;

// Entries ahead whose rows RowTile<V, true> asks the memory for while it adds the current one.
constexpr uint32_t kPrefetchAhead = 4;

// One output row's columns [0, 8 V): y = sw * self + sum_e w[e] * x[cols[e] * stride + .].
// x, self and y are already offset to the first column; loads and stores are unaligned.
// Accumulate (self is y, sw unused): y += sum_e ..., each element a chain of multiply-adds
// from its current value (no product with sw the compiler could fuse with the first term
// instead). With Accumulate, the tile's part of the row kPrefetchAhead entries on is also asked
// for (x far larger than the caches, rows scattered over it); the additions are the same.
template <int V, bool Accumulate = false>
inline void RowTile(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float sw,
                    const float* self, float* y) {
  Vec8 acc[V];
  for (int v = 0; v < V; ++v) {
    Vec8 s;
    __builtin_memcpy(&s, self + kVec * v, sizeof s);
    if constexpr (Accumulate)
      acc[v] = s;
    else
      acc[v] = sw * s;
  }
  for (uint32_t e = 0; e < nnz; ++e) {
    if constexpr (Accumulate) {
      if (e + kPrefetchAhead < nnz) {
        const char* p = reinterpret_cast<const char*>(x + static_cast<size_t>(cols[e + kPrefetchAhead]) * stride);
        for (size_t b = 0; b < V * kVec * sizeof(float); b += 64) __builtin_prefetch(p + b);
      }
    }
    const float* xr = x + static_cast<size_t>(cols[e]) * stride;
    const float we = w[e];
    for (int v = 0; v < V; ++v) {
      Vec8 r;
      __builtin_memcpy(&r, xr + kVec * v, sizeof r);
      acc[v] = MulAdd(we, r, acc[v]);
    }
  }
  for (int v = 0; v < V; ++v) __builtin_memcpy(y + kVec * v, &acc[v], sizeof acc[v]);
}

// The same for the last len < 8 columns. With AVX they are one masked vector: the lanes past
// len are neither loaded nor stored, and each lane does the same multiply-adds in the same
// order as the scalar loop (so widths 100, 20 or 47 no longer pay a scalar gather per column
// and neighbour: on a 10k-node batch this tail took as long as the 96 vector columns before it).
template <bool Accumulate = false>
inline void RowTail(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float sw,
                    const float* self, float* y, size_t len) {
#if defined(__AVX2__) && defined(__FMA__)
  alignas(32) static constexpr int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - len));
  __m256 acc =
      Accumulate ? _mm256_maskload_ps(self, mask) : _mm256_mul_ps(_mm256_set1_ps(sw), _mm256_maskload_ps(self, mask));
  for (uint32_t e = 0; e < nnz; ++e)
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(w[e]), _mm256_maskload_ps(x + static_cast<size_t>(cols[e]) * stride, mask), acc);
  _mm256_maskstore_ps(y, mask, acc);
#else
  for (size_t j = 0; j < len; ++j) {
    float acc = Accumulate ? self[j] : sw * self[j];
    for (uint32_t e = 0; e < nnz; ++e) acc += w[e] * x[static_cast<size_t>(cols[e]) * stride + j];
    y[j] = acc;
  }
#endif
}

// Calls RowTile<V, Accumulate> for V = vecs (1 <= vecs < kMaxVecs).
template <bool Accumulate = false>
inline void RowTileN(int vecs, const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz,
                     float sw, const float* self, float* y) {
  switch (vecs) {
    case 1:
      return RowTile<1, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 2:
      return RowTile<2, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 3:
      return RowTile<3, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 4:
      return RowTile<4, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 5:
      return RowTile<5, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 6:
      return RowTile<6, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    case 7:
      return RowTile<7, Accumulate>(x, stride, cols, w, nnz, sw, self, y);
    default:
      assert(false);
  }
}

// One row's columns [0, d), tile by tile: y = sw * self + sum_e w[e] * x[cols[e] * stride + .],
// or (Accumulate) y += sum_e ....
template <bool Accumulate>
inline void Row(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float sw,
                const float* self, float* y, size_t d) {
  size_t j = 0;
  for (; j + kTile <= d; j += kTile) RowTile<kMaxVecs, Accumulate>(x + j, stride, cols, w, nnz, sw, self + j, y + j);
  const int vecs = static_cast<int>((d - j) / kVec);
  if (vecs > 0) {
    RowTileN<Accumulate>(vecs, x + j, stride, cols, w, nnz, sw, self + j, y + j);
    j += static_cast<size_t>(vecs) * kVec;
  }
  if (j < d) RowTail<Accumulate>(x + j, stride, cols, w, nnz, sw, self + j, y + j, d - j);
}

}  // namespace

void AccumulateRow(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float* y,
                   size_t d) {
  Row<true>(x, stride, cols, w, nnz, 1.0f, y, y, d);
}

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
      Row<false>(xd, d, cols, w, nnz, sw, self, yd + static_cast<size_t>(i) * d, d);
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
