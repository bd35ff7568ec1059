// cgcn-gemm-bench: the three dense products of a training step, Eigen (cgcn's row-chunked TBB
// kernels, src/model/dense.cc) against oneDNN matmul in f32 and, on CPUs with AVX512_BF16, in
// bf16 (bf16 inputs, f32 accumulation and output), on the same shapes in alternation.
//
//   build/bin/cgcn-gemm-bench [--threads 2] [--reps 20] [--shape N,K,M ...]
//
// Columns: cgcn's products (src/model/dense.cc: fixed row chunks run by oneTBB, each chunk one
// single-threaded GEMM call) with --gemm eigen and --gemm onednn (no size threshold here), on
// CPUs with AVX512_BF16 also with --compute bf16 (cgcn-bf16: the rounding of the operands to
// bf16 in every call included, as in training), and
// oneDNN's matmul on the whole product with an OpenMP team of --threads threads, in f32 and, on
// CPUs with AVX512_BF16, in bf16.
//
// For each shape n x k x m (a batch of n rows, layer widths k -> m) it times
//   fwd:  Y[n x m] = X[n x k] W[k x m]
//   dW:   G^T-side reduction, dW[k x m] = X^T[k x n] G[n x m]
//   dX:   dX[n x k] = G[n x m] W^T[m x k]
// and prints the best of --reps repetitions in GFLOP/s (2 n k m flops each). Methods run
// round-robin within each repetition so machine drift affects them alike. oneDNN primitives are
// created once per shape, outside the timing. The bf16 inputs are converted once, outside the
// timing too (the trainer would convert each step: cgcn-gemm-bench reports that conversion's
// time separately).
#include <omp.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "cgcn/dense.h"

namespace {
using Clock = std::chrono::steady_clock;
using dnnl::memory;

struct Shape {
  long n, k, m;
};

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A row-major [rows x cols] matrix descriptor, or its transpose viewed in place (`transposed`:
// the logical [rows x cols] matrix stored as [cols x rows] row-major).
memory::desc Desc(long rows, long cols, memory::data_type dt, bool transposed = false) {
  return transposed ? memory::desc({rows, cols}, dt, memory::dims{1, rows})
                    : memory::desc({rows, cols}, dt, memory::dims{cols, 1});
}

struct DnnlProduct {
  dnnl::matmul prim;
  memory a, b, c;
  void Run(dnnl::stream& s) {
    prim.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  }
};

// C[r x c] = A[r x inner] B[inner x c] with A, B possibly transposed views of `pa`, `pb`.
DnnlProduct MakeProduct(dnnl::engine& eng, long r, long inner, long c, bool at, bool bt, memory::data_type in_dt,
                        void* pa, void* pb, float* pc) {
  const memory::desc ad = Desc(r, inner, in_dt, at), bd = Desc(inner, c, in_dt, bt);
  const memory::desc cd = Desc(r, c, memory::data_type::f32);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
  return DnnlProduct{dnnl::matmul(pd), memory(ad, eng, pa), memory(bd, eng, pb), memory(cd, eng, pc)};
}

void ToBf16(const std::vector<float>& src, std::vector<uint16_t>& dst) {
  dst.resize(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &src[i], 4);
    u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even (finite inputs)
    dst[i] = static_cast<uint16_t>(u >> 16);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times cgcn's dense products (Eigen + oneTBB) against oneDNN matmul, f32 and bf16.", "cgcn-gemm-bench"};
  int threads = 0, reps = 20;
  std::vector<std::string> shape_text = {"10000,100,128", "10000,128,128", "10000,128,20",
                                         "33333,100,256", "33333,256,256", "33333,256,47"};
  app.add_option("--threads", threads, "threads for both libraries (default: all cores)");
  app.add_option("--reps", reps, "repetitions (the best is kept)")->capture_default_str();
  app.add_option("--shape", shape_text, "N,K,M shapes")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  omp_set_num_threads(nthreads);
  const bool bf16 = cgcn::CpuSupportsBf16();
  std::printf("threads %d, dnnl %d.%d.%d, bf16 %s\n", nthreads, dnnl_version()->major, dnnl_version()->minor,
              dnnl_version()->patch, bf16 ? "yes (AVX512_BF16)" : "no (CPU lacks AVX512_BF16)");
  std::printf("%-18s %-4s %12s %12s %12s %12s %12s\n", "n x k x m", "op", "cgcn-eigen", "cgcn-onednn", "cgcn-bf16",
              "dnnl-omp-f32", "dnnl-omp-bf16");
  const cgcn::DenseBackendConfig on_eigen{cgcn::DenseBackend::kEigen}, on_onednn{cgcn::DenseBackend::kOneDnn, 0.0},
      on_bf16{cgcn::DenseBackend::kOneDnn, 0.0, cgcn::DenseCompute::kBf16};

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const std::string& t : shape_text) {
    Shape s{};
    if (std::sscanf(t.c_str(), "%ld,%ld,%ld", &s.n, &s.k, &s.m) != 3 || s.n <= 0 || s.k <= 0 || s.m <= 0) {
      std::fprintf(stderr, "cgcn-gemm-bench: --shape %s: expected N,K,M (positive integers)\n", t.c_str());
      return 2;
    }
    std::vector<float> x(s.n * s.k), w(s.k * s.m), g(s.n * s.m), y(s.n * s.m), dw(s.k * s.m), dx(s.n * s.k);
    for (float& v : x) v = u(rng);
    for (float& v : w) v = u(rng);
    for (float& v : g) v = u(rng);
    cgcn::Workspace scratch;
    using cgcn::ConstMatrixMap;
    using cgcn::MatrixMap;
    const ConstMatrixMap X(x.data(), s.n, s.k), W(w.data(), s.k, s.m), G(g.data(), s.n, s.m);
    MatrixMap Y(y.data(), s.n, s.m), DW(dw.data(), s.k, s.m), DX(dx.data(), s.n, s.k);
    const auto f32 = memory::data_type::f32, b16 = memory::data_type::bf16;
    DnnlProduct fwd = MakeProduct(eng, s.n, s.k, s.m, false, false, f32, x.data(), w.data(), y.data());
    DnnlProduct bw = MakeProduct(eng, s.k, s.n, s.m, true, false, f32, x.data(), g.data(), dw.data());
    DnnlProduct bx = MakeProduct(eng, s.n, s.m, s.k, false, true, f32, g.data(), w.data(), dx.data());
    std::vector<uint16_t> xb, wb, gb;
    DnnlProduct fwd16, bw16, bx16;
    double convert_s = 0;
    if (bf16) {
      const auto t0 = Clock::now();
      ToBf16(x, xb);
      ToBf16(w, wb);
      ToBf16(g, gb);
      convert_s = Seconds(t0);
      fwd16 = MakeProduct(eng, s.n, s.k, s.m, false, false, b16, xb.data(), wb.data(), y.data());
      bw16 = MakeProduct(eng, s.k, s.n, s.m, true, false, b16, xb.data(), gb.data(), dw.data());
      bx16 = MakeProduct(eng, s.n, s.m, s.k, false, true, b16, gb.data(), wb.data(), dx.data());
    }
    double best[3][5];
    for (auto& r : best) std::fill(r, r + 5, 1e30);
    for (int rep = 0; rep < reps; ++rep) {
      auto time = [&](double& slot, auto&& fn) {
        const auto t0 = Clock::now();
        fn();
        slot = std::min(slot, Seconds(t0));
      };
      // cgcn's oneDNN calls set the calling thread's OpenMP team to one: give the whole-product
      // calls theirs back first.
      for (int b = 0; b < (bf16 ? 3 : 2); ++b) {
        cgcn::SetDenseBackend(b == 0 ? on_eigen : b == 1 ? on_onednn : on_bf16);
        const int col = b == 2 ? 4 : b;
        time(best[0][col], [&] { cgcn::MatMul(X, W, Y); });
        time(best[1][col], [&] { cgcn::MatMulTransposeA(X, G, DW, scratch); });
        time(best[2][col], [&] { cgcn::MatMulTransposeB(G, W, DX); });
      }
      omp_set_num_threads(nthreads);
      time(best[0][2], [&] { fwd.Run(strm); });
      time(best[1][2], [&] { bw.Run(strm); });
      time(best[2][2], [&] { bx.Run(strm); });
      if (bf16) {
        time(best[0][3], [&] { fwd16.Run(strm); });
        time(best[1][3], [&] { bw16.Run(strm); });
        time(best[2][3], [&] { bx16.Run(strm); });
      }
    }
    const double flops = 2.0 * static_cast<double>(s.n) * static_cast<double>(s.k) * static_cast<double>(s.m);
    const char* ops[3] = {"fwd", "dW", "dX"};
    for (int o = 0; o < 3; ++o) {
      char b16s[32] = "-", cgcn16[32] = "-";
      if (bf16) std::snprintf(b16s, sizeof b16s, "%.1f", flops / best[o][3] * 1e-9);
      if (bf16) std::snprintf(cgcn16, sizeof cgcn16, "%.1f", flops / best[o][4] * 1e-9);
      std::printf("%6ld x %4ld x %4ld %-4s %12.1f %12.1f %12s %12.1f %12s\n", s.n, s.k, s.m, ops[o],
                  flops / best[o][0] * 1e-9, flops / best[o][1] * 1e-9, cgcn16, flops / best[o][2] * 1e-9, b16s);
    }
    if (bf16) std::printf("  (f32 -> bf16 conversion of X, W, G: %.2f ms, single thread)\n", convert_s * 1e3);
  }
  std::printf("GFLOP/s, best of %d repetitions\n", reps);
  cgcn::SetDenseBackend({cgcn::DefaultDenseBackend()});
  return 0;
}
