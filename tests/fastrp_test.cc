// FastRP features (cgcn/fastrp.h) against a naive dense reference, and through preprocessing
// of a featureless input.
#include "cgcn/fastrp.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "cgcn/graph.h"
#include "cgcn/preprocess.h"
#include "cgcn/shard_directory.h"
#include "testutil/testutil.h"
#include "util/file_util.h"

namespace cgcn {
namespace {

using testutil::TempDir;

// The formula of cgcn/feature_source.h on dense N x N and N x d arrays, step by step, with the
// same float operations in the same order (so the numbers are exactly the same).
std::vector<float> DenseFastRp(const CsrGraph& g, const FastRpParams& p) {
  const uint32_t N = g.num_nodes, d = p.dim, width = p.width();
  std::vector<std::vector<uint8_t>> A(N, std::vector<uint8_t>(N, 0));
  std::vector<uint32_t> deg(N, 0);
  for (uint32_t u = 0; u < N; ++u)
    for (uint64_t e = g.offsets[u]; e < g.offsets[u + 1]; ++e) {
      A[u][g.neighbors[e]] = 1;
      ++deg[u];
    }
  std::vector<float> X(uint64_t{N} * d), out(uint64_t{N} * width, 0.0f);
  for (uint32_t v = 0; v < N; ++v) {
    const float scale =
        p.beta == 0.0f || deg[v] == 0 ? 1.0f : static_cast<float>(std::pow(double(deg[v]), double(p.beta)));
    for (uint32_t j = 0; j < d; ++j) X[v * d + j] = scale * FastRpProjectionEntry(p.seed, p.sparsity, d, v, j);
  }
  for (uint32_t v = 0; v < N; ++v)
    if (p.log_degree) out[v * width + d] = static_cast<float>(std::log1p(double(deg[v])));
  for (size_t i = 0; i < p.weights.size(); ++i) {
    std::vector<float> Y(uint64_t{N} * d, 0.0f);
    for (uint32_t u = 0; u < N; ++u) {
      for (uint32_t v = 0; v < N; ++v)  // ascending v: the CSR's row order
        if (A[u][v])
          for (uint32_t j = 0; j < d; ++j) Y[u * d + j] += X[v * d + j];
      if (deg[u] > 0)
        for (uint32_t j = 0; j < d; ++j) Y[u * d + j] /= static_cast<float>(deg[u]);
      double sq = 0;
      for (uint32_t j = 0; j < d; ++j) sq += double(Y[u * d + j]) * Y[u * d + j];
      if (p.weights[i] != 0.0f && sq != 0) {
        const auto f = static_cast<float>(double(p.weights[i]) / std::sqrt(sq));
        for (uint32_t j = 0; j < d; ++j) out[u * width + j] += f * Y[u * d + j];
      }
    }
    X = Y;
  }
  if (p.standardize) {
    for (uint32_t j = 0; j < width; ++j) {
      double s = 0, s2 = 0;
      for (uint32_t v = 0; v < N; ++v) {
        s += out[v * width + j];
        s2 += double(out[v * width + j]) * out[v * width + j];
      }
      const double mean = s / N, var = std::max(0.0, s2 / N - mean * mean);
      const double inv = var > 0 ? 1 / std::sqrt(var) : 0.0;
      for (uint32_t v = 0; v < N; ++v) out[v * width + j] = static_cast<float>((out[v * width + j] - mean) * inv);
    }
  }
  return out;
}

// 9 nodes: the tiny graph's 6, a triangle 6-7-8 joined to node 5, and nothing isolated; plus an
// isolated node 9.
CsrGraph SampleGraph() {
  const std::vector<uint32_t> src = {0, 1, 0, 1, 3, 2, 4, 6, 7, 8, 5};
  const std::vector<uint32_t> dst = {1, 2, 3, 3, 4, 5, 5, 7, 8, 6, 6};
  return *BuildSymmetricCsr(10, src, dst);
}

std::vector<float> Compute(const CsrGraph& g, const FastRpParams& p, uint64_t budget, const TempDir& tmp,
                           FastRpReport* rep = nullptr) {
  FastRpOptions o;
  o.params = p;
  o.scratch_dir = tmp.path();
  o.out_path = tmp.Join("features.f32");
  o.mem_budget = budget;
  Result<FastRpReport> r = ComputeFastRp(g.view(), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  if (rep) *rep = *r;
  // The iterates are gone; the output is N x width floats.
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("fastrp-iterate-a.f32")));
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("fastrp-iterate-b.f32")));
  const auto bytes = *ReadWholeFile(o.out_path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

TEST(FastRp, EqualsTheDenseReferenceForAnyBudgetAndThreadCount) {
  const CsrGraph g = SampleGraph();
  FastRpParams p;
  p.dim = 16;
  p.weights = {0.5f, 0.0f, 1.0f, 2.0f};
  p.beta = -0.5f;
  p.sparsity = 3.0;
  p.seed = 42;
  p.log_degree = true;
  for (const bool standardize : {false, true}) {
    p.standardize = standardize;
    const std::vector<float> want = DenseFastRp(g, p);
    ASSERT_EQ(want.size(), 10u * 17);
    for (const uint64_t budget : {uint64_t{4 * (16 + 17)}, uint64_t{3 * 4 * (16 + 17)}, uint64_t{0}}) {
      for (const size_t threads : {size_t{1}, size_t{2}}) {
        tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
        TempDir tmp;
        FastRpReport rep;
        EXPECT_EQ(Compute(g, p, budget, tmp, &rep), want) << "budget " << budget << " threads " << threads;
        EXPECT_EQ(rep.block_rows, budget == 0 ? 10u : budget / (4 * 33));
      }
    }
  }
  // The isolated node's FastRP columns are zero before standardizing.
  p.standardize = false;
  TempDir tmp;
  const std::vector<float> raw = Compute(g, p, 0, tmp);
  for (uint32_t j = 0; j < 16; ++j) EXPECT_EQ(raw[9 * 17 + j], 0.0f);
  EXPECT_EQ(raw[9 * 17 + 16], 0.0f);                    // log(1 + 0)
  EXPECT_FLOAT_EQ(raw[5 * 17 + 16], std::log1p(3.0f));  // node 5: neighbours 2, 4, 6
}

TEST(FastRp, PropertiesIndependentOfTheReference) {
  // One weight, no standardizing: every non-isolated row is P R normalized: unit L2 norm (or 0).
  const CsrGraph g = SampleGraph();
  FastRpParams p;
  p.dim = 64;
  p.weights = {1.0f};
  p.sparsity = 3.0;
  p.standardize = false;
  TempDir tmp;
  const std::vector<float> f = Compute(g, p, 0, tmp);
  for (uint32_t v = 0; v < 9; ++v) {
    double sq = 0;
    for (uint32_t j = 0; j < 64; ++j) sq += double(f[v * 64 + j]) * f[v * 64 + j];
    EXPECT_NEAR(sq, 1.0, 1e-5) << "node " << v;
  }
  // Standardized columns: mean 0, variance 1 (population).
  p.standardize = true;
  TempDir tmp2;
  const std::vector<float> s = Compute(g, p, 0, tmp2);
  for (uint32_t j = 0; j < 64; ++j) {
    double m = 0, m2 = 0;
    for (uint32_t v = 0; v < 10; ++v) {
      m += s[v * 64 + j];
      m2 += double(s[v * 64 + j]) * s[v * 64 + j];
    }
    EXPECT_NEAR(m / 10, 0.0, 1e-6);
    EXPECT_NEAR(m2 / 10, 1.0, 1e-5);
  }
  // The projection: +-sqrt(s) with probability 1/(2s) each.
  uint64_t plus = 0, minus = 0;
  const uint32_t n = 200000;
  for (uint32_t v = 0; v < n / 100; ++v)
    for (uint32_t j = 0; j < 100; ++j) {
      const float x = FastRpProjectionEntry(7, 4.0, 100, v, j);
      plus += x == 2.0f;
      minus += x == -2.0f;
      EXPECT_TRUE(x == 0.0f || x == 2.0f || x == -2.0f);
    }
  EXPECT_NEAR(double(plus) / n, 0.125, 0.005);
  EXPECT_NEAR(double(minus) / n, 0.125, 0.005);
}

TEST(FastRp, BadParametersNameTheFlag) {
  FastRpParams p;
  p.dim = 0;
  EXPECT_EQ(ValidateFastRpParams(p).message(), "--fastrp-dim must be from 1 to 1048576, found 0");
  p = FastRpParams();
  p.weights = {0.0f, 0.0f};
  EXPECT_EQ(ValidateFastRpParams(p).message(), "--fastrp-weights: at least one weight must be non-zero");
  p = FastRpParams();
  p.sparsity = 0.5;
  EXPECT_EQ(ValidateFastRpParams(p).message(),
            "--fastrp-sparsity must be 0 (sqrt of the node count) or at least 1, found 0.500000");
  p = FastRpParams();
  p.weights.assign(65, 1.0f);
  EXPECT_EQ(ValidateFastRpParams(p).message(), "--fastrp-weights must list 1 to 64 iteration weights, found 65");
}

// A featureless input gets FastRP features in preprocessing; the manifest says so, and the
// shards hold exactly ComputeFastRp's rows. --features file refuses it.
TEST(FastRp, FeaturelessInputIsPreprocessedWithFastRp) {
  TempDir tmp;
  const std::string dir = tmp.Join("in");
  testutil::WriteTinyRawDataset(dir);
  std::filesystem::remove(dir + "/raw/node-feat.csv.gz");
  PreprocessOptions po;
  po.read.dir = dir;
  po.write.out_dir = tmp.Join("out");
  po.parts = 2;
  po.fastrp.dim = 8;
  po.fastrp.seed = 3;
  Result<PreprocessReport> r = Preprocess(po);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<ShardDirectory> d = ShardDirectory::Open(tmp.Join("out"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const Manifest& m = d->manifest();
  EXPECT_EQ(m.feat_dim, 8u);
  ASSERT_EQ(m.feature_source.kind, FeatureSourceKind::kFastRp);
  EXPECT_EQ(m.feature_source.fastrp.dim, 8u);
  EXPECT_EQ(m.feature_source.fastrp.seed, 3u);
  EXPECT_EQ(m.feature_source.fastrp.weights, (std::vector<float>{0, 0, 1, 1}));
  EXPECT_DOUBLE_EQ(m.feature_source.fastrp.sparsity, std::sqrt(6.0));  // s = sqrt(N)
  EXPECT_TRUE(m.feature_source.fastrp.standardize);
  // The same rows as ComputeFastRp on the tiny graph's CSR.
  const testutil::RawDatasetSpec spec = testutil::TinyRawDataset();
  std::vector<uint32_t> src, dst;
  for (const auto& [a, b] : spec.edges) {
    src.push_back(a);
    dst.push_back(b);
  }
  const CsrGraph g = *BuildSymmetricCsr(6, src, dst);
  TempDir tmp2;
  const std::vector<float> want = Compute(g, m.feature_source.fastrp, 0, tmp2);
  ShardDecoder dec;
  for (uint32_t c = 0; c < 2; ++c) {
    ClusterData cd;
    ASSERT_TRUE(d->Load(c, kAllSections, dec, cd).ok());
    for (uint32_t i = 0; i < cd.num_nodes; ++i)
      for (uint32_t j = 0; j < 8; ++j) EXPECT_EQ(cd.features[i * 8 + j], want[cd.node_ids[i] * 8 + j]);
  }
  po.write.out_dir = tmp.Join("out2");
  po.features = PreprocessOptions::Features::kFile;
  r = Preprocess(po);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no node-feat file"), std::string::npos) << r.status().message();
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("out2")));
}

}  // namespace
}  // namespace cgcn
