// Multi-label tasks: the raw reader's label rows, the shard and manifest fields, the sigmoid
// binary cross-entropy and the metrics, against hand-computed answers and naive references.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cgcn/checksum.h"
#include "cgcn/loss.h"
#include "cgcn/memory_plan.h"
#include "cgcn/metrics.h"
#include "cgcn/preprocess.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_directory.h"
#include "cgcn/shard_format.h"
#include "cgcn/train.h"
#include "testutil/testutil.h"
#include "util/bytes.h"

namespace cgcn {
namespace {

using testutil::TempDir;

// The tiny dataset (6 nodes; node 3 in no split) with node-label.csv.gz replaced by `labels`.
std::string TinyWithLabels(const TempDir& tmp, const std::string& labels, bool with_features = true) {
  const std::string dir = tmp.Join("in");
  testutil::WriteTinyRawDataset(dir);
  testutil::WriteGzFile(dir + "/raw/node-label.csv.gz", labels);
  if (!with_features) std::filesystem::remove(dir + "/raw/node-feat.csv.gz");
  return dir;
}

RawReadOptions Options(const std::string& dir) {
  RawReadOptions o;
  o.dir = dir;
  return o;
}

std::string ReadError(const std::string& dir) {
  Result<RawGraph> g = ReadRawGraph(Options(dir));
  return g.ok() ? std::string("(read fine)") : g.status().message();
}

TEST(MultiLabelRaw, RowsOfZeroOneValuesBecomeTaskBits) {
  TempDir tmp;
  // Node 3 (in no split) is unlabeled as a row of empty fields.
  const std::string dir = TinyWithLabels(tmp, "1,0,1\n0,0,0\n0,1,0\n,,\n1,1,1\n0,0,1\n");
  Result<RawGraph> g = ReadRawGraph(Options(dir));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->label_tasks, 3u);
  EXPECT_EQ(g->num_classes, 3u);
  EXPECT_EQ(g->num_unlabeled, 1u);
  EXPECT_EQ(g->labels, (std::vector<uint32_t>{0, 0, 0, kNoLabel, 0, 0}));
  EXPECT_EQ(g->label_bits, (std::vector<uint32_t>{0b101, 0b000, 0b010, 0, 0b111, 0b100}));
  EXPECT_EQ(g->feat_dim, 3u);
}

TEST(MultiLabelRaw, LeadingUnlabeledRowsAndTwoWordRows) {
  TempDir tmp;
  // 40 tasks: two words a row. Node 3 (in no split) is unlabeled, written "nan" (one field).
  // Row 1 sets tasks 0, 31, 32 and 39; row 5 task 33.
  std::string labels;
  for (int r = 0; r < 6; ++r) {
    if (r == 3) {
      labels += "nan\n";
      continue;
    }
    for (int t = 0; t < 40; ++t) {
      const bool set = (r == 1 && (t == 0 || t == 31 || t == 32 || t == 39)) || (r == 5 && t == 33);
      labels += std::string(t ? "," : "") + (set ? "1" : "0");
    }
    labels += "\n";
  }
  const std::string dir = TinyWithLabels(tmp, labels);
  Result<RawGraph> g = ReadRawGraph(Options(dir));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->label_tasks, 40u);
  ASSERT_EQ(g->label_bits.size(), 12u);
  EXPECT_EQ(g->label_bits[2], 0x80000001u);
  EXPECT_EQ(g->label_bits[3], 0x81u);
  EXPECT_EQ(g->label_bits[6], 0u);  // node 3: unlabeled
  EXPECT_EQ(g->label_bits[7], 0u);
  EXPECT_EQ(g->label_bits[11], 0x2u);
  EXPECT_EQ(g->labels[3], kNoLabel);

  // An unlabeled row before the first labeled one: the spec without node 0 in a split.
  TempDir tmp2;
  testutil::RawDatasetSpec spec = testutil::TinyRawDataset();
  spec.train = {1};
  const std::string dir2 = tmp2.Join("in");
  testutil::WriteRawDataset(dir2, spec);
  testutil::WriteGzFile(dir2 + "/raw/node-label.csv.gz", "\n1,0\n0,1\n1,1\n0,0\n1,0\n");
  g = ReadRawGraph(Options(dir2));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->label_tasks, 2u);
  EXPECT_EQ(g->labels, (std::vector<uint32_t>{kNoLabel, 0, 0, 0, 0, 0}));
  EXPECT_EQ(g->label_bits, (std::vector<uint32_t>{0, 1, 2, 3, 0, 1}));
}

TEST(MultiLabelRaw, BadRowsAreNamedByFileLineAndField) {
  TempDir tmp;
  const std::string p = tmp.Join("in") + "/raw/node-label.csv.gz";
  EXPECT_EQ(ReadError(TinyWithLabels(tmp, "1,0,1\n0,0,0\n0,1\n0,0,0\n1,1,1\n0,0,1\n")),
            p + ":3: expected 3 fields of 0 or 1, found 2 fields (line 1, the first labeled one, has 3 fields: a "
                "multi-label file)");
  EXPECT_EQ(ReadError(TinyWithLabels(tmp, "1,0,1\n0,2,0\n0,1,0\n0,0,0\n1,1,1\n0,0,1\n")),
            p + ":2: field 2 (task 1): expected 0 or 1, found '2' (a multi-label row is all 0/1 values, or all empty "
                "or nan for an unlabeled node)");
  EXPECT_EQ(ReadError(TinyWithLabels(tmp, "1,0,1\n0,nan,0\n0,1,0\n0,0,0\n1,1,1\n0,0,1\n")),
            p + ":2: field 2 (task 1): expected 0 or 1, found 'nan' (a multi-label row is all 0/1 values, or all "
                "empty or nan for an unlabeled node)");
  EXPECT_EQ(ReadError(TinyWithLabels(tmp, "1,0,1\n0,0,0\n0,1,0\n,,,\n1,1,1\n0,0,1\n")),
            p + ":4: expected 3 fields, found 4 fields (line 1, the first labeled one, has 3 fields: a multi-label "
                "file)");
  // A multi-class file (first labeled line: 1 field) with a multi-label row later.
  EXPECT_EQ(ReadError(TinyWithLabels(tmp, "1\n0\n1,0\n0\n1\n0\n")),
            p + ":3: expected 1 field (a class id), found 2 fields (line 1, the first labeled one, has 1 field: a "
                "multi-class file)");
  // Node 5 (test split) unlabeled.
  const std::string msg = ReadError(TinyWithLabels(tmp, "1,0\n0,0\n0,1\n0,0\n1,1\n,\n"));
  EXPECT_NE(msg.find("node id 5 has no label"), std::string::npos) << msg;
}

// A cluster with multi-label rows.
ClusterData MultiLabelCluster(uint32_t tasks) {
  ClusterData c;
  c.cluster_id = 0;
  c.num_clusters = 1;
  c.num_nodes = 3;
  c.feat_dim = 2;
  c.num_classes = tasks;
  c.label_tasks = tasks;
  c.node_ids = {0, 1, 2};
  c.adj_offsets = {0, 1, 2, 2};
  c.adj_neighbors = {1, 0};
  c.features = {1, 2, 3, 4, 5, 6};
  c.labels = {0, kNoLabel, 0};
  const uint32_t w = LabelWords(tasks);
  c.label_bits.assign(3 * w, 0);
  c.label_bits[0] = 0b101;
  c.label_bits[2 * w + w - 1] = 1u << ((tasks - 1) % 32);
  c.split = {kSplitTrain, 0, kSplitTest};
  return c;
}

ShardExpectation ExpectFor(const ClusterData& c) {
  ShardExpectation e;
  e.cluster_id = c.cluster_id;
  e.num_clusters = c.num_clusters;
  e.num_nodes = c.num_nodes;
  e.feat_dim = c.feat_dim;
  e.num_classes = c.num_classes;
  e.label_tasks = c.label_tasks;
  e.total_nodes = 3;
  return e;
}

TEST(MultiLabelShard, LabelSectionRoundTripsAndIsChecked) {
  for (const uint32_t tasks : {3u, 32u, 40u}) {
    const ClusterData c = MultiLabelCluster(tasks);
    Result<std::vector<std::byte>> bytes = EncodeShard(c, 3);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    // Header byte 60 holds L; the labels section is n class words then n x W task words.
    EXPECT_EQ(LoadU32(bytes->data() + 60), tasks);
    EXPECT_EQ(LoadU32(bytes->data() + 8), 3u);  // the version (2 since multi-label, 3 since the 16-bit feature codecs)
    const ShardHeader h = *ParseShardHeader(*bytes, "s");
    EXPECT_EQ(h.sections[4].raw_size, 4 * 3 * (1 + uint64_t{LabelWords(tasks)}));
    ShardDecoder dec;
    ClusterData out;
    ASSERT_TRUE(dec.Decode(*bytes, "s", ExpectFor(c), kAllSections, out).ok());
    EXPECT_EQ(out.label_tasks, tasks);
    EXPECT_EQ(out.labels, c.labels);
    EXPECT_EQ(out.label_bits, c.label_bits);
    // The manifest's task count must agree.
    ShardExpectation other = ExpectFor(c);
    other.label_tasks = 0;
    EXPECT_EQ(dec.Decode(*bytes, "s", other, kAllSections, out).message(),
              "s: header label task count is " + std::to_string(tasks) + ", the manifest says 0");
  }
  // Bits beyond L, or on an unlabeled row, are refused by the encoder and the decoder.
  ClusterData bad = MultiLabelCluster(3);
  bad.label_bits[0] = 0b1000;
  EXPECT_EQ(EncodeShard(bad, 3).status().message(),
            "EncodeShard: cluster 0: row 0: a task bit set at or beyond task 3");
  bad = MultiLabelCluster(3);
  bad.label_bits[1] = 1;
  EXPECT_EQ(EncodeShard(bad, 3).status().message(), "EncodeShard: cluster 0: row 1: task bits set on an unlabeled row");
  // A decoder sees the same through a raw-stored section patched after encoding.
  ClusterData good = MultiLabelCluster(3);
  Result<std::vector<std::byte>> bytes = EncodeShard(good, 3, 1e9);  // every section raw
  ASSERT_TRUE(bytes.ok());
  const ShardHeader h = *ParseShardHeader(*bytes, "s");
  auto b = *bytes;
  const uint64_t at = h.sections[4].offset + 4 * 3;  // row 0's task word
  const uint32_t word = 0b1001;
  std::memcpy(b.data() + at, &word, 4);
  const uint64_t sum = Checksum64(b.data() + h.sections[4].offset, h.sections[4].stored_size);
  std::memcpy(b.data() + SectionEntryOffset(4) + section_entry::kChecksum.offset, &sum, 8);
  const uint64_t hsum = Checksum64(b.data(), kHeaderChecksumOffset);
  std::memcpy(b.data() + kHeaderChecksumOffset, &hsum, 8);
  ShardDecoder dec;
  ClusterData out;
  EXPECT_EQ(dec.Decode(b, "s", ExpectFor(good), kAllSections, out).message(),
            "s: section 'labels': row 0: a task bit set at or beyond task 3");
}

// A version-1 shard (multi-class, byte 60 zero) is still read; version 1 with byte 60 set is not.
TEST(MultiLabelShard, Version1ShardsAreStillRead) {
  ClusterData c = MultiLabelCluster(3);
  c.label_tasks = 0;
  c.label_bits.clear();
  c.labels = {2, kNoLabel, 1};
  auto b = *EncodeShard(c, 3);
  auto set_version = [&](uint32_t v, uint32_t tasks) {
    auto x = b;
    std::memcpy(x.data() + 8, &v, 4);
    std::memcpy(x.data() + 60, &tasks, 4);
    const uint64_t sum = Checksum64(x.data(), kHeaderChecksumOffset);
    std::memcpy(x.data() + kHeaderChecksumOffset, &sum, 8);
    return x;
  };
  ShardDecoder dec;
  ClusterData out;
  ASSERT_TRUE(dec.Decode(set_version(1, 0), "s", ExpectFor(c), kAllSections, out).ok());
  EXPECT_EQ(out.labels, c.labels);
  EXPECT_TRUE(out.label_bits.empty());
  EXPECT_EQ(ParseShardHeader(set_version(1, 3), "s").status().message(),
            "s: byte 60 (header field label_tasks): reserved field is not zero (version 1)");
}

// The textbook form of the loss, in double: -y log s(x) - (1 - y) log(1 - s(x)).
double NaiveBce(const std::vector<float>& x, const std::vector<uint32_t>& bits, const std::vector<uint8_t>& mask,
                uint32_t L) {
  const uint32_t W = LabelWords(L);
  double sum = 0;
  uint32_t k = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    ++k;
    for (uint32_t j = 0; j < L; ++j) {
      const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i * L + j])));
      const double y = LabelBit(bits.data() + i * W, j) ? 1.0 : 0.0;
      sum += -y * std::log(s) - (1 - y) * std::log(1 - s);
    }
  }
  return k ? sum / (static_cast<double>(k) * L) : 0.0;
}

TEST(SigmoidBce, HandComputedValueAndGradient) {
  // Row 0: task 0 set; row 1: task 1 set; row 2 masked out.
  std::vector<float> x = {0, 2, -1, 3, 5, 5};
  const std::vector<uint32_t> bits = {0b01, 0b10, 0b11};
  const std::vector<uint8_t> mask = {1, 1, 0};
  std::vector<float> g(6, 9.0f);
  uint32_t count = 0;
  const float loss =
      SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), 3, 2), bits, mask, MatrixMap(g.data(), 3, 2), &count);
  EXPECT_EQ(count, 2u);
  // log 2, 2 + log(1 + e^-2), log(1 + e^-1), log(1 + e^-3): mean 0.7954809...
  const double want =
      (std::log(2.0) + 2 + std::log1p(std::exp(-2.0)) + std::log1p(std::exp(-1.0)) + std::log1p(std::exp(-3.0))) / 4;
  EXPECT_NEAR(loss, want, 1e-6);
  EXPECT_NEAR(want, 0.7954809, 1e-6);
  // (s(x) - y) / 4.
  EXPECT_NEAR(g[0], (0.5 - 1) / 4, 1e-7);
  EXPECT_NEAR(g[1], (1 / (1 + std::exp(-2.0))) / 4, 1e-7);
  EXPECT_NEAR(g[2], (1 / (1 + std::exp(1.0))) / 4, 1e-7);
  EXPECT_NEAR(g[3], (1 / (1 + std::exp(-3.0)) - 1) / 4, 1e-7);
  EXPECT_EQ(g[4], 0.0f);
  EXPECT_EQ(g[5], 0.0f);
  // No masked row: loss 0, zero gradient.
  const std::vector<uint8_t> none = {0, 0, 0};
  EXPECT_EQ(SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), 3, 2), bits, none, MatrixMap(g.data(), 3, 2), &count),
            0.0f);
  EXPECT_EQ(count, 0u);
  for (float v : g) EXPECT_EQ(v, 0.0f);
}

TEST(SigmoidBce, ExtremeLogitsStayFinite) {
  std::vector<float> x = {100, -100, 100, -100};
  const std::vector<uint32_t> bits = {0b0101};  // tasks 0 and 2 set
  const std::vector<uint8_t> mask = {1};
  std::vector<float> g(4);
  uint32_t count = 0;
  // Tasks 1 and 3 (x = -100, y = 0) and 0 and 2 (x = 100, y = 1) cost ~0; flipped they cost 100.
  EXPECT_NEAR(SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), 1, 4), bits, mask, MatrixMap(g.data(), 1, 4), &count),
              0.0, 1e-6);
  const std::vector<uint32_t> flipped = {0b1010};
  EXPECT_NEAR(
      SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), 1, 4), flipped, mask, MatrixMap(g.data(), 1, 4), &count),
      100.0, 1e-4);
  for (float v : g) EXPECT_NEAR(std::fabs(v), 0.25, 1e-6);
}

TEST(SigmoidBce, MatchesNaiveReferenceAndFiniteDifferences) {
  const uint32_t n = 7, L = 35, W = LabelWords(L);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(n * L);
  for (float& v : x) v = nd(rng);
  std::vector<uint32_t> bits(n * W, 0);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = 0; j < L; ++j)
      if (rng() % 3 == 0) bits[i * W + j / 32] |= 1u << (j % 32);
  const std::vector<uint8_t> mask = {1, 0, 1, 1, 0, 1, 1};
  std::vector<float> g(n * L);
  uint32_t count = 0;
  const float loss =
      SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), n, L), bits, mask, MatrixMap(g.data(), n, L), &count);
  EXPECT_EQ(count, 5u);
  EXPECT_NEAR(loss, NaiveBce(x, bits, mask, L), 1e-6);
  const double h = 1e-2;
  for (uint32_t k = 0; k < n * L; ++k) {
    std::vector<float> xp = x, xm = x;
    xp[k] += static_cast<float>(h);
    xm[k] -= static_cast<float>(h);
    const double fd = (NaiveBce(xp, bits, mask, L) - NaiveBce(xm, bits, mask, L)) / (2 * h);
    EXPECT_NEAR(g[k], fd, 2e-6) << "entry " << k;
  }
}

TEST(SigmoidBce, SameResultForAnyThreadCount) {
  const uint32_t n = 5000, L = 7;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(n * L);
  for (float& v : x) v = nd(rng);
  std::vector<uint32_t> bits(n);
  for (auto& b : bits) b = rng() & 0x7f;
  std::vector<uint8_t> mask(n);
  for (auto& m : mask) m = rng() % 2;
  auto run = [&](size_t threads, std::vector<float>& g) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
    g.assign(n * L, 0);
    uint32_t count = 0;
    return SigmoidBinaryCrossEntropy(ConstMatrixMap(x.data(), n, L), bits, mask, MatrixMap(g.data(), n, L), &count);
  };
  std::vector<float> g1, g2;
  const float l1 = run(1, g1), l2 = run(2, g2);
  EXPECT_EQ(std::memcmp(&l1, &l2, sizeof l1), 0);
  EXPECT_EQ(g1, g2);
  // TaskLoss picks the loss by the label kind.
  std::vector<float> g3(n * L);
  uint32_t count = 0;
  EXPECT_EQ(TaskLoss(L, ConstMatrixMap(x.data(), n, L), {}, bits, mask, MatrixMap(g3.data(), n, L), &count), l1);
}

TEST(Metrics, F1RocAucAndTopKByHand) {
  EXPECT_DOUBLE_EQ(F1Score(3, 1, 2), 6.0 / 9.0);
  EXPECT_EQ(F1Score(0, 0, 0), 0.0);
  EXPECT_EQ(F1Score(0, 4, 1), 0.0);
  // scikit-learn's roc_auc_score example: 0.75.
  const std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f};
  EXPECT_DOUBLE_EQ(RocAuc(s, std::vector<uint8_t>{0, 0, 1, 1}), 0.75);
  // Ties count one half: positives {0, 2} at 0.5, negatives at 0.5 and 0.1: (0.5 + 1 + 0.5 + 1) / 4.
  EXPECT_DOUBLE_EQ(RocAuc(std::vector<float>{0.5f, 0.5f, 0.5f, 0.1f}, std::vector<uint8_t>{1, 0, 1, 0}), 0.75);
  EXPECT_DOUBLE_EQ(RocAuc(std::vector<float>{1, 2, 3}, std::vector<uint8_t>{0, 1, 1}), 1.0);
  EXPECT_TRUE(std::isnan(RocAuc(s, std::vector<uint8_t>{1, 1, 1, 1})));
  EXPECT_TRUE(std::isnan(RocAuc(s, std::vector<uint8_t>{0, 0, 0, 0})));
  uint32_t w[2];
  TopKTasks(std::vector<float>{0.1f, 0.9f, 0.5f, 0.9f}, 2, w);
  EXPECT_EQ(w[0], 0b1010u);
  TopKTasks(std::vector<float>{1, 1, 1}, 2, w);  // ties to the lower task
  EXPECT_EQ(w[0], 0b011u);
  std::vector<float> wide(40, 0.0f);
  wide[35] = 1;
  TopKTasks(wide, 1, w);
  EXPECT_EQ(w[0], 0u);
  EXPECT_EQ(w[1], 1u << 3);
  TopKTasks(std::vector<float>{1, 2}, 0, w);
  EXPECT_EQ(w[0], 0u);
}

TEST(Metrics, RocAucMatchesPairCountingOnRandomScoresWithTies) {
  std::mt19937 rng(5);
  for (int rep = 0; rep < 20; ++rep) {
    const size_t n = 1 + rng() % 60;
    std::vector<float> s(n);
    std::vector<uint8_t> y(n);
    for (size_t i = 0; i < n; ++i) {
      s[i] = static_cast<float>(rng() % 7) * 0.5f - 1.0f;  // many ties
      y[i] = rng() % 2;
    }
    double pairs = 0, wins = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j)
        if (y[i] && !y[j]) {
          pairs += 1;
          wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        }
    const double a = RocAuc(s, y);
    if (pairs == 0)
      EXPECT_TRUE(std::isnan(a));
    else
      EXPECT_DOUBLE_EQ(a, wins / pairs);
  }
}

// Three validation rows of two tasks, worked out by hand in the comments.
TEST(Metrics, SplitScorerMultiLabelByHand) {
  // x >= 0 predicts: r0 [1,0], r1 [0,1], r2 [1,1]. Truth: r0 [1,0], r1 [1,1], r2 [0,1].
  // Task 0: TP 1 FP 1 FN 1 -> F1 0.5; task 1: TP 2 -> F1 1. Micro: TP 3 FP 1 FN 1 -> 0.75.
  // Top-k (k = 1, 2, 1): r0 [1,0], r1 [1,1], r2 [1,0] (0.3 > 0.2). Task 0: TP 2 FP 1 -> 0.8;
  // task 1: TP 1 FN 1 -> 2/3. Micro: TP 3 FP 1 FN 1 -> 0.75; macro (0.8 + 2/3) / 2.
  // ROC-AUC: task 0 scores [1, -2 | 0.3]: 1/2; task 1 [0.5, 0.2 | -1]: 1. Mean 0.75.
  const std::vector<float> logits = {1, -1, -2, 0.5f, 0.3f, 0.2f};
  const std::vector<uint32_t> labels = {0, 0, 0}, bits = {0b01, 0b11, 0b10};
  const std::vector<uint8_t> split = {kSplitValid, kSplitValid, kSplitValid};
  for (const bool one_call : {true, false}) {
    SplitScorer sc(2, 2);
    if (one_call) {
      sc.Add(logits.data(), 3, labels.data(), bits.data(), split.data());
    } else {  // in another order and grouping: the same figures
      sc.Add(logits.data() + 4, 1, labels.data() + 2, bits.data() + 2, split.data() + 2);
      sc.Add(logits.data(), 2, labels.data(), bits.data(), split.data());
    }
    const Accuracy a = sc.Summary();
    EXPECT_EQ(a.label_tasks, 2u);
    EXPECT_DOUBLE_EQ(a.valid, 0.75);
    EXPECT_TRUE(std::isnan(a.train));
    EXPECT_TRUE(std::isnan(a.test));
    const MultiLabelMetrics& m = a.multi_label[1];
    EXPECT_DOUBLE_EQ(m.micro_f1, 0.75);
    EXPECT_DOUBLE_EQ(m.macro_f1, 0.75);
    EXPECT_DOUBLE_EQ(m.topk_micro_f1, 0.75);
    EXPECT_DOUBLE_EQ(m.topk_macro_f1, (0.8 + 2.0 / 3.0) / 2);
    EXPECT_DOUBLE_EQ(m.roc_auc, 0.75);
    EXPECT_TRUE(std::isnan(a.multi_label[0].micro_f1));
  }
  EXPECT_EQ(SplitScorer::PlannedBytes(1031, 4125, 39), (1031 + 4125) * 39 * 5u);
}

// The memory plan counts a multi-label batch's task bits: the same shards read as 40 tasks need
// ceil(40 / 32) = 2 words more per batch node than as one class id, in every batch in flight.
TEST(MultiLabelMemory, PlanCountsTheBatchTaskBits) {
  Manifest m;
  m.num_nodes = 1000;
  m.num_edges = 4000;
  m.num_parts = 10;
  m.feat_dim = 8;
  m.num_classes = 40;
  m.num_train = m.num_valid = m.num_test = 300;
  for (uint32_t c = 0; c < 10; ++c) {
    ShardInfo s;
    s.num_nodes = 100;
    s.intra_entries = 600;
    s.inter_entries = 200;
    s.raw_bytes = 100 * (8 * 4 + 4 + 4 + 1 + 4) + 800 * 4;
    s.file_size = s.raw_bytes;
    m.shards.push_back(s);
  }
  TrainOptions o;
  o.clusters_per_batch = 2;
  o.mem_budget = uint64_t{1} << 30;
  Result<MemoryPlan> single = PlanMemory(m, o, 1);
  m.label_tasks = 40;
  Result<MemoryPlan> multi = PlanMemory(m, o, 1);
  ASSERT_TRUE(single.ok() && multi.ok()) << single.status().ToString() << multi.status().ToString();
  EXPECT_EQ(multi->batch_bytes - single->batch_bytes, 200u * 2 * 4);  // 2 clusters of 100 nodes, 2 words each
}

TEST(Metrics, SplitScorerMultiClassAccuracy) {
  // Arg-max (first maximum on a tie): 1, 0, 2, 0.
  const std::vector<float> logits = {0, 1, 0, 5, 1, 1, 0, 0, 3, 2, 2, 1};
  const std::vector<uint32_t> labels = {1, 1, 2, kNoLabel};
  const std::vector<uint8_t> split = {kSplitTrain, kSplitTrain, kSplitTest, 0};
  SplitScorer sc(3, 0);
  sc.Add(logits.data(), 4, labels.data(), nullptr, split.data());
  const Accuracy a = sc.Summary();
  EXPECT_DOUBLE_EQ(a.train, 0.5);
  EXPECT_DOUBLE_EQ(a.test, 1.0);
  EXPECT_TRUE(std::isnan(a.valid));
  EXPECT_EQ(a.label_tasks, 0u);
  EXPECT_TRUE(std::isnan(a.multi_label[2].micro_f1));
}

// Through cgcn-preprocess's code: the manifest records the label kind, the shards the bits of
// every node by its original id.
TEST(MultiLabelPreprocess, ManifestAndShardsCarryTheTasks) {
  TempDir tmp;
  const std::vector<uint32_t> rows = {0b101, 0b000, 0b010, 0, 0b111, 0b100};
  const std::string dir = TinyWithLabels(tmp, "1,0,1\n0,0,0\n0,1,0\nnan\n1,1,1\n0,0,1\n");
  PreprocessOptions po;
  po.read.dir = dir;
  po.write.out_dir = tmp.Join("out");
  po.parts = 2;
  Result<PreprocessReport> r = Preprocess(po);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<ShardDirectory> d = ShardDirectory::Open(tmp.Join("out"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->manifest().version, 3u);
  EXPECT_EQ(d->manifest().label_tasks, 3u);
  EXPECT_EQ(d->manifest().num_classes, 3u);
  EXPECT_EQ(d->manifest().feature_source.kind, FeatureSourceKind::kFile);
  ShardDecoder dec;
  uint32_t seen = 0;
  for (uint32_t c = 0; c < 2; ++c) {
    ClusterData cd;
    ASSERT_TRUE(d->Load(c, kAllSections, dec, cd).ok());
    for (uint32_t i = 0; i < cd.num_nodes; ++i, ++seen) {
      EXPECT_EQ(cd.label_bits[i], rows[cd.node_ids[i]]) << "node " << cd.node_ids[i];
      EXPECT_EQ(cd.labels[i], cd.node_ids[i] == 3 ? kNoLabel : 0u);
    }
  }
  EXPECT_EQ(seen, 6u);
}

}  // namespace
}  // namespace cgcn
