// Dense products against naive double-precision triple loops, and thread-count independence.
// GCC 12 with AVX-512 reports false "may be used uninitialized" warnings inside Eigen's GEMM
// kernels; the pragma must precede the first Eigen include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cgcn/dense.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cgcn/shard_format.h"

namespace cgcn {
namespace {

RowMatrix RandomMatrix(Eigen::Index rows, Eigen::Index cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  RowMatrix m(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i)
    for (Eigen::Index j = 0; j < cols; ++j) m(i, j) = u(rng);
  return m;
}

// ref[i][j] = sum_k a(i, k) b(k, j) in double, and the matching sum of |a(i, k) b(k, j)|
// (which bounds the float rounding error).
struct Reference {
  Eigen::MatrixXd value, abs_sum;
};

template <typename A, typename B>
Reference NaiveProduct(const A& a, const B& b) {
  Reference r{Eigen::MatrixXd::Zero(a.rows(), b.cols()), Eigen::MatrixXd::Zero(a.rows(), b.cols())};
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < b.cols(); ++j)
      for (Eigen::Index k = 0; k < a.cols(); ++k) {
        const double t = static_cast<double>(a(i, k)) * static_cast<double>(b(k, j));
        r.value(i, j) += t;
        r.abs_sum(i, j) += std::abs(t);
      }
  return r;
}

void ExpectClose(const RowMatrix& got, const Reference& ref) {
  ASSERT_EQ(got.rows(), ref.value.rows());
  ASSERT_EQ(got.cols(), ref.value.cols());
  for (Eigen::Index i = 0; i < got.rows(); ++i)
    for (Eigen::Index j = 0; j < got.cols(); ++j)
      ASSERT_NEAR(got(i, j), ref.value(i, j), 1e-5 * ref.abs_sum(i, j) + 1e-6) << "at (" << i << ", " << j << ")";
}

RowMatrix Filled(Eigen::Index rows, Eigen::Index cols) {
  return RowMatrix::Constant(rows, cols, std::numeric_limits<float>::quiet_NaN());
}

bool BitIdentical(const RowMatrix& a, const RowMatrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
}

TEST(DenseWorkspace, GrowsOnlyWhenNeededAndNeverShrinks) {
  Workspace ws;
  EXPECT_EQ(ws.capacity(), 0u);
  MatrixMap a = ws.Get(10, 10);
  EXPECT_EQ(a.rows(), 10);
  EXPECT_EQ(a.cols(), 10);
  EXPECT_EQ(ws.capacity(), 100u);
  float* first = ws.data();
  a(9, 9) = 42.0f;

  MatrixMap b = ws.Get(4, 5);  // smaller: same buffer, same capacity
  EXPECT_EQ(ws.capacity(), 100u);
  EXPECT_EQ(ws.data(), first);
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(b.rows(), 4);
  EXPECT_EQ(b.cols(), 5);

  MatrixMap c = ws.View(25, 4);
  EXPECT_EQ(c.data(), first);
  EXPECT_EQ(c(24, 3), 42.0f);  // View does not clear

  ws.Get(30, 10);  // larger: grows to exactly the need (> capacity + 25%)
  EXPECT_EQ(ws.capacity(), 300u);
  ws.Get(1, 1);
  EXPECT_EQ(ws.capacity(), 300u);
  ws.Get(31, 10);  // slightly larger: grows by the 25% headroom
  EXPECT_EQ(ws.capacity(), 375u);
  const float* grown = ws.data();
  ws.Get(37, 10);  // fits the headroom: same buffer
  EXPECT_EQ(ws.data(), grown);
  EXPECT_EQ(ws.capacity(), 375u);
}

struct Shape {
  Eigen::Index n, k, m;
};

// Every shape on each backend: Eigen, and oneDNN for every product (no size threshold) when the
// build has it.
class DenseShapes : public ::testing::TestWithParam<std::tuple<Shape, DenseBackend>> {
 protected:
  void SetUp() override {
    if (std::get<1>(GetParam()) == DenseBackend::kOneDnn && !OneDnnAvailable()) GTEST_SKIP() << "built without oneDNN";
    backend_ = std::make_unique<ScopedDenseBackend>(DenseBackendConfig{std::get<1>(GetParam()), 0.0});
  }
  static Shape shape() { return std::get<0>(GetParam()); }
  std::unique_ptr<ScopedDenseBackend> backend_;
};

// n spans: empty, tiny, not a multiple of any chunk, several chunks of each kind.
INSTANTIATE_TEST_SUITE_P(Dense, DenseShapes,
                         ::testing::Combine(::testing::Values(Shape{0, 5, 3}, Shape{1, 1, 1}, Shape{7, 5, 3},
                                                              Shape{300, 17, 9}, Shape{1000, 37, 19},
                                                              Shape{5000, 33, 21}, Shape{40000, 8, 5}),
                                            ::testing::Values(DenseBackend::kEigen, DenseBackend::kOneDnn)));

TEST_P(DenseShapes, MatMulMatchesNaive) {
  const Shape s = shape();
  const RowMatrix x = RandomMatrix(s.n, s.k, 1), w = RandomMatrix(s.k, s.m, 2);
  RowMatrix y = Filled(s.n, s.m);
  MatMul(ConstMatrixMap(x.data(), s.n, s.k), ConstMatrixMap(w.data(), s.k, s.m), MatrixMap(y.data(), s.n, s.m));
  ExpectClose(y, NaiveProduct(x, w));
}

TEST_P(DenseShapes, MatMulTransposeAMatchesNaive) {
  const Shape s = shape();
  const RowMatrix x = RandomMatrix(s.n, s.k, 3), g = RandomMatrix(s.n, s.m, 4);
  RowMatrix out = Filled(s.k, s.m);
  Workspace scratch;
  MatMulTransposeA(ConstMatrixMap(x.data(), s.n, s.k), ConstMatrixMap(g.data(), s.n, s.m),
                   MatrixMap(out.data(), s.k, s.m), scratch);
  const RowMatrix xt = x.transpose();
  ExpectClose(out, NaiveProduct(xt, g));
  // A second call with a warm scratch gives the same bits.
  RowMatrix again = Filled(s.k, s.m);
  MatMulTransposeA(ConstMatrixMap(x.data(), s.n, s.k), ConstMatrixMap(g.data(), s.n, s.m),
                   MatrixMap(again.data(), s.k, s.m), scratch);
  EXPECT_TRUE(BitIdentical(out, again));
}

TEST_P(DenseShapes, MatMulTransposeBMatchesNaive) {
  const Shape s = shape();
  const RowMatrix g = RandomMatrix(s.n, s.m, 5), w = RandomMatrix(s.k, s.m, 6);
  RowMatrix y = Filled(s.n, s.k);
  MatMulTransposeB(ConstMatrixMap(g.data(), s.n, s.m), ConstMatrixMap(w.data(), s.k, s.m),
                   MatrixMap(y.data(), s.n, s.k));
  const RowMatrix wt = w.transpose();
  ExpectClose(y, NaiveProduct(g, wt));
}

TEST_P(DenseShapes, MatMulTransposeBWithMaskMatchesNaive) {
  const Shape s = shape();
  const RowMatrix g = RandomMatrix(s.n, s.m, 7), w = RandomMatrix(s.k, s.m, 8);
  RowMatrix mask = RandomMatrix(s.n, s.k, 9);
  for (Eigen::Index i = 0; i < mask.size(); ++i) mask.data()[i] = mask.data()[i] > 0 ? 2.0f : 0.0f;  // dropout-like
  RowMatrix y = Filled(s.n, s.k);
  MatMulTransposeB(ConstMatrixMap(g.data(), s.n, s.m), ConstMatrixMap(w.data(), s.k, s.m),
                   MatrixMap(y.data(), s.n, s.k), mask.data());
  const RowMatrix wt = w.transpose();
  Reference want = NaiveProduct(g, wt);
  const Eigen::MatrixXd m = mask.cast<double>();
  want.value = want.value.cwiseProduct(m);
  want.abs_sum = want.abs_sum.cwiseProduct(m);
  ExpectClose(y, want);
}

// The three products with a given TBB parallelism.
struct Products {
  RowMatrix y, out, yt;
};

// fn() with at most `threads` TBB threads, in an arena of that size (so partitioners see it too).
template <typename Fn>
auto RunWithThreads(int threads, const Fn& fn) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  return arena.execute(fn);
}

Products RunProducts(const RowMatrix& x, const RowMatrix& w, const RowMatrix& g) {
  const Eigen::Index n = x.rows(), k = x.cols(), m = w.cols();
  Products p{RowMatrix(n, m), RowMatrix(k, m), RowMatrix(n, k)};
  Workspace scratch;
  MatMul(ConstMatrixMap(x.data(), n, k), ConstMatrixMap(w.data(), k, m), MatrixMap(p.y.data(), n, m));
  MatMulTransposeA(ConstMatrixMap(x.data(), n, k), ConstMatrixMap(g.data(), n, m), MatrixMap(p.out.data(), k, m),
                   scratch);
  MatMulTransposeB(ConstMatrixMap(g.data(), n, m), ConstMatrixMap(w.data(), k, m), MatrixMap(p.yt.data(), n, k));
  return p;
}

// Every backend available (oneDNN for every product, no size threshold).
std::vector<DenseBackendConfig> Backends() {
  std::vector<DenseBackendConfig> b{{DenseBackend::kEigen}};
  if (OneDnnAvailable()) b.push_back({DenseBackend::kOneDnn, 0.0});
  return b;
}

// Both backends' promise: the thread count changes nothing.
TEST(DenseDeterminism, BitIdenticalWithOneAndTwoThreads) {
  const Eigen::Index n = 20011, k = 48, m = 40;
  const RowMatrix x = RandomMatrix(n, k, 7), w = RandomMatrix(k, m, 8), g = RandomMatrix(n, m, 9);
  for (const DenseBackendConfig& backend : Backends()) {
    const ScopedDenseBackend scope(backend);
    const Products one = RunWithThreads(1, [&] { return RunProducts(x, w, g); });
    const Products two = RunWithThreads(2, [&] { return RunProducts(x, w, g); });
    EXPECT_TRUE(BitIdentical(one.y, two.y)) << DenseBackendName(backend.backend);
    EXPECT_TRUE(BitIdentical(one.out, two.out)) << DenseBackendName(backend.backend);
    EXPECT_TRUE(BitIdentical(one.yt, two.yt)) << DenseBackendName(backend.backend);
    // And the result is the right one.
    const RowMatrix xt = x.transpose();
    ExpectClose(two.out, NaiveProduct(xt, g));
  }
}

TEST(DenseBackendChoice, SmallProductsStayOnEigen) {
  if (!OneDnnAvailable()) GTEST_SKIP() << "built without oneDNN";
  const Eigen::Index n = 300, k = 17, m = 9;  // 91,800 flops: under the default threshold
  const RowMatrix x = RandomMatrix(n, k, 1), w = RandomMatrix(k, m, 2), g = RandomMatrix(n, m, 3);
  Products on_eigen, by_default;
  {
    const ScopedDenseBackend eigen({DenseBackend::kEigen});
    on_eigen = RunProducts(x, w, g);
  }
  {
    const ScopedDenseBackend onednn({DenseBackend::kOneDnn});
    ASSERT_GT(DenseBackendConfig{}.min_onednn_flops, 2.0 * n * k * m);
    by_default = RunProducts(x, w, g);
  }
  EXPECT_TRUE(BitIdentical(on_eigen.y, by_default.y));
  EXPECT_TRUE(BitIdentical(on_eigen.out, by_default.out));
  EXPECT_TRUE(BitIdentical(on_eigen.yt, by_default.yt));
}

TEST(DenseBackendChoice, NamesParseAndTheScopePutsTheBackendBack) {
  DenseBackend b = DenseBackend::kEigen;
  EXPECT_TRUE(ParseDenseBackend("onednn", &b));
  EXPECT_EQ(b, DenseBackend::kOneDnn);
  EXPECT_TRUE(ParseDenseBackend("eigen", &b));
  EXPECT_EQ(b, DenseBackend::kEigen);
  EXPECT_TRUE(ParseDenseBackend("auto", &b));
  EXPECT_EQ(b, OneDnnAvailable() ? DenseBackend::kOneDnn : DenseBackend::kEigen);
  EXPECT_FALSE(ParseDenseBackend("mkl", &b));
  EXPECT_STREQ(DenseBackendName(DenseBackend::kOneDnn), "onednn");
  EXPECT_STREQ(DenseBackendName(DenseBackend::kEigen), "eigen");
  const DenseBackendConfig before = GetDenseBackend();
  {
    const ScopedDenseBackend eigen({DenseBackend::kEigen, 5.0});
    EXPECT_EQ(GetDenseBackend().backend, DenseBackend::kEigen);
    EXPECT_EQ(GetDenseBackend().min_onednn_flops, 5.0);
  }
  EXPECT_EQ(GetDenseBackend().backend, before.backend);
  EXPECT_EQ(GetDenseBackend().min_onednn_flops, before.min_onednn_flops);
  EXPECT_EQ(SetDenseBackend({DenseBackend::kOneDnn}), OneDnnAvailable());
  SetDenseBackend(before);
}

// --compute bf16 where it can run: CpuSupportsBf16 says what the kernel says (/proc/cpuinfo's
// avx512_bf16 flag), and CheckDenseBackend, SetDenseBackend refuse it everywhere else.
TEST(DenseBf16, RefusedWhereItCannotRun) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool flag = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w) flag = flag || w == "avx512_bf16";
    break;
  }
  EXPECT_EQ(CpuSupportsBf16(), flag);

  const Status on_eigen = CheckDenseBackend(DenseBackend::kEigen, DenseCompute::kBf16);
  ASSERT_FALSE(on_eigen.ok());
  EXPECT_NE(on_eigen.message().find(OneDnnAvailable() ? "not on --gemm eigen" : "this build of cgcn has none"),
            std::string::npos)
      << on_eigen.message();
  const Status on_onednn = CheckDenseBackend(DenseBackend::kOneDnn, DenseCompute::kBf16);
  EXPECT_EQ(on_onednn.ok(), OneDnnAvailable() && CpuSupportsBf16());
  if (OneDnnAvailable() && !CpuSupportsBf16()) {
    EXPECT_EQ(on_onednn.message(),
              "--compute bf16 needs a CPU with the AVX512_BF16 instructions, and this one has none (see the "
              "avx512_bf16 flag in /proc/cpuinfo); use --compute f32");
  }
  EXPECT_TRUE(CheckDenseBackend(DenseBackend::kEigen, DenseCompute::kF32).ok());

  const DenseBackendConfig before = GetDenseBackend();
  EXPECT_FALSE(SetDenseBackend({DenseBackend::kEigen, 0.0, DenseCompute::kBf16}));
  EXPECT_EQ(GetDenseBackend().compute, before.compute);
  EXPECT_EQ(GetDenseBackend().backend, before.backend);
  EXPECT_EQ(SetDenseBackend({DenseBackend::kOneDnn, 0.0, DenseCompute::kBf16}), on_onednn.ok());
  EXPECT_EQ(GetDenseBackend().compute, on_onednn.ok() ? DenseCompute::kBf16 : before.compute);
  SetDenseBackend(before);

  DenseCompute c = DenseCompute::kF32;
  EXPECT_TRUE(ParseDenseCompute("bf16", &c));
  EXPECT_EQ(c, DenseCompute::kBf16);
  EXPECT_TRUE(ParseDenseCompute("f32", &c));
  EXPECT_EQ(c, DenseCompute::kF32);
  EXPECT_FALSE(ParseDenseCompute("f16", &c));
  EXPECT_STREQ(DenseComputeName(DenseCompute::kBf16), "bf16");
}

// x with every element rounded to bfloat16 by the shard codec's scalar rounding (FloatToBf16: an
// implementation independent of the products' vector one).
RowMatrix RoundedToBf16(const RowMatrix& x) {
  RowMatrix r(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) r.data()[i] = Bf16ToFloat(FloatToBf16(x.data()[i]));
  return r;
}

// max |got - want| / max |want|.
double RelativeDifference(const RowMatrix& got, const Eigen::MatrixXd& want) {
  return (got.cast<double>() - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff();
}

// --compute bf16: each product is the exact product of its operands rounded to bfloat16, to f32
// accumulation's error (1e-5 of the sum of the terms' magnitudes, as for f32), on shapes of one
// and of several chunks, a masked tail (sizes not a multiple of 16) included. And it is not the f32
// product: against the unrounded operands the error is bfloat16's (above 1e-4). The shapes do
// at least 100 flops per value rounded in each product, where bf16 applies.
TEST(DenseBf16, ProductsAreThoseOfTheOperandsRoundedToBf16) {
  if (!OneDnnAvailable() || !CpuSupportsBf16()) GTEST_SKIP() << "needs oneDNN and a CPU with AVX512_BF16";
  const ScopedDenseBackend bf16({DenseBackend::kOneDnn, 0.0, DenseCompute::kBf16});
  // 4500 rows: several row chunks, and two partials in MatMulTransposeA's reduction.
  for (const Shape s : {Shape{999, 130, 131}, Shape{4500, 100, 128}}) {
    SCOPED_TRACE(testing::Message() << s.n << " x " << s.k << " x " << s.m);
    const RowMatrix x = RandomMatrix(s.n, s.k, 11), w = RandomMatrix(s.k, s.m, 12), g = RandomMatrix(s.n, s.m, 13);
    const Products p = RunProducts(x, w, g);
    const RowMatrix xr = RoundedToBf16(x), wr = RoundedToBf16(w), gr = RoundedToBf16(g);
    const RowMatrix xrt = xr.transpose(), wrt = wr.transpose();
    ExpectClose(p.y, NaiveProduct(xr, wr));
    ExpectClose(p.out, NaiveProduct(xrt, gr));
    ExpectClose(p.yt, NaiveProduct(gr, wrt));
    // Against the unrounded operands' products (Eigen in double: only their difference matters).
    const Eigen::MatrixXd xd = x.cast<double>(), wd = w.cast<double>(), gd = g.cast<double>();
    EXPECT_GT(RelativeDifference(p.y, xd * wd), 1e-4);
    EXPECT_GT(RelativeDifference(p.out, xd.transpose() * gd), 1e-4);
    EXPECT_GT(RelativeDifference(p.yt, gd * wd.transpose()), 1e-4);
  }
}

// A product with too little arithmetic per value rounded stays f32 under --compute bf16: into 20
// outputs the forward product and dW do 40 and 35 flops per value (below 100), and give the f32
// product's bits; dX (250 flops per value) takes bf16.
TEST(DenseBf16, NarrowProductsStayF32) {
  if (!OneDnnAvailable() || !CpuSupportsBf16()) GTEST_SKIP() << "needs oneDNN and a CPU with AVX512_BF16";
  const Eigen::Index n = 5000, k = 128, m = 20;
  const RowMatrix x = RandomMatrix(n, k, 21), w = RandomMatrix(k, m, 22), g = RandomMatrix(n, m, 23);
  Products f32, bf16;
  {
    const ScopedDenseBackend scope({DenseBackend::kOneDnn, 0.0, DenseCompute::kF32});
    f32 = RunProducts(x, w, g);
  }
  {
    const ScopedDenseBackend scope({DenseBackend::kOneDnn, 0.0, DenseCompute::kBf16});
    bf16 = RunProducts(x, w, g);
  }
  EXPECT_TRUE(BitIdentical(f32.y, bf16.y));
  EXPECT_TRUE(BitIdentical(f32.out, bf16.out));
  EXPECT_FALSE(BitIdentical(f32.yt, bf16.yt));
  ExpectClose(bf16.yt, NaiveProduct(RoundedToBf16(g), RowMatrix(RoundedToBf16(w).transpose())));
  EXPECT_GT(RelativeDifference(bf16.yt, g.cast<double>() * w.cast<double>().transpose()), 1e-4);
}

// bf16 keeps the promise of the f32 products: the thread count changes no bit.
TEST(DenseBf16, BitIdenticalWithOneAndTwoThreads) {
  if (!OneDnnAvailable() || !CpuSupportsBf16()) GTEST_SKIP() << "needs oneDNN and a CPU with AVX512_BF16";
  const ScopedDenseBackend bf16({DenseBackend::kOneDnn, 0.0, DenseCompute::kBf16});
  const Eigen::Index n = 20011, k = 48, m = 40;
  const RowMatrix x = RandomMatrix(n, k, 7), w = RandomMatrix(k, m, 8), g = RandomMatrix(n, m, 9);
  const Products one = RunWithThreads(1, [&] { return RunProducts(x, w, g); });
  const Products two = RunWithThreads(2, [&] { return RunProducts(x, w, g); });
  EXPECT_TRUE(BitIdentical(one.y, two.y));
  EXPECT_TRUE(BitIdentical(one.out, two.out));
  EXPECT_TRUE(BitIdentical(one.yt, two.yt));
}

}  // namespace
}  // namespace cgcn
