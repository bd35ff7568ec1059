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
#include <atomic>
#include <cassert>
#include <cstdint>
#include <mutex>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#ifdef CGCN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
// libgomp (oneDNN's OpenMP runtime in Debian's build): the team size of the calling thread.
extern "C" void omp_set_num_threads(int);
#endif

namespace cgcn {
namespace {

// The process's backend (DenseBackendConfig), read on every product. Runs set it before their
// products start (ScopedDenseBackend), not while they run.
std::atomic<bool> g_onednn{OneDnnAvailable()};
std::atomic<double> g_min_flops{DenseBackendConfig{}.min_onednn_flops};
std::atomic<bool> g_bf16{false};

// dst[i] = src[i] rounded to bfloat16 (nearest, ties to even), for i < n: VCVTNE2PS2BF16 on 32
// values at a time, the tail masked. Called only where CpuSupportsBf16().
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void RoundToBf16(const float* src, uint16_t* dst,
                                                                                 size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<const __m512i&>(v));
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = static_cast<__mmask16>((1u << std::min<size_t>(16, n - i)) - 1u);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
    _mm256_mask_storeu_epi16(dst + i, mask, reinterpret_cast<const __m256i&>(v));
  }
}
#define CGCN_HAVE_BF16_ROUNDING 1
#endif

#ifdef CGCN_HAVE_ONEDNN
// One matmul primitive per (layer widths, transposition), created on first use and reused:
// oneDNN primitives are immutable and may execute concurrently on several threads. The chunk's
// row count is a runtime dimension (DNNL_RUNTIME_DIM_VAL), so batches of every size share them
// and the cache stays as small as the set of layer shapes.
struct ProductKey {
  Eigen::Index r, inner, c;
  bool at, bt, bf16;
  bool operator==(const ProductKey&) const = default;
};
struct ProductKeyHash {
  size_t operator()(const ProductKey& k) const {
    size_t h = static_cast<size_t>(k.r);
    h = h * 1000003u ^ static_cast<size_t>(k.inner);
    h = h * 1000003u ^ static_cast<size_t>(k.c);
    return h * 8u + (k.bf16 ? 4u : 0u) + (k.at ? 2u : 0u) + (k.bt ? 1u : 0u);
  }
};

// A dense row-major [rows x cols] f32 (or bf16) descriptor (tag ab); `transposed`: the
// [rows x cols] matrix is the transpose of a dense row-major [cols x rows] array (tag ba). A
// dimension may be DNNL_RUNTIME_DIM_VAL. Every operand here is dense: chunks are whole rows of
// row-major arrays.
dnnl::memory::desc Desc(Eigen::Index rows, Eigen::Index cols, bool transposed, bool bf16 = false) {
  return dnnl::memory::desc({rows, cols}, bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32,
                            transposed ? dnnl::memory::format_tag::ba : dnnl::memory::format_tag::ab);
}

class OneDnn {
 public:
  static OneDnn& Get() {
    static OneDnn instance;
    return instance;
  }
  // c[r x cc] = op(a) op(b) on the calling thread alone, op(a) [r x inner] (a stored transposed
  // when at), op(b) [inner x cc]. c is written with row stride cc, in f32. a and b are f32, or
  // bf16 (uint16_t) with bf16: f32 accumulation either way.
  // The rows of the chunk are r, or inner when a is transposed (MatMulTransposeA's partials).
  void Product(const void* a, bool at, const void* b, bool bt, float* c, Eigen::Index r, Eigen::Index inner,
               Eigen::Index cc, bool bf16) {
    OneThread();
    const Eigen::Index any = DNNL_RUNTIME_DIM_VAL;
    const Eigen::Index key_r = at ? r : any, key_inner = at ? any : inner;
    const ProductKey key{key_r, key_inner, cc, at, bt, bf16};
    const dnnl::matmul* prim;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = prims_.find(key);
      if (it == prims_.end()) {
        const dnnl::matmul::desc d(Desc(key_r, key_inner, at, bf16), Desc(key_inner, cc, bt, bf16),
                                   Desc(key_r, cc, false));
        it = prims_.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(d, engine_))).first;
      }
      prim = &it->second;  // unordered_map nodes are stable
    }
    dnnl::memory ma(Desc(r, inner, at, bf16), engine_, const_cast<void*>(a));
    dnnl::memory mb(Desc(inner, cc, bt, bf16), engine_, const_cast<void*>(b));
    dnnl::memory mc(Desc(r, cc, false), engine_, c);
    thread_local dnnl::stream stream(engine_);
    prim->execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    stream.wait();
  }

 private:
  OneDnn() : engine_(dnnl::engine::kind::cpu, 0) {}
  // oneTBB owns the threads: every oneDNN call runs on its calling thread (an OpenMP team of
  // one, which oneDNN runs inline), and the row chunks give the parallelism. Set on every call
  // (it only writes the calling thread's OpenMP setting), so nothing else can change it between.
  static void OneThread() { omp_set_num_threads(1); }
  dnnl::engine engine_;
  std::mutex mu_;
  std::unordered_map<ProductKey, dnnl::matmul, ProductKeyHash> prims_;
};
#endif

// 2 n k m as a double.
double Flops(Eigen::Index n, Eigen::Index k, Eigen::Index m) {
  return 2.0 * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(m);
}

// Whether a product of these sizes goes to oneDNN.
bool UseOneDnn([[maybe_unused]] Eigen::Index n, [[maybe_unused]] Eigen::Index k, [[maybe_unused]] Eigen::Index m) {
#ifdef CGCN_HAVE_ONEDNN
  return g_onednn.load(std::memory_order_relaxed) && n > 0 && k > 0 && m > 0 &&
         Flops(n, k, m) >= g_min_flops.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

// The bfloat16 copy of an f32 operand, for --compute bf16. A grown buffer is kept.
class Bf16Copy {
 public:
  // src[0, n) rounded into this copy (or src itself, untouched, when !bf16).
  const void* Of(const float* src, size_t n, bool bf16) {
    if (!bf16) return src;
    if (n > capacity_) {
      buf_ = std::make_unique_for_overwrite<uint16_t[]>(n);
      capacity_ = n;
    }
#ifdef CGCN_HAVE_BF16_ROUNDING
    RoundToBf16(src, buf_.get(), n);
#endif
    return buf_.get();
  }

 private:
  std::unique_ptr<uint16_t[]> buf_;
  size_t capacity_ = 0;
};
// The chunk operands of the product running on this thread. A chunk's work never waits on other
// tasks, so no other chunk can run on the thread between the rounding and the product.
thread_local Bf16Copy t_chunk_a, t_chunk_b;

// Whether this product's operands are rounded to bf16: --compute bf16, the product on oneDNN, and
// enough arithmetic per value rounded (2 n k m flops over the elements rounded per call) for the
// bf16 product's gain to pay for the rounding. Measured (cgcn-gemm-bench, 2 threads, AVX512_BF16
// EPYC): at 94 flops per value and below (forward to 47 or 20 classes, their dW) bf16 was slower
// than f32 by 10-30%; at 112 and above (every product of widths 100 -> 128 and up, every dX) 1.4-1.9x
// faster.
constexpr double kMinBf16FlopsPerRounded = 100;
bool UseBf16(bool onednn, double flops, double rounded) {
  return onednn && g_bf16.load(std::memory_order_relaxed) && flops >= kMinBf16FlopsPerRounded * rounded;
}

// Rows per chunk for the row-parallel products (MatMul, MatMulTransposeB). Large enough for
// the GEMM kernel to run at full speed on a block (oneDNN's per-call cost wants more rows than
// Eigen's), small enough to balance a few cores.
constexpr Eigen::Index kRowChunk = 256;
constexpr Eigen::Index kOneDnnRowChunk = 1024;
Eigen::Index RowChunk(bool onednn) { return onednn ? kOneDnnRowChunk : kRowChunk; }

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

bool OneDnnAvailable() {
#ifdef CGCN_HAVE_ONEDNN
  return true;
#else
  return false;
#endif
}

DenseBackend DefaultDenseBackend() { return OneDnnAvailable() ? DenseBackend::kOneDnn : DenseBackend::kEigen; }

DenseBackendConfig GetDenseBackend() {
  return {g_onednn.load() ? DenseBackend::kOneDnn : DenseBackend::kEigen, g_min_flops.load(),
          g_bf16.load() ? DenseCompute::kBf16 : DenseCompute::kF32};
}

bool SetDenseBackend(const DenseBackendConfig& config) {
  if (!CheckDenseBackend(config.backend, config.compute).ok()) return false;
  g_onednn.store(config.backend == DenseBackend::kOneDnn);
  g_min_flops.store(config.min_onednn_flops);
  g_bf16.store(config.compute == DenseCompute::kBf16);
  return true;
}

const char* DenseBackendName(DenseBackend backend) { return backend == DenseBackend::kOneDnn ? "onednn" : "eigen"; }
const char* DenseComputeName(DenseCompute compute) { return compute == DenseCompute::kBf16 ? "bf16" : "f32"; }

bool CpuSupportsBf16() {
#ifdef CGCN_HAVE_BF16_ROUNDING
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Status CheckDenseBackend(DenseBackend backend, DenseCompute compute) {
  if (backend == DenseBackend::kOneDnn && !OneDnnAvailable())
    return Status::InvalidArgument(
        "--gemm onednn: this build of cgcn has no oneDNN (install Debian's libdnnl-dev and rebuild); use --gemm eigen "
        "or auto");
  if (compute == DenseCompute::kBf16) {
    if (!OneDnnAvailable())
      return Status::InvalidArgument(
          "--compute bf16 runs on oneDNN, and this build of cgcn has none (install Debian's libdnnl-dev and "
          "rebuild); use --compute f32");
    if (backend != DenseBackend::kOneDnn)
      return Status::InvalidArgument("--compute bf16 runs on oneDNN, not on --gemm eigen: use --gemm onednn or auto");
    if (!CpuSupportsBf16())
      return Status::InvalidArgument(
          "--compute bf16 needs a CPU with the AVX512_BF16 instructions, and this one has none (see the avx512_bf16 "
          "flag in /proc/cpuinfo); use --compute f32");
  }
  return Status::Ok();
}

bool ParseDenseCompute(std::string_view name, DenseCompute* compute) {
  if (name == "f32") {
    *compute = DenseCompute::kF32;
  } else if (name == "bf16") {
    *compute = DenseCompute::kBf16;
  } else {
    return false;
  }
  return true;
}

bool ParseDenseBackend(std::string_view name, DenseBackend* backend) {
  if (name == "auto") {
    *backend = DefaultDenseBackend();
  } else if (name == "eigen") {
    *backend = DenseBackend::kEigen;
  } else if (name == "onednn") {
    *backend = DenseBackend::kOneDnn;
  } else {
    return false;
  }
  return true;
}

ScopedDenseBackend::ScopedDenseBackend(const DenseBackendConfig& config) : previous_(GetDenseBackend()) {
  SetDenseBackend(config);
}
ScopedDenseBackend::~ScopedDenseBackend() { SetDenseBackend(previous_); }

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
  const bool onednn = UseOneDnn(x.rows(), x.cols(), w.cols());
  const bool bf16 = UseBf16(onednn, Flops(x.rows(), x.cols(), w.cols()), static_cast<double>(x.size() + w.size()));
  // The weights are rounded once per call, here (a local copy: this thread may run another
  // product's chunks while it waits for this one's).
  Bf16Copy w_copy;
  const void* wb = w_copy.Of(w.data(), static_cast<size_t>(w.size()), bf16);
  ForEachChunk(x.rows(), RowChunk(onednn), [&](Eigen::Index begin, Eigen::Index end) {
    const Eigen::Index len = end - begin;
#ifdef CGCN_HAVE_ONEDNN
    if (onednn) {
      const void* xb = t_chunk_a.Of(x.data() + begin * x.cols(), static_cast<size_t>(len * x.cols()), bf16);
      OneDnn::Get().Product(xb, false, wb, false, y.data() + begin * y.cols(), len, x.cols(), w.cols(), bf16);
      return;
    }
#endif
    y.middleRows(begin, len).noalias() = x.middleRows(begin, len) * w;
  });
}

void MatMulTransposeA(ConstMatrixMap x, ConstMatrixMap g, MatrixMap out, Workspace& scratch) {
  assert(x.rows() == g.rows() && out.rows() == x.cols() && out.cols() == g.cols());
  const Eigen::Index n = x.rows(), k = x.cols(), m = g.cols();
  const bool onednn = UseOneDnn(n, k, m),
             bf16 = UseBf16(onednn, Flops(n, k, m), static_cast<double>(x.size() + g.size()));
  // dst[k x m] = x[begin, end)^T g[begin, end).
  auto partial = [&](Eigen::Index begin, Eigen::Index end, float* dst) {
    const Eigen::Index len = end - begin;
#ifdef CGCN_HAVE_ONEDNN
    if (onednn) {
      const void* xb = t_chunk_a.Of(x.data() + begin * k, static_cast<size_t>(len * k), bf16);
      const void* gb = t_chunk_b.Of(g.data() + begin * m, static_cast<size_t>(len * m), bf16);
      OneDnn::Get().Product(xb, true, gb, false, dst, k, len, m, bf16);
      return;
    }
#endif
    MatrixMap(dst, k, m).noalias() = x.middleRows(begin, len).transpose() * g.middleRows(begin, len);
  };
  const Eigen::Index chunk = std::max(kMinReduceRows, NumChunks(n, kMaxReduceChunks));
  const Eigen::Index chunks = NumChunks(n, chunk);
  if (chunks <= 1) {
    if (n == 0) {
      out.setZero();
    } else {
      partial(0, n, out.data());
    }
    return;
  }
  // partials: chunk c's [k x m] product at rows [c * k, (c + 1) * k).
  MatrixMap partials = scratch.Get(chunks * k, m);
  ForEachChunk(n, chunk, [&](Eigen::Index begin, Eigen::Index end) {
    partial(begin, end, partials.data() + begin / chunk * k * m);
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
  const Eigen::Index k = y.cols(), m = g.cols();
  const bool onednn = UseOneDnn(g.rows(), m, k);
  const bool bf16 = UseBf16(onednn, Flops(g.rows(), m, k), static_cast<double>(g.size() + w.size()));
  Bf16Copy w_copy;  // as in MatMul
  const void* wb = w_copy.Of(w.data(), static_cast<size_t>(w.size()), bf16);
  ForEachChunk(g.rows(), RowChunk(onednn), [&](Eigen::Index begin, Eigen::Index end) {
    const Eigen::Index len = end - begin;
#ifdef CGCN_HAVE_ONEDNN
    if (onednn) {
      const void* gb = t_chunk_a.Of(g.data() + begin * m, static_cast<size_t>(len * m), bf16);
      OneDnn::Get().Product(gb, false, wb, true, y.data() + begin * k, len, m, k, bf16);
    } else
#endif
    {
      y.middleRows(begin, len).noalias() = g.middleRows(begin, len) * w.transpose();
    }
    if (mask != nullptr) {
      float* yd = y.data() + begin * k;
      const float* md = mask + begin * k;
      for (Eigen::Index e = 0; e < len * k; ++e) yd[e] *= md[e];
    }
  });
}

}  // namespace cgcn
