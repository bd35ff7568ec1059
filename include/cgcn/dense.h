// Dense matrix helpers on Eigen, row-major, parallelized over row blocks with oneTBB.
// Results do not depend on the number of threads (fixed chunking, fixed reduction order).
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <memory>
#include <vector>

namespace cgcn {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;

// A growable float buffer viewed as a matrix; capacity is kept across calls, so
// steady-state training allocates nothing. Get never clears: a call that fits the capacity
// returns the same buffer with its contents; growing replaces the buffer by an uninitialized one
// with 25% headroom (batches vary in size, and copying or zeroing a buffer about to be
// overwritten costs as much as the first touch of its pages).
class Workspace {
 public:
  MatrixMap Get(Eigen::Index rows, Eigen::Index cols);
  MatrixMap View(Eigen::Index rows, Eigen::Index cols);  // no resize; rows*cols <= capacity
  float* data() { return buf_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<float[]> buf_;
  size_t capacity_ = 0;
};

// y[n x m] = x[n x k] * w[k x m]
void MatMul(ConstMatrixMap x, ConstMatrixMap w, MatrixMap y);
// out[k x m] = x[n x k]^T * g[n x m]; partial sums per fixed-size row chunk, added in order.
// `scratch` holds the per-chunk partials.
void MatMulTransposeA(ConstMatrixMap x, ConstMatrixMap g, MatrixMap out, Workspace& scratch);
// y[n x k] = g[n x m] * w[k x m]^T, then, with mask [n x k], y *= mask elementwise (while each
// row block is still in cache: the backward pass through ReLU and dropout).
void MatMulTransposeB(ConstMatrixMap g, ConstMatrixMap w, MatrixMap y, const float* mask = nullptr);

}  // namespace cgcn
