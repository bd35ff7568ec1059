// The whole path: raw files -> shards -> streamed training -> full-graph evaluation,
// checked against a dense reference and on real data (Cora).
#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cgcn/batch_stream.h"
#include "cgcn/byte_size.h"
#include "cgcn/evaluate.h"
#include "cgcn/memory_plan.h"
#include "cgcn/model_file.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"
#include "testutil/shards.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::TempDir;

// Dense full-graph forward pass in double: H_{l+1} = A_hat (H_l W_l) + b_l, ReLU between layers.
Eigen::MatrixXd DenseForward(const testutil::RawDatasetSpec& spec, const Gcn& model) {
  const uint32_t n = spec.num_nodes;
  Eigen::MatrixXd a = Eigen::MatrixXd::Identity(n, n);
  for (auto [u, v] : testutil::NaiveEdgeSet(spec)) a(u, v) = a(v, u) = 1;
  const Eigen::VectorXd dinv = a.rowwise().sum().cwiseSqrt().cwiseInverse();
  a = dinv.asDiagonal() * a * dinv.asDiagonal();
  const auto F = static_cast<Eigen::Index>(spec.features[0].size());
  Eigen::MatrixXd h(n, F);
  for (uint32_t v = 0; v < n; ++v) {
    double sum = 0;
    for (float f : spec.features[v]) sum += f;
    for (Eigen::Index f = 0; f < F; ++f) h(v, f) = spec.features[v][static_cast<size_t>(f)] / std::max(sum, 1.0);
  }
  for (uint32_t l = 0; l < model.config().layers; ++l) {
    h = a * (h * model.weight(l).cast<double>());
    h.rowwise() += model.bias(l).cast<double>();
    if (l + 1 < model.config().layers) h = h.cwiseMax(0.0);
  }
  return h;
}

TEST(EndToEnd, FullGraphEvaluationEqualsDenseReference) {
  TempDir tmp;
  const auto spec = testutil::RandomRawDataset(150, 600, 6, 3, 4);
  testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 5);
  auto d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok());
  for (uint32_t layers : {1u, 2u, 3u}) {
    GcnConfig cfg;
    cfg.in_dim = 6;
    cfg.hidden = 8;
    cfg.out_dim = 3;
    cfg.layers = layers;
    Gcn model(cfg, 100 + layers);
    for (uint32_t l = 0; l < layers; ++l) model.bias(l).setLinSpaced(-0.1f, 0.1f);
    std::vector<Prediction> preds;
    Result<Accuracy> acc = EvaluateFullGraph(*d, model, FeatureNorm::Row(), &preds);
    ASSERT_TRUE(acc.ok()) << acc.status().ToString();
    const Eigen::MatrixXd ref = DenseForward(spec, model);
    ASSERT_EQ(preds.size(), 150u);
    std::map<uint32_t, uint32_t> by_id;
    for (const Prediction& p : preds) by_id[p.node_id] = p.label;
    ASSERT_EQ(by_id.size(), 150u);
    uint32_t correct = 0;
    for (uint32_t v : spec.test) {
      Eigen::Index arg;
      ref.row(v).maxCoeff(&arg);
      correct += static_cast<uint32_t>(arg) == spec.labels[v];
    }
    for (uint32_t v = 0; v < 150; ++v) {
      Eigen::Index arg;
      ref.row(v).maxCoeff(&arg);
      EXPECT_EQ(by_id[v], static_cast<uint32_t>(arg)) << "node " << v << " layers " << layers;
    }
    EXPECT_DOUBLE_EQ(acc->test, static_cast<double>(correct) / static_cast<double>(spec.test.size()));
  }
}

TEST(EndToEnd, TrainingIsReproducibleAcrossThreadCounts) {
  TempDir tmp;
  testutil::BuildShards(testutil::RandomRawDataset(300, 1500, 8, 4, 8), tmp.path(), tmp.Join("shards"), 6);
  auto d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok());
  TrainOptions o;
  o.epochs = 4;
  o.clusters_per_batch = 2;
  o.hidden = 16;
  std::vector<double> losses[2];
  std::vector<float> params[2];
  for (int t = 0; t < 2; ++t) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(t + 1));
    Gcn model(GcnConfig{8, 16, 4, 2, 0.5f}, 3);
    Result<TrainReport> r = Train(*d, o, model);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const auto& e : r->epochs) losses[t].push_back(e.loss);
    params[t].assign(model.params().begin(), model.params().end());
  }
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_EQ(params[0], params[1]);
  EXPECT_LT(losses[0].back(), losses[0].front());  // it learns
}

// The decoded-cluster cache changes no result: the same losses and parameters with no cache, a
// partial one and the whole graph's (by default), and every later epoch takes all its clusters from
// a full cache. Under a budget, a cache that does not fit is refused before training, with the
// numbers.
TEST(EndToEnd, DecodedClusterCacheChangesNoResult) {
  TempDir tmp;
  testutil::BuildShards(testutil::RandomRawDataset(300, 1500, 8, 4, 8), tmp.path(), tmp.Join("shards"), 6);
  auto d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok());
  uint64_t all = 0;
  for (const ShardInfo& s : d->manifest().shards) all += BatchStream::CachedBytes(s, d->manifest().num_parts);
  std::vector<double> losses[3], accs[3];
  std::vector<float> params[3];
  std::vector<uint32_t> predictions[3];
  const uint64_t caches[3] = {0, all / 2, TrainOptions::kAutoCache};
  for (int k = 0; k < 3; ++k) {
    TrainOptions o;
    o.epochs = 3;
    o.clusters_per_batch = 2;
    o.hidden = 16;
    o.cache_bytes = caches[k];
    o.predict = true;  // the final evaluation takes the cached clusters instead of decoding them
    Gcn model(GcnConfig{8, 16, 4, 2, 0.5f}, 3);
    Result<TrainReport> r = Train(*d, o, model);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const auto& e : r->epochs) losses[k].push_back(e.loss);
    accs[k] = {r->final_acc.train, r->final_acc.valid, r->final_acc.test, r->final_acc.test_loss};
    for (const Prediction& p : r->predictions) predictions[k].push_back(p.node_id * 1000u + p.label);
    EXPECT_EQ(r->feature_norm.kind, FeatureNormKind::kStandard);  // normalizes a copy of the cached features
    params[k].assign(model.params().begin(), model.params().end());
    EXPECT_EQ(r->cache_bytes, k == 2 ? all : caches[k]);
    for (const auto& e : r->epochs) {
      const uint64_t hits = e.stats.cache_hits;
      if (k == 0 || e.epoch == 1) {
        EXPECT_EQ(hits, 0u) << k;
      } else if (k == 2) {
        EXPECT_EQ(hits, 6u);
      } else {
        EXPECT_GT(hits, 0u);
        EXPECT_LT(hits, 6u);
      }
    }
  }
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_EQ(losses[0], losses[2]);
  EXPECT_EQ(params[0], params[1]);
  EXPECT_EQ(params[0], params[2]);
  EXPECT_EQ(accs[0], accs[1]);
  EXPECT_EQ(accs[0], accs[2]);
  ASSERT_EQ(predictions[0].size(), 300u);
  EXPECT_EQ(predictions[0], predictions[1]);
  EXPECT_EQ(predictions[0], predictions[2]);

  TrainOptions o;
  o.clusters_per_batch = 2;
  o.hidden = 16;
  o.mem_budget = 64ull << 20;
  o.cache_bytes = 64ull << 20;
  Result<MemoryPlan> plan = PlanMemory(d->manifest(), o, 2);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--cache 64.0 MiB does not fit --mem-budget 64.0 MiB: training takes"),
            std::string::npos)
      << plan.status().message();
  o.cache_bytes = TrainOptions::kAutoCache;
  plan = PlanMemory(d->manifest(), o, 2);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->cache_bytes, o.mem_budget - plan->train_bytes);
}

std::string CoraDir() {
  for (const std::string& p :
       {std::string(CGCN_SOURCE_DIR) + "/data/cora", std::string(CGCN_SOURCE_DIR) + "/../shared/data/cora"})
    if (fs::exists(p + "/raw")) return p;
  return "";
}

TEST(EndToEnd, CoraReachesPublishedAccuracyRange) {
  const std::string cora = CoraDir();
  if (cora.empty()) GTEST_SKIP() << "Cora not found";
  TempDir tmp;
  Result<RawGraph> raw = ReadRawGraph(RawReadOptions{cora, ""});
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto g = BuildSymmetricCsr(raw->num_nodes, raw->edge_src, raw->edge_dst);
  ASSERT_TRUE(g.ok());
  auto p = PartitionGraph(g->view(), PartitionOptions{10, 0});
  ASSERT_TRUE(p.ok());
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("cora-shards");
  ASSERT_TRUE(WriteShardDirectory(*raw, g->view(), *p, wo).ok());
  auto d = ShardDirectory::Open(wo.out_dir);
  ASSERT_TRUE(d.ok());
  TrainOptions o;  // defaults: q=2, 2 x 128, lr 0.01, wd 5e-4, dropout 0.5, row-normalized
  o.epochs = 200;
  Gcn model(GcnConfig{raw->feat_dim, o.hidden, raw->num_classes, o.layers, o.dropout}, 0);
  Result<TrainReport> r = Train(*d, o, model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(r->final_acc.test, 0.77) << "Kipf & Welling report 0.815; the reference 0.815 +- 0.008";
  EXPECT_GE(r->final_acc.train, 0.95);
}

// ---- The command-line tools, as a user runs them.

struct ShellResult {
  int exit_code;
  std::string out;
};

ShellResult Shell(const std::string& cmd) {
  ShellResult r{-1, ""};
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Bin(const char* tool) { return std::string(CGCN_BIN_DIR) + "/" + tool; }

TEST(Tools, PreprocessTrainDumpOnTinyGraph) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("raw"));
  const std::string shards = tmp.Join("shards");
  ShellResult pre =
      Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("raw") + " --out " + shards + " --parts 2 --quiet");
  ASSERT_EQ(pre.exit_code, 0) << pre.out;
  EXPECT_NE(pre.out.find("\"edge_cut\":"), std::string::npos) << pre.out;  // --quiet: the JSON line only
  ShellResult dump = Shell(Bin("cgcn-dump") + " " + shards + " --verify");
  ASSERT_EQ(dump.exit_code, 0) << dump.out;
  EXPECT_NE(dump.out.find("OK: 2 shards"), std::string::npos) << dump.out;
  const std::string metrics = tmp.Join("m.jsonl"), model = tmp.Join("model.bin"), pred = tmp.Join("pred.csv");
  ShellResult train =
      Shell(Bin("cgcn-train") + " --shards " + shards + " --epochs 5 --eval-every 2 --hidden 8 --quiet --metrics-out " +
            metrics + " --save-model " + model + " --predict-out " + pred);
  ASSERT_EQ(train.exit_code, 0) << train.out;
  const std::string last = train.out.substr(train.out.rfind('\n', train.out.size() - 2) + 1);
  const auto j = nlohmann::json::parse(last);
  for (const char* key : {"train_acc", "valid_acc", "test_acc", "epochs", "mean_epoch_s", "peak_rss_mb"})
    EXPECT_TRUE(j.contains(key)) << key << " missing from " << last;
  EXPECT_EQ(j["epochs"], 5);
  EXPECT_GT(j["peak_rss_mb"].get<double>(), 1.0);
  std::ifstream m(metrics);
  int lines = 0, evaluated = 0;
  for (std::string line; std::getline(m, line); ++lines) evaluated += nlohmann::json::parse(line).contains("test_acc");
  EXPECT_EQ(lines, 5);
  EXPECT_EQ(evaluated, 3);  // epochs 2, 4 and the last
  const std::string csv = testutil::ReadFile(pred);
  EXPECT_EQ(csv.substr(0, 14), "node_id,label\n");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  FeatureNorm norm;
  Result<Gcn> loaded = LoadModel(model, &norm);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  // The tiny graph's features take negative values: auto standardizes them, over every node.
  ASSERT_EQ(norm.kind, FeatureNormKind::kStandard);
  ASSERT_EQ(norm.mean.size(), 3u);
  EXPECT_FLOAT_EQ(norm.mean[0], 2.5f);   // mean of 0..5
  EXPECT_FLOAT_EQ(norm.mean[1], -2.0f);  // mean of 0.5 - i
  EXPECT_EQ(loaded->config().hidden, 8u);
}

TEST(Tools, BadInputExitsNonZeroAndWritesNothing) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("raw"));
  testutil::WriteGzFile(tmp.Join("raw/raw/edge.csv.gz"), "0,1\n1,x\n");
  const std::string out = tmp.Join("shards");
  ShellResult pre =
      Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("raw") + " --out " + out + " --parts 2 --quiet");
  EXPECT_NE(pre.exit_code, 0);
  EXPECT_NE(pre.out.find("edge.csv.gz:2"), std::string::npos) << pre.out;
  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find("shards"), std::string::npos) << "left behind: " << e.path();
  ShellResult train = Shell(Bin("cgcn-train") + " --shards " + out);
  EXPECT_NE(train.exit_code, 0);
  EXPECT_NE(train.out.find(out), std::string::npos) << train.out;
}

// --feature-dtype bf16/f16: the shards decode to the f32 shards' features rounded to 16 bits,
// node by node; a value f16 cannot hold stops preprocessing, naming its node and column, and
// leaves nothing at the output.
TEST(Tools, PreprocessFeatureDtypes) {
  TempDir tmp;
  testutil::RawDatasetSpec spec = testutil::RandomRawDataset(300, 1200, 6, 3, 7);
  spec.features[123][4] = 1000.0f + 1.0f / 3.0f;  // rounds differently in bf16 and f16
  testutil::WriteRawDataset(tmp.Join("raw"), spec);
  auto preprocess = [&](const std::string& dtype, const std::string& out) {
    return Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("raw") + " --out " + out +
                 " --parts 4 --quiet --feature-dtype " + dtype);
  };
  ShellResult f32 = preprocess("f32", tmp.Join("f32"));
  ASSERT_EQ(f32.exit_code, 0) << f32.out;
  EXPECT_NE(f32.out.find("\"feature_dtype\":\"f32\""), std::string::npos) << f32.out;
  Result<ShardDirectory> ref = ShardDirectory::Open(tmp.Join("f32"));
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (const std::string dtype : {"bf16", "f16"}) {
    SCOPED_TRACE(dtype);
    ShellResult pre = preprocess(dtype, tmp.Join(dtype));
    ASSERT_EQ(pre.exit_code, 0) << pre.out;
    EXPECT_NE(pre.out.find("\"feature_dtype\":\"" + dtype + "\""), std::string::npos) << pre.out;
    ShellResult dump = Shell(Bin("cgcn-dump") + " " + tmp.Join(dtype) + " --shard 0");
    EXPECT_NE(dump.out.find(" f32 " + dtype), std::string::npos) << dump.out;  // "features ... f32 bf16+zstd"
    EXPECT_EQ(Shell(Bin("cgcn-dump") + " " + tmp.Join(dtype) + " --verify").exit_code, 0);
    Result<ShardDirectory> d = ShardDirectory::Open(tmp.Join(dtype));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_EQ(d->num_clusters(), ref->num_clusters());
    ShardDecoder dec;
    uint32_t rounded = 0;
    for (uint32_t c = 0; c < d->num_clusters(); ++c) {
      ClusterData a, b;
      ASSERT_TRUE(ref->Load(c, kAllSections, dec, a).ok());
      ASSERT_TRUE(d->Load(c, kAllSections, dec, b).ok());
      ASSERT_EQ(a.node_ids, b.node_ids);
      ASSERT_EQ(a.features.size(), b.features.size());
      for (size_t k = 0; k < a.features.size(); ++k) {
        const float want =
            dtype == "bf16" ? Bf16ToFloat(FloatToBf16(a.features[k])) : F16ToFloat(FloatToF16(a.features[k]));
        ASSERT_EQ(b.features[k], want) << "cluster " << c << " value " << k;
        rounded += b.features[k] != a.features[k];
      }
    }
    EXPECT_GT(rounded, 0u);  // the features are noisy floats: rounding changed some
    EXPECT_LT(d->manifest().shards[0].file_size, ref->manifest().shards[0].file_size);
  }
  spec.features[42][2] = 70000.0f;
  testutil::WriteRawDataset(tmp.Join("raw"), spec);
  ShellResult big = preprocess("f16", tmp.Join("big"));
  EXPECT_EQ(big.exit_code, 1) << big.out;
  EXPECT_NE(big.out.find("node 42 column 2: feature value 70000.000000 does not fit f16"), std::string::npos)
      << big.out;
  EXPECT_FALSE(fs::exists(tmp.Join("big")));
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find("big."), std::string::npos) << "left behind: " << e.path();
  ShellResult unknown = preprocess("int8", tmp.Join("int8"));
  EXPECT_EQ(unknown.exit_code, 2) << unknown.out;
  EXPECT_NE(unknown.out.find("--feature-dtype"), std::string::npos) << unknown.out;
}

TEST(Tools, DumpVerifyNamesTheCorruptFile) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("raw"));
  const std::string shards = tmp.Join("shards");
  ASSERT_EQ(Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("raw") + " --out " + shards + " --parts 2 --quiet")
                .exit_code,
            0);
  const std::string victim = shards + "/" + ShardFileName(1);
  testutil::FlipByte(victim, testutil::FileSize(victim) - 1);
  ShellResult dump = Shell(Bin("cgcn-dump") + " " + shards + " --verify");
  EXPECT_EQ(dump.exit_code, 1);
  EXPECT_NE(dump.out.find("shard-000001.cgs: section 'split'"), std::string::npos) << dump.out;
  ShellResult train = Shell(Bin("cgcn-train") + " --shards " + shards + " --epochs 1 --quiet");
  EXPECT_EQ(train.exit_code, 1);
  EXPECT_NE(train.out.find("shard-000001.cgs"), std::string::npos) << train.out;
}

}  // namespace
}  // namespace cgcn

namespace cgcn {
namespace {

TEST(Tools, UsageErrorsExitTwoAndExistingOutputIsRefusedBeforeReading) {
  TempDir tmp;
  ShellResult bad_flag = Shell(Bin("cgcn-train") + " --shards x --no-such-flag");
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.out;
  ShellResult bad_value = Shell(Bin("cgcn-preprocess") + " --input a --out b --parts abc");
  EXPECT_EQ(bad_value.exit_code, 2) << bad_value.out;
  EXPECT_EQ(Shell(Bin("cgcn-dump") + " --help").exit_code, 0);
  fs::create_directories(tmp.Join("exists"));
  ShellResult pre = Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("nothing-here") + " --out " +
                          tmp.Join("exists") + " --parts 2");
  EXPECT_EQ(pre.exit_code, 2) << pre.out;
  EXPECT_NE(pre.out.find("already exists"), std::string::npos) << pre.out;
  EXPECT_EQ(pre.out.find("[1/4]"), std::string::npos) << "read before refusing: " << pre.out;
}

TEST(Tools, CheckInputRefusesStaleShards) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("raw"));
  const std::string shards = tmp.Join("shards");
  ASSERT_EQ(Shell(Bin("cgcn-preprocess") + " --input " + tmp.Join("raw") + " --out " + shards + " --parts 2 --quiet")
                .exit_code,
            0);
  ShellResult ok = Shell(Bin("cgcn-dump") + " " + shards + " --check-input " + tmp.Join("raw"));
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("matches the manifest's record of 8 files"), std::string::npos) << ok.out;
  testutil::WriteGzFile(tmp.Join("raw/split/s/test.csv.gz"), "4\n");
  ShellResult stale =
      Shell(Bin("cgcn-train") + " --shards " + shards + " --check-input " + tmp.Join("raw") + " --epochs 1");
  EXPECT_EQ(stale.exit_code, 1) << stale.out;
  EXPECT_NE(stale.out.find("is stale"), std::string::npos) << stale.out;
  EXPECT_NE(stale.out.find("split/s/test.csv.gz"), std::string::npos) << stale.out;
}

}  // namespace
}  // namespace cgcn

// ---- Bounded memory: spilled evaluation, the budget, its parse and its errors.

namespace cgcn {
namespace {

TEST(BoundedMemory, ParseByteSize) {
  EXPECT_EQ(*ParseByteSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("800MB"), 800ull << 20);
  EXPECT_EQ(*ParseByteSize("64k"), 64ull << 10);
  EXPECT_EQ(*ParseByteSize("1T"), 1ull << 40);
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("4096B"), 4096u);
  for (const char* bad : {"", "G", "abc", "12X", "-1G", "0", "1.5 G", "2GG", "nanM", "1e30T"}) {
    Result<uint64_t> r = ParseByteSize(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

class SpillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::BuildShards(testutil::RandomRawDataset(3000, 15000, 12, 5, 21), tmp_.path(), tmp_.Join("shards"), 12);
    auto d = ShardDirectory::Open(tmp_.Join("shards"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dir_ = std::make_unique<ShardDirectory>(std::move(d).value());
    fs::create_directories(spill_dir());
  }
  std::string spill_dir() const { return tmp_.Join("spill"); }
  static bool Empty(const std::string& dir) { return fs::is_empty(dir); }
  TempDir tmp_;
  std::unique_ptr<ShardDirectory> dir_;
};

// A spilled block row holds its sums as wide as the widest layer output, whether or not a layer
// aggregates its narrower input first. (A 12 -> 16 model's rows were planned 12 floats wide: the
// width subtraction wrapped around, and a spilled products evaluation under --mem-budget 1G
// peaked at 1.75 GB.) Every block of the plan fits its limit at that width.
TEST_F(SpillTest, BlockRowsArePlannedAsWideAsTheirSums) {
  const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
  struct Case {
    GcnConfig cfg;
    uint32_t sums;  // floats of a row's sums: the widest layer output
    uint32_t self;  // planes a row reads for itself beyond the sums
  };
  GcnConfig sage{12, 16, 5, 2, 0.5f};
  sage.kind = LayerKind::kSage;  // its root plane R, 16 wide at layer 0 (aggregating first), 5 at layer 1
  GcnConfig residual{12, 16, 5, 3, 0.5f};
  residual.residual = true;  // layer 1 (16 -> 16) reads its 16-wide input again
  for (const Case& c : {Case{GcnConfig{12, 16, 5, 2, 0.5f}, 16, 0}, Case{GcnConfig{12, 8, 5, 2, 0.5f}, 8, 0},
                        Case{sage, 16, 16}, Case{residual, 16, 16}}) {
    Result<EvalPlan> least = PlanEvaluation(dir_->manifest(), c.cfg, EvalOptions{1, ""}, true, threads);
    ASSERT_FALSE(least.ok());
    Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), c.cfg, EvalOptions{}, true, threads);
    ASSERT_TRUE(probe.ok());
    for (uint64_t budget : {probe->min_bytes, probe->min_bytes * 5 / 4, probe->min_bytes * 2}) {
      EvalOptions o;
      o.memory_bytes = budget;
      o.tmp_dir = spill_dir();
      Result<EvalPlan> plan = PlanEvaluation(dir_->manifest(), c.cfg, o, true, threads);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      if (budget == probe->min_bytes) {
        ASSERT_TRUE(plan->spill);
      }
      if (!plan->spill) continue;  // a larger budget may hold the activations (fused rows: no sums)
      EXPECT_EQ(plan->block_width, c.sums + c.self) << "hidden " << c.cfg.hidden << " budget " << budget;
      EXPECT_LE(plan->peak_bytes, budget);
      const std::vector<uint64_t>& off = dir_->cluster_offsets();
      for (size_t b = 0; b + 1 < plan->blocks.size(); ++b) {
        const uint64_t rows = off[plan->blocks[b + 1]] - off[plan->blocks[b]];
        if (plan->blocks[b + 1] - plan->blocks[b] > 1) {  // a single cluster is a block whatever its size
          EXPECT_LE(rows * c.sums * sizeof(float), plan->block_bytes) << "block " << b;
        }
      }
    }
  }
}

// In memory over several blocks, each block's rows are built once and kept for every layer:
// the probabilities are bitwise those of the one-block evaluation, for gcn and for a 3-layer
// model; the plan counts the kept rows in its peak. Spilled, no rows are kept.
TEST_F(SpillTest, RowsKeptAcrossLayersChangeNoBit) {
  for (uint32_t layers : {1u, 3u}) {
    Gcn model(GcnConfig{12, 16, 5, layers, 0.5f}, 11 + layers);
    for (uint32_t l = 0; l < layers; ++l) model.bias(l).setLinSpaced(-0.3f, 0.1f);
    std::vector<Prediction> one_pred, many_pred;
    std::vector<float> one_prob, many_prob;
    EvalStats one_stats, many_stats;
    EvalOptions one;
    one.probabilities = true;
    Result<Accuracy> a = EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &one_pred, {}, one, &one_stats, &one_prob);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(one_stats.plan.blocks.size(), 2u);
    EXPECT_EQ(one_stats.plan.kept_rows_bytes, 0u);
    EvalOptions many = one;
    many.max_block_bytes = 64 * 1024;  // a few clusters per block
    Result<Accuracy> b =
        EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &many_pred, {}, many, &many_stats, &many_prob);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_GT(many_stats.plan.blocks.size(), 4u);
    EXPECT_GT(many_stats.plan.kept_rows_bytes, uint64_t{3000} * 4);
    EXPECT_GE(many_stats.plan.peak_bytes, many_stats.plan.kept_rows_bytes + many_stats.plan.activation_bytes);
    // Built once per block, not once per block and layer.
    EXPECT_EQ(many_stats.block_rows_built, many_stats.plan.blocks.size() - 1);
    EXPECT_EQ(one_stats.block_rows_built, 1u);
    EXPECT_EQ(b->test, a->test);
    ASSERT_EQ(many_prob.size(), one_prob.size());
    EXPECT_EQ(std::memcmp(many_prob.data(), one_prob.data(), one_prob.size() * sizeof(float)), 0);
    ASSERT_EQ(many_pred.size(), one_pred.size());
    for (size_t i = 0; i < one_pred.size(); ++i) EXPECT_EQ(many_pred[i].label, one_pred[i].label) << i;
    // Spilled: nothing kept in memory (the rows go to a file, SpilledEvaluationGivesBitwise...).
    const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
    Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), model.config(), EvalOptions{}, true, threads);
    ASSERT_TRUE(probe.ok());
    Result<EvalPlan> tight =
        PlanEvaluation(dir_->manifest(), model.config(), EvalOptions{probe->min_bytes, spill_dir()}, true, threads);
    ASSERT_TRUE(tight.ok());
    EXPECT_TRUE(tight->spill);
    EXPECT_EQ(tight->kept_rows_bytes, 0u);
  }
}

// Evaluations that keep their arrays, rows and degree scales for the next one (EvalReuse, as a
// training run's do) give bitwise the probabilities of a fresh evaluation: again for the same
// model, and for a model with other weights (no activation of the earlier evaluation is read),
// with one block and with several, for every layer kind (their degree scales differ; gat sums a
// block at once instead of a cluster at a time). The first
// evaluation builds the rows and the later ones reuse them. Shards of another graph are not
// served the kept rows; a spilled evaluation keeps nothing; a failed one leaves nothing kept.
TEST_F(SpillTest, KeptEvaluationMemoryChangesNoBit) {
  auto fresh = [&](const ShardDirectory& dir, const Gcn& model, const EvalOptions& base, std::vector<float>* prob) {
    EvalOptions o = base;
    o.reuse = nullptr;
    Result<Accuracy> a = EvaluateFullGraph(dir, model, FeatureNorm::Row(), nullptr, {}, o, nullptr, prob);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
  };
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kGat, LayerKind::kSage}) {
    for (uint64_t max_block : {uint64_t{0}, uint64_t{64 * 1024}}) {
      GcnConfig cfg{12, 16, 5, 3, 0.5f};
      cfg.kind = kind;
      Gcn first(cfg, 5), second(cfg, 6);
      for (uint32_t l = 0; l < cfg.layers; ++l) second.bias(l).setLinSpaced(-0.2f, 0.3f);
      EvalReuse reuse;
      EvalOptions o;
      o.probabilities = true;
      o.max_block_bytes = max_block;
      o.reuse = &reuse;
      int step = 0;
      for (const Gcn* model : {&first, &first, &second}) {
        SCOPED_TRACE(std::string(LayerKindName(kind)) + " max block " + std::to_string(max_block) + " evaluation " +
                     std::to_string(step));
        std::vector<float> kept_prob, fresh_prob;
        EvalStats stats;
        Result<Accuracy> a = EvaluateFullGraph(*dir_, *model, FeatureNorm::Row(), nullptr, {}, o, &stats, &kept_prob);
        ASSERT_TRUE(a.ok()) << a.status().ToString();
        EXPECT_EQ(stats.reused, step > 0);
        EXPECT_EQ(stats.block_rows_built, step > 0 ? 0u : stats.plan.blocks.size() - 1);
        if (max_block > 0) {
          EXPECT_GT(stats.plan.blocks.size(), 4u);
        }
        EXPECT_TRUE(reuse.holds_rows());
        EXPECT_GE(reuse.bytes(), stats.plan.activation_bytes);
        EXPECT_LE(reuse.bytes(), stats.plan.reuse_bytes * 2);  // capacities, at most doubled by growth
        fresh(*dir_, *model, o, &fresh_prob);
        ASSERT_EQ(kept_prob.size(), fresh_prob.size());
        EXPECT_EQ(std::memcmp(kept_prob.data(), fresh_prob.data(), fresh_prob.size() * sizeof(float)), 0);
        ++step;
      }
      if (kind != LayerKind::kSage || max_block == 0) continue;  // once, last: it corrupts a shard
      // Shards of another graph, with the same reuse: rebuilt, and their own results.
      testutil::BuildShards(testutil::RandomRawDataset(2000, 9000, 12, 5, 33), tmp_.Join("other"),
                            tmp_.Join("other_shards"), 8);
      Result<ShardDirectory> other = ShardDirectory::Open(tmp_.Join("other_shards"));
      ASSERT_TRUE(other.ok()) << other.status().ToString();
      std::vector<float> kept_prob, fresh_prob;
      EvalStats stats;
      ASSERT_TRUE(EvaluateFullGraph(*other, first, FeatureNorm::Row(), nullptr, {}, o, &stats, &kept_prob).ok());
      EXPECT_FALSE(stats.reused);
      fresh(*other, first, o, &fresh_prob);
      ASSERT_EQ(kept_prob.size(), fresh_prob.size());
      EXPECT_EQ(std::memcmp(kept_prob.data(), fresh_prob.data(), fresh_prob.size() * sizeof(float)), 0);
      // Spilled: nothing kept.
      const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
      Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), cfg, o, false, threads);
      ASSERT_TRUE(probe.ok());
      EXPECT_GT(probe->reuse_bytes, probe->activation_bytes);
      EvalOptions tight = o;
      tight.memory_bytes = probe->min_bytes;
      tight.tmp_dir = spill_dir();
      Result<Accuracy> spilled =
          EvaluateFullGraph(*dir_, first, FeatureNorm::Row(), nullptr, {}, tight, &stats, &kept_prob);
      ASSERT_TRUE(spilled.ok()) << spilled.status().ToString();
      EXPECT_TRUE(stats.plan.spill);
      EXPECT_EQ(stats.plan.reuse_bytes, 0u);
      EXPECT_FALSE(reuse.holds_rows());
      EXPECT_EQ(reuse.bytes(), 0u);
      // Kept again in memory; then a corrupt shard fails the evaluation that rebuilds the rows,
      // and nothing stays kept.
      ASSERT_TRUE(EvaluateFullGraph(*dir_, first, FeatureNorm::Row(), nullptr, {}, o, &stats, &kept_prob).ok());
      EXPECT_TRUE(reuse.holds_rows());
      const std::string victim = dir_->ShardPath(3);
      testutil::FlipByte(victim, testutil::FileSize(victim) / 2);
      Result<ShardDirectory> reopened = ShardDirectory::Open(tmp_.Join("shards"));
      ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
      Result<Accuracy> bad =
          EvaluateFullGraph(*reopened, first, FeatureNorm::Row(), nullptr, {}, o, &stats, &kept_prob);
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().code(), StatusCode::kCorruption) << bad.status().ToString();
      EXPECT_NE(bad.status().ToString().find(victim), std::string::npos) << bad.status().ToString();
      EXPECT_FALSE(reuse.holds_rows());
    }
  }
}

TEST_F(SpillTest, SpilledEvaluationGivesBitwiseTheSamePredictions) {
  for (uint32_t layers : {1u, 3u}) {
    Gcn model(GcnConfig{12, 16, 5, layers, 0.5f}, 7 + layers);
    for (uint32_t l = 0; l < layers; ++l) model.bias(l).setLinSpaced(-0.2f, 0.2f);
    std::vector<Prediction> mem_pred, spill_pred;
    std::vector<float> mem_prob, spill_prob;
    EvalStats mem_stats, spill_stats;
    EvalOptions with_prob;
    with_prob.probabilities = true;
    Result<Accuracy> mem =
        EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &mem_pred, {}, with_prob, &mem_stats, &mem_prob);
    ASSERT_TRUE(mem.ok()) << mem.status().ToString();
    EXPECT_FALSE(mem_stats.plan.spill);
    EXPECT_EQ(mem_stats.spill_read_bytes, 0u);

    // The least memory that works: one cluster per block and the smallest chunk, so the
    // activations are read back in several chunks for every block.
    const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
    Result<EvalPlan> least = PlanEvaluation(dir_->manifest(), model.config(), EvalOptions{1, ""}, true, threads);
    ASSERT_FALSE(least.ok());
    EXPECT_NE(least.status().message().find("evaluation cannot fit"), std::string::npos) << least.status().message();
    Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), model.config(), with_prob, true, threads);
    ASSERT_TRUE(probe.ok());
    EvalOptions tight;
    tight.memory_bytes = probe->min_bytes;
    tight.tmp_dir = spill_dir();
    tight.probabilities = true;
    bool saw_empty_dir_during = true;
    auto progress = [&](std::string_view, uint64_t, uint64_t) { saw_empty_dir_during &= Empty(spill_dir()); };
    Result<Accuracy> spilled =
        EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), &spill_pred, progress, tight, &spill_stats, &spill_prob);
    ASSERT_TRUE(spilled.ok()) << spilled.status().ToString();
    EXPECT_TRUE(spill_stats.plan.spill);
    EXPECT_GT(spill_stats.plan.blocks.size(), 4u) << "one block: the chunked sums were not exercised across blocks";
    const uint64_t one_pass = uint64_t{3000} * 16 * sizeof(float);
    EXPECT_GT(spill_stats.plan.chunk_bytes, 0u);
    EXPECT_LT(spill_stats.plan.chunk_bytes, one_pass) << "one chunk: the chunked sums were not exercised";
    EXPECT_GE(spill_stats.spill_read_bytes, (spill_stats.plan.blocks.size() - 1) * (layers > 1 ? one_pass : 0));
    // The rows are built once per block, by pass 0, and read back from the rows file for every
    // layer: 3000 nodes, 15000 edges each way and the self loops, 4 bytes a column.
    const uint64_t blocks = spill_stats.plan.blocks.size() - 1;
    EXPECT_EQ(spill_stats.block_rows_built, blocks);
    EXPECT_EQ(spill_stats.block_rows_loaded, blocks * layers);
    EXPECT_GE(spill_stats.rows_file_bytes, uint64_t{3000 + 2 * 15000} * 4);
    ASSERT_EQ(spill_prob.size(), mem_prob.size());
    EXPECT_EQ(std::memcmp(spill_prob.data(), mem_prob.data(), mem_prob.size() * sizeof(float)), 0)
        << "spilled probabilities differ from the in-memory ones";

    EXPECT_EQ(spilled->train, mem->train);
    EXPECT_EQ(spilled->valid, mem->valid);
    EXPECT_EQ(spilled->test, mem->test);
    ASSERT_EQ(spill_pred.size(), mem_pred.size());
    for (size_t i = 0; i < mem_pred.size(); ++i) {
      EXPECT_EQ(spill_pred[i].node_id, mem_pred[i].node_id) << i;
      EXPECT_EQ(spill_pred[i].label, mem_pred[i].label) << "node " << mem_pred[i].node_id << " layers " << layers;
    }
    EXPECT_TRUE(saw_empty_dir_during) << "spill files must be unlinked as soon as they are created";
    EXPECT_TRUE(Empty(spill_dir())) << "spill files left behind";
  }
}

TEST_F(SpillTest, UnusableSpillDirectoryIsAClearError) {
  Gcn model(GcnConfig{12, 16, 5, 2, 0.5f}, 1);
  const auto threads = static_cast<uint32_t>(tbb::this_task_arena::max_concurrency());
  Result<EvalPlan> probe = PlanEvaluation(dir_->manifest(), model.config(), EvalOptions{}, false, threads);
  ASSERT_TRUE(probe.ok());
  Result<Accuracy> r = EvaluateFullGraph(*dir_, model, FeatureNorm::Row(), nullptr, {},
                                         EvalOptions{probe->min_bytes, tmp_.Join("no/such/dir")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find("no/such/dir: cannot create a temporary file"), std::string::npos)
      << r.status().message();
}

TEST_F(SpillTest, MemoryPlanFitsLowersPrefetchOrFailsWithNumbers) {
  TrainOptions o;
  o.clusters_per_batch = 3;
  o.hidden = 16;
  o.prefetch = 4;
  o.mem_budget = 1ull << 30;
  Result<MemoryPlan> roomy = PlanMemory(dir_->manifest(), o, 2);
  ASSERT_TRUE(roomy.ok()) << roomy.status().ToString();
  EXPECT_EQ(roomy->prefetch, 4u);
  EXPECT_FALSE(roomy->eval.spill);
  EXPECT_LE(roomy->train_bytes, roomy->budget);
  EXPECT_NE(roomy->Describe().find("memory plan: budget 1.0 GiB"), std::string::npos) << roomy->Describe();

  const uint64_t one = roomy->train_bytes - 3 * roomy->batch_bytes;  // room for exactly one batch
  o.mem_budget = one + roomy->batch_bytes / 2;
  Result<MemoryPlan> tight = PlanMemory(dir_->manifest(), o, 2);
  if (tight.ok()) {  // (the evaluation may not fit in so little; then the error says so)
    EXPECT_EQ(tight->prefetch, 1u);
    EXPECT_NE(tight->Describe().find("prefetch lowered from 4 to 1"), std::string::npos) << tight->Describe();
  } else {
    EXPECT_NE(tight.status().message().find("evaluation cannot fit"), std::string::npos) << tight.status().message();
  }
  o.mem_budget = one - 1;
  Result<MemoryPlan> tiny = PlanMemory(dir_->manifest(), o, 2);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().code(), StatusCode::kInvalidArgument);
  const std::string msg = tiny.status().message();
  EXPECT_NE(msg.find("--mem-budget"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is too small: one batch of the 3 largest clusters needs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at least"), std::string::npos) << msg;
}

TEST(Tools, TrainWithinAMemoryBudget) {
  TempDir tmp;
  testutil::BuildShards(testutil::RandomRawDataset(2000, 10000, 8, 4, 5), tmp.path(), tmp.Join("shards"), 8);
  fs::create_directories(tmp.Join("spill"));
  const std::string base =
      Bin("cgcn-train") + " --shards " + tmp.Join("shards") + " --epochs 2 --hidden 256 --layers 3 -q 2 --threads 2";
  ShellResult bad = Shell(base + " --mem-budget 12Q");
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("--mem-budget: '12Q' is not a memory size"), std::string::npos) << bad.out;
  ShellResult small = Shell(base + " --mem-budget 1M");
  EXPECT_EQ(small.exit_code, 2) << small.out;
  EXPECT_NE(small.out.find("--mem-budget 1.0 MiB is too small"), std::string::npos) << small.out;

  // A budget where training fits and the evaluation's activations do not.
  auto d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok());
  TrainOptions o;
  o.clusters_per_batch = 2;
  o.hidden = 256;
  o.layers = 3;  // a 256 -> 256 layer: layer 0 aggregates its 8 features first, its store is narrow
  o.mem_budget = 1ull << 30;
  o.predict = true;
  Result<MemoryPlan> roomy = PlanMemory(d->manifest(), o, 2);
  ASSERT_TRUE(roomy.ok()) << roomy.status().ToString();
  const uint64_t budget =
      std::max(roomy->train_bytes, roomy->runtime_bytes + roomy->compute_bytes + roomy->eval.min_bytes);
  o.mem_budget = budget;
  Result<MemoryPlan> plan = PlanMemory(d->manifest(), o, 2);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(plan->eval.spill);

  const std::string pred_mem = tmp.Join("mem.csv"), pred_spill = tmp.Join("spill.csv");
  ShellResult mem = Shell(base + " --quiet --predict-out " + pred_mem);
  ASSERT_EQ(mem.exit_code, 0) << mem.out;
  ShellResult ok = Shell(base + " --mem-budget " + std::to_string(budget) + " --tmp-dir " + tmp.Join("spill") +
                         " --predict-out " + pred_spill);
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("memory plan: budget"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("(spilled)"), std::string::npos) << ok.out;
  const auto j = nlohmann::json::parse(ok.out.substr(ok.out.rfind('\n', ok.out.size() - 2) + 1));
  for (const char* key :
       {"mem_budget_mb", "planned_train_mb", "planned_eval_mb", "prefetch", "decode_gb_per_core_s", "decode_cpu_s"})
    EXPECT_TRUE(j.contains(key)) << key << " missing from " << j.dump();
  EXPECT_TRUE(j["eval_spilled"].get<bool>());
  EXPECT_GT(j["decode_cpu_s"].get<double>(), 0.0);
  EXPECT_EQ(testutil::ReadFile(pred_spill), testutil::ReadFile(pred_mem));
  EXPECT_TRUE(fs::is_empty(tmp.Join("spill")));
}

}  // namespace
}  // namespace cgcn
