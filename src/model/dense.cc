// Dense products on row-major Eigen maps, split into fixed row chunks run by oneTBB.
//
// Determinism: chunk boundaries depend only on the matrix shapes, every chunk runs Eigen's
// single-threaded GEMM (EIGEN_DONT_PARALLELIZE), and the only cross-chunk reduction
// (MatMulTransposeA) adds the per-chunk partials in chunk order. The TBB thread count
// therefore changes only which worker runs a chunk, never the arithmetic.
// GCC 12 with AVX-512 (-march=native on these EPYC hosts) reports false "may be used
// uninitialized" warnings inside Eigen's GEMM kernels (avx512fintrin.h, via gebp_kernel and
// gemm_pack_lhs). The pragma must precede the first Eigen include to cover those headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cgcn/dense.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <cstdint>

namespace cgcn {
namespace {

// Rows per chunk for the row-parallel products (MatMul, MatMulTransposeB). Large enough for
// Eigen's GEMM to run at full speed on a block, small enough to balance a few cores.
constexpr Eigen::Index kRowChunk = 256;

// MatMulTransposeA reduces over rows, so each chunk costs a [k x m] partial plus its share of
// the final sum: use at most kMaxReduceChunks chunks of at least kMinReduceRows rows.
constexpr Eigen::Index kMinReduceRows = 4096;
constexpr Eigen::Index kMaxReduceChunks = 8;

Eigen::Index NumChunks(Eigen::Index rows, Eigen::Index chunk) { return (rows + chunk - 1) / chunk; }

// Calls fn(begin, end) for the row ranges [c * chunk, min(rows, (c + 1) * chunk)), in parallel.
// The chunks are fixed by (rows, chunk) alone, whatever the partitioner does with the indices.
template <typename Fn>
void ForEachChunk(Eigen::Index rows, Eigen::Index chunk, const Fn& fn) {
  const Eigen::Index chunks = NumChunks(rows, chunk);
  if (chunks <= 1) {
    if (rows > 0) fn(Eigen::Index{0}, rows);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, chunks, 1),
      [&](const tbb::blocked_range<Eigen::Index>& r) {
        for (Eigen::Index c = r.begin(); c != r.end(); ++c) {
          const Eigen::Index begin = c * chunk;
          fn(begin, std::min(rows, begin + chunk));
        }
      },
      tbb::simple_partitioner());
}

}  // namespace

MatrixMap Workspace::Get(Eigen::Index rows, Eigen::Index cols) {
  assert(rows >= 0 && cols >= 0);
  const size_t need = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  if (need > capacity_) {
    const size_t grown = capacity_ == 0 ? need : std::max(need, capacity_ + capacity_ / 4);
    buf_.reset();  // release before allocating: the old contents are not kept
    buf_.reset(new float[grown]);
    capacity_ = grown;
  }
  return MatrixMap(buf_.get(), rows, cols);
}

MatrixMap Workspace::View(Eigen::Index rows, Eigen::Index cols) {
  assert(rows >= 0 && cols >= 0);
  assert(static_cast<size_t>(rows) * static_cast<size_t>(cols) <= capacity_);
  return MatrixMap(buf_.get(), rows, cols);
}

void MatMul(ConstMatrixMap x, ConstMatrixMap w, MatrixMap y) {
  assert(x.cols() == w.rows() && y.rows() == x.rows() && y.cols() == w.cols());
  ForEachChunk(x.rows(), kRowChunk, [&](Eigen::Index begin, Eigen::Index end) {
    const Eigen::Index len = end - begin;
    y.middleRows(begin, len).noalias() = x.middleRows(begin, len) * w;
  });
}

void MatMulTransposeA(ConstMatrixMap x, ConstMatrixMap g, MatrixMap out, Workspace& scratch) {
  assert(x.rows() == g.rows() && out.rows() == x.cols() && out.cols() == g.cols());
  const Eigen::Index n = x.rows(), k = x.cols(), m = g.cols();
  const Eigen::Index chunk = std::max(kMinReduceRows, NumChunks(n, kMaxReduceChunks));
  const Eigen::Index chunks = NumChunks(n, chunk);
  if (chunks <= 1) {
    if (n == 0) {
      out.setZero();
    } else {
      out.noalias() = x.transpose() * g;
    }
    return;
  }
  // partials: chunk c's [k x m] product at rows [c * k, (c + 1) * k).
  MatrixMap partials = scratch.Get(chunks * k, m);
  ForEachChunk(n, chunk, [&](Eigen::Index begin, Eigen::Index end) {
    const Eigen::Index len = end - begin;
    partials.middleRows(begin / chunk * k, k).noalias() =
        x.middleRows(begin, len).transpose() * g.middleRows(begin, len);
  });
  // out = partial_0 + partial_1 + ..., in that order for every element; parallel over out rows.
  ForEachChunk(k, std::max<Eigen::Index>(1, 16384 / std::max<Eigen::Index>(1, m * chunks)),
               [&](Eigen::Index begin, Eigen::Index end) {
                 const Eigen::Index len = end - begin;
                 auto dst = out.middleRows(begin, len);
                 dst = partials.middleRows(begin, len);
                 for (Eigen::Index c = 1; c < chunks; ++c) dst += partials.middleRows(c * k + begin, len);
               });
}

void MatMulTransposeB(ConstMatrixMap g, ConstMatrixMap w, MatrixMap y, const float* mask) {
  assert(g.cols() == w.cols() && y.rows() == g.rows() && y.cols() == w.rows());
  const Eigen::Index k = y.cols();
  ForEachChunk(g.rows(), kRowChunk, [&](Eigen::Index begin, Eigen::Index end) {
    const Eigen::Index len = end - begin;
    y.middleRows(begin, len).noalias() = g.middleRows(begin, len) * w.transpose();
    if (mask != nullptr) {
      float* yd = y.data() + begin * k;
      const float* md = mask + begin * k;
      for (Eigen::Index e = 0; e < len * k; ++e) yd[e] *= md[e];
    }
  });
}

}  // namespace cgcn
