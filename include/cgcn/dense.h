// Dense matrix helpers on Eigen, row-major. The three products split their rows into fixed
// chunks that oneTBB runs in parallel; each chunk is one single-threaded GEMM call, on one of two
// backends:
//   eigen:  Eigen's GEMM.
//   onednn: oneDNN's matmul (Debian's libdnnl), 1.3-2x Eigen's speed on the shapes of a training
//           step on AVX2 and AVX-512 CPUs (bench/gemm_bench.cc, docs/BENCHMARKS.md).
// Either way the results do not depend on the number of threads: the chunks depend on the shapes
// alone, every chunk runs on one thread, and the one cross-chunk reduction (MatMulTransposeA)
// adds the partials in chunk order.
// Who owns the threads: oneTBB, alone. oneDNN's runtime in Debian's build is OpenMP; cgcn sets
// every calling thread's OpenMP team to one thread, which oneDNN runs inline, so no OpenMP
// thread ever competes with oneTBB's workers (letting oneDNN's OpenMP team run whole products
// beside the oneTBB pipeline measured slower than Eigen: docs/BENCHMARKS.md).
// Products below a size (DenseBackendConfig::min_onednn_flops) stay on Eigen, where oneDNN's
// per-call cost would dominate.
// Compute type (--compute): f32, or bf16 on oneDNN: each chunk's operands are rounded to
// bfloat16 (round to nearest even, AVX512_BF16's VCVTNE2PS2BF16) and multiplied by oneDNN's bf16
// matmul with f32 accumulation and an f32 result; the weights the optimizer updates stay f32. It
// needs a CPU with AVX512_BF16 (CheckDenseBackend refuses it elsewhere) and applies to the
// products oneDNN runs (those above min_onednn_flops) that do at least 100 flops per value
// rounded: products into narrow outputs (forward into 47 classes and its dW) measured faster in
// f32 and stay f32, as do the small ones on Eigen. Results
// stay independent of the thread count: the rounding is elementwise and the chunks are the same.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

enum class DenseBackend { kEigen, kOneDnn };
enum class DenseCompute { kF32, kBf16 };
struct DenseBackendConfig {
  DenseBackend backend = DenseBackend::kEigen;
  // Products of fewer flops (2 n k m) than this run on Eigen whatever the backend: below it
  // oneDNN's per-call cost was not measured (cgcn-gemm-bench: oneDNN led Eigen on every shape
  // from 500 x 32 x 32 and 4000 x 16 x 7, about 1 MFLOP, up).
  double min_onednn_flops = 1e6;
  DenseCompute compute = DenseCompute::kF32;
};
// Whether this build has oneDNN (CMake found Debian's libdnnl-dev).
bool OneDnnAvailable();
// oneDNN when available, else Eigen (the measured faster one: docs/BENCHMARKS.md).
DenseBackend DefaultDenseBackend();
// The backend the products use, process-wide. The default: oneDNN when available.
DenseBackendConfig GetDenseBackend();
// Refuses (returns false) kOneDnn in a build without it, and kBf16 where CheckDenseBackend would.
bool SetDenseBackend(const DenseBackendConfig& config);
// A run's backend (--gemm) and compute type (--compute) checked against the build and the CPU:
// kOneDnn without oneDNN is an error, kBf16 without oneDNN, on kEigen or on a CPU without
// AVX512_BF16 too (each with the sentence that says so and what to use instead).
Status CheckDenseBackend(DenseBackend backend, DenseCompute compute = DenseCompute::kF32);
// Whether this CPU has the AVX512_BF16 instructions (and AVX512F/BW/VL) --compute bf16 needs.
bool CpuSupportsBf16();
const char* DenseBackendName(DenseBackend backend);  // "eigen", "onednn"
const char* DenseComputeName(DenseCompute compute);  // "f32", "bf16"
// "auto" (oneDNN when available), "eigen" or "onednn"; false for another name.
bool ParseDenseBackend(std::string_view name, DenseBackend* backend);
// "f32" or "bf16"; false for another name.
bool ParseDenseCompute(std::string_view name, DenseCompute* compute);
// Sets a backend for its lifetime and puts the previous one back (tests, tools).
class ScopedDenseBackend {
 public:
  explicit ScopedDenseBackend(const DenseBackendConfig& config);
  ~ScopedDenseBackend();
  ScopedDenseBackend(const ScopedDenseBackend&) = delete;
  ScopedDenseBackend& operator=(const ScopedDenseBackend&) = delete;

 private:
  DenseBackendConfig previous_;
};

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
