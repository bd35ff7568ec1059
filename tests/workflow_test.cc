// The training workflow: feature normalization chosen from the data, validation loss, model
// selection and --patience, learning-rate schedules, --grad-clip, --inductive batches and
// cgcn-predict; each against an independent reference (naive statistics, a dense full-graph
// forward pass, a naive training subgraph) or a known answer.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "cgcn/batch.h"
#include "cgcn/checkpoint.h"
#include "cgcn/evaluate.h"
#include "cgcn/feature_norm.h"
#include "cgcn/lr_schedule.h"
#include "cgcn/memory_plan.h"
#include "cgcn/model_file.h"
#include "cgcn/plot.h"
#include "cgcn/predict.h"
#include "cgcn/shard_directory.h"
#include "cgcn/split.h"
#include "cgcn/train.h"
#include "cgcn/train_run.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "testutil/tool_runner.h"

namespace cgcn {
namespace {

using testutil::RawDatasetSpec;
using testutil::TempDir;

// A random dataset whose features are dense and signed (standardization's case).
RawDatasetSpec DenseSignedDataset(uint32_t n, uint64_t seed) {
  RawDatasetSpec s = testutil::RandomRawDataset(n, 5 * n, 6, 3, seed);
  for (uint32_t v = 0; v < n; ++v)
    for (size_t f = 0; f < s.features[v].size(); ++f) s.features[v][f] = s.features[v][f] * 3.0f - 1.5f + float(f);
  return s;
}

// A sparse bag-of-words dataset: 40 binary features, at most two set per node.
RawDatasetSpec SparseDataset(uint32_t n, uint64_t seed) {
  RawDatasetSpec s = testutil::RandomRawDataset(n, 5 * n, 40, 4, seed);
  for (uint32_t v = 0; v < n; ++v) {
    std::fill(s.features[v].begin(), s.features[v].end(), 0.0f);
    s.features[v][s.labels[v] * 10 + v % 7] = 1.0f;
    if (v % 3 == 0) s.features[v][(v * 13) % 40] = 1.0f;
  }
  return s;
}

ShardDirectory Open(const std::string& dir) {
  Result<ShardDirectory> d = ShardDirectory::Open(dir);
  if (!d.ok()) throw std::runtime_error(d.status().ToString());
  return std::move(d).value();
}

// Per-feature mean and population standard deviation, naively, over `nodes`.
std::pair<std::vector<double>, std::vector<double>> NaiveStats(const RawDatasetSpec& s,
                                                               const std::vector<uint32_t>& nodes) {
  const size_t F = s.features[0].size();
  std::vector<double> mean(F, 0), sd(F, 0);
  for (uint32_t v : nodes)
    for (size_t f = 0; f < F; ++f) mean[f] += s.features[v][f];
  for (double& m : mean) m /= static_cast<double>(nodes.size());
  for (uint32_t v : nodes)
    for (size_t f = 0; f < F; ++f) sd[f] += (s.features[v][f] - mean[f]) * (s.features[v][f] - mean[f]);
  for (double& x : sd) x = std::sqrt(x / static_cast<double>(nodes.size()));
  return {mean, sd};
}

TEST(FeatureNormTest, StatisticsEqualANaivePassOverEveryNodeAndOverTrainingNodes) {
  TempDir tmp;
  const RawDatasetSpec spec = DenseSignedDataset(200, 5);
  testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 6);
  const ShardDirectory d = Open(tmp.Join("shards"));
  std::vector<uint32_t> all(spec.num_nodes);
  std::iota(all.begin(), all.end(), 0u);
  for (bool train_only : {false, true}) {
    Result<FeatureStats> st = ComputeFeatureStats(d, train_only);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    const auto [mean, sd] = NaiveStats(spec, train_only ? spec.train : all);
    EXPECT_EQ(st->rows, train_only ? spec.train.size() : spec.num_nodes);
    for (size_t f = 0; f < mean.size(); ++f) {
      EXPECT_NEAR(st->mean[f], mean[f], 1e-9) << f;
      EXPECT_NEAR(st->std[f], sd[f], 1e-6) << f;
    }
    EXPECT_LT(st->min, 0.0f);
  }
}

TEST(FeatureNormTest, AutoPicksRowForSparseNonNegativeAndStandardOtherwise) {
  TempDir tmp;
  testutil::BuildShards(SparseDataset(200, 3), tmp.Join("a"), tmp.Join("sparse"), 4);
  testutil::BuildShards(DenseSignedDataset(200, 3), tmp.Join("b"), tmp.Join("signed"), 4);
  RawDatasetSpec dense_pos = testutil::RandomRawDataset(200, 1000, 6, 3, 3);  // |noise|: non-negative, dense
  testutil::BuildShards(dense_pos, tmp.Join("c"), tmp.Join("dense"), 4);
  std::string why;
  Result<FeatureNorm> sparse = ResolveFeatureNorm(Open(tmp.Join("sparse")), FeatureNormMode::kAuto, false, &why);
  ASSERT_TRUE(sparse.ok());
  EXPECT_EQ(sparse->kind, FeatureNormKind::kRow);
  EXPECT_NE(why.find("auto: row"), std::string::npos) << why;
  Result<FeatureNorm> sgn = ResolveFeatureNorm(Open(tmp.Join("signed")), FeatureNormMode::kAuto, false, &why);
  ASSERT_TRUE(sgn.ok());
  EXPECT_EQ(sgn->kind, FeatureNormKind::kStandard);
  EXPECT_NE(why.find("signed"), std::string::npos) << why;
  Result<FeatureNorm> dense = ResolveFeatureNorm(Open(tmp.Join("dense")), FeatureNormMode::kAuto, false, &why);
  ASSERT_TRUE(dense.ok());
  EXPECT_EQ(dense->kind, FeatureNormKind::kStandard);
  EXPECT_NE(why.find("dense"), std::string::npos) << why;
  // Asked for explicitly, each is what was asked, whatever the data.
  EXPECT_EQ(ResolveFeatureNorm(Open(tmp.Join("signed")), FeatureNormMode::kRow, false)->kind, FeatureNormKind::kRow);
  EXPECT_EQ(ResolveFeatureNorm(Open(tmp.Join("sparse")), FeatureNormMode::kStandard, false)->kind,
            FeatureNormKind::kStandard);
  EXPECT_EQ(ResolveFeatureNorm(Open(tmp.Join("sparse")), FeatureNormMode::kNone, false)->kind, FeatureNormKind::kNone);
}

TEST(FeatureNormTest, StandardizationByHand) {
  FeatureNorm n;
  n.kind = FeatureNormKind::kStandard;
  n.mean = {1.0f, -2.0f};
  n.inv_std = {0.5f, 4.0f};
  std::vector<float> x = {3.0f, -2.0f, 1.0f, -1.5f};
  n.Apply(x.data(), 2, 2);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 0.0f, 0.0f, 2.0f}));
  EXPECT_FALSE(ParseFeatureNormMode("rows").ok());
  EXPECT_EQ(*ParseFeatureNormMode("standard"), FeatureNormMode::kStandard);
}

// Dense full-graph forward pass in double with the given normalization applied to the raw
// features: the logits of every node.
Eigen::MatrixXd DenseLogits(const RawDatasetSpec& spec, const Gcn& model, const FeatureNorm& norm) {
  const uint32_t n = spec.num_nodes;
  Eigen::MatrixXd a = Eigen::MatrixXd::Identity(n, n);
  for (auto [u, v] : testutil::NaiveEdgeSet(spec)) a(u, v) = a(v, u) = 1;
  const Eigen::VectorXd dinv = a.rowwise().sum().cwiseSqrt().cwiseInverse();
  a = dinv.asDiagonal() * a * dinv.asDiagonal();
  const auto F = static_cast<uint32_t>(spec.features[0].size());
  Eigen::MatrixXd h(n, F);
  for (uint32_t v = 0; v < n; ++v) {
    std::vector<float> row = spec.features[v];
    norm.Apply(row.data(), 1, F);
    for (uint32_t f = 0; f < F; ++f) h(v, f) = row[f];
  }
  for (uint32_t l = 0; l < model.config().layers; ++l) {
    h = a * (h * model.weight(l).cast<double>());
    h.rowwise() += model.bias(l).cast<double>();
    if (l + 1 < model.config().layers) h = h.cwiseMax(0.0);
  }
  return h;
}

double DenseLoss(const Eigen::MatrixXd& logits, const RawDatasetSpec& spec, const std::vector<uint32_t>& nodes) {
  double sum = 0;
  for (uint32_t v : nodes) {
    const double top = logits.row(v).maxCoeff();
    const double lse = top + std::log((logits.row(v).array() - top).exp().sum());
    sum += lse - logits(v, spec.labels[v]);
  }
  return sum / static_cast<double>(nodes.size());
}

TEST(EvaluationLoss, EqualsTheDenseReferenceOnEverySplitWithStandardizedFeatures) {
  TempDir tmp;
  const RawDatasetSpec spec = DenseSignedDataset(150, 9);
  testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 5);
  const ShardDirectory d = Open(tmp.Join("shards"));
  Result<FeatureNorm> norm = ResolveFeatureNorm(d, FeatureNormMode::kAuto, false);
  ASSERT_TRUE(norm.ok());
  ASSERT_EQ(norm->kind, FeatureNormKind::kStandard);
  Gcn model(GcnConfig{6, 8, 3, 2, 0.5f}, 21);
  model.bias(1).setLinSpaced(-0.2f, 0.2f);
  EvalOptions eo;
  eo.probabilities = true;
  std::vector<Prediction> preds;
  std::vector<float> probs;
  Result<Accuracy> acc = EvaluateFullGraph(d, model, *norm, &preds, {}, eo, nullptr, &probs);
  ASSERT_TRUE(acc.ok()) << acc.status().ToString();
  const Eigen::MatrixXd ref = DenseLogits(spec, model, *norm);
  EXPECT_NEAR(acc->train_loss, DenseLoss(ref, spec, spec.train), 1e-4);
  EXPECT_NEAR(acc->valid_loss, DenseLoss(ref, spec, spec.valid), 1e-4);
  EXPECT_NEAR(acc->test_loss, DenseLoss(ref, spec, spec.test), 1e-4);
  EXPECT_EQ(acc->labeled_nodes, spec.num_nodes);
  // Probabilities: the dense softmax, row by row, in the predictions' order.
  ASSERT_EQ(probs.size(), preds.size() * 3);
  for (size_t i = 0; i < preds.size(); ++i) {
    const uint32_t v = preds[i].node_id;
    const Eigen::RowVectorXd e = (ref.row(v).array() - ref.row(v).maxCoeff()).exp();
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(probs[i * 3 + k], e(k) / e.sum(), 1e-5) << v;
  }
}

// --- Model selection and early stopping.

class TrainFlow : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = testutil::RandomRawDataset(400, 2000, 8, 4, 17);
    testutil::BuildShards(spec_, tmp_.path(), tmp_.Join("shards"), 8);
  }
  TrainOptions Options() const {
    TrainOptions o;
    o.epochs = 30;
    o.clusters_per_batch = 2;
    o.hidden = 16;
    o.lr = 0.02f;
    o.eval_every = 1;
    o.patience = 0;  // the tests that stop early say so
    return o;
  }
  // Trains a fresh model; its parameters go to *params.
  Result<TrainReport> Run(const TrainOptions& o, std::vector<float>* params = nullptr) {
    ShardDirectory d = Open(tmp_.Join("shards"));
    Gcn model(ModelConfig(d.manifest(), o), o.seed);
    Result<TrainReport> r = Train(d, o, model);
    if (params) params->assign(model.params().begin(), model.params().end());
    return r;
  }
  TempDir tmp_;
  RawDatasetSpec spec_;
};

// The index of the best evaluation: highest validation accuracy, then lowest validation loss,
// then the earliest.
size_t BestOf(const std::vector<EpochRecord>& epochs) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < epochs.size(); ++i) {
    if (!epochs[i].evaluated) continue;
    if (best == SIZE_MAX || epochs[i].acc.valid > epochs[best].acc.valid ||
        (epochs[i].acc.valid == epochs[best].acc.valid && epochs[i].acc.valid_loss < epochs[best].acc.valid_loss))
      best = i;
  }
  return best;
}

TEST_F(TrainFlow, ReturnsTheBestValidationEpochsModel) {
  TrainOptions o = Options();
  o.lr = 0.05f;  // high enough that the validation accuracy moves after its best
  std::vector<float> params;
  Result<TrainReport> r = Run(o, &params);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->epochs.size(), 30u);
  const size_t best = BestOf(r->epochs);
  ASSERT_NE(best, SIZE_MAX);
  EXPECT_EQ(r->final_epoch, r->epochs[best].epoch);
  EXPECT_EQ(r->best_epoch, r->epochs[best].epoch);
  EXPECT_EQ(r->selected, r->epochs[best].epoch != 30);
  EXPECT_EQ(r->final_acc.valid, r->epochs[best].acc.valid);
  EXPECT_EQ(r->final_acc.test, r->epochs[best].acc.test);
  EXPECT_EQ(r->final_acc.valid_loss, r->epochs[best].acc.valid_loss);
  // The returned parameters are that epoch's: evaluating them again gives its figures.
  ShardDirectory d = Open(tmp_.Join("shards"));
  Gcn model(ModelConfig(d.manifest(), o), 0);
  std::copy(params.begin(), params.end(), model.params().begin());
  Result<Accuracy> again = EvaluateFullGraph(d, model, r->feature_norm);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->valid, r->epochs[best].acc.valid);
  EXPECT_EQ(again->valid_loss, r->epochs[best].acc.valid_loss);
  // Without --eval-every nothing is selected: the last epoch's model.
  o.eval_every = 0;
  Result<TrainReport> plain = Run(o);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->selected);
  EXPECT_EQ(plain->final_epoch, 30u);
  EXPECT_EQ(plain->final_acc.valid, r->epochs.back().acc.valid);
}

// The epoch of the last evaluation that made progress as --patience counts it: a better
// validation metric or a lower validation loss than every evaluation before it.
uint32_t LastProgress(const std::vector<EpochRecord>& epochs) {
  double best = -1, lowest = std::numeric_limits<double>::infinity();
  uint32_t last = 0;
  for (const EpochRecord& e : epochs) {
    if (!e.evaluated) continue;
    if (e.acc.valid > best || e.acc.valid_loss < lowest) last = e.epoch;
    best = std::max(best, e.acc.valid);
    lowest = std::min(lowest, e.acc.valid_loss);
  }
  return last;
}

TEST_F(TrainFlow, PatienceStopsAfterThatManyEvaluationsWithoutProgress) {
  TrainOptions o = Options();
  o.epochs = 200;
  o.eval_every = 2;
  o.patience = 3;
  o.lr = 0.05f;  // overfits soon: the validation loss turns up
  Result<TrainReport> r = Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->stopped_early);
  ASSERT_LT(r->epochs.size(), 200u);
  EXPECT_EQ(r->trained_through, r->epochs.back().epoch);
  // The stop came exactly 3 evaluations (6 epochs) after the last one with a better validation
  // accuracy or a lower validation loss, and none of those 3 had either.
  EXPECT_EQ(r->trained_through, LastProgress(r->epochs) + 6);
  EXPECT_GE(LastProgress(r->epochs), r->best_epoch);
  const size_t best = BestOf(r->epochs);
  EXPECT_EQ(r->epochs[best].epoch, r->best_epoch);
  EXPECT_EQ(r->final_epoch, r->best_epoch);
  EXPECT_EQ(r->final_acc.valid, r->epochs[best].acc.valid);
}

// The defaults select and stop early (--eval-every 5, --patience 10); --eval-every 0 turns both
// off, whatever --patience says (the CLI refuses an explicit --patience with it).
TEST_F(TrainFlow, DefaultsSelectAndStopEarlyAndEvalEveryZeroTurnsBothOff) {
  const TrainOptions defaults;
  EXPECT_EQ(defaults.eval_every, 5u);
  EXPECT_EQ(defaults.patience, 10u);
  TrainOptions o = Options();
  o.eval_every = 0;
  o.patience = 2;
  o.epochs = 12;
  ASSERT_TRUE(o.Validate(8).ok());
  Result<TrainReport> r = Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->stopped_early);
  EXPECT_FALSE(r->selected);
  EXPECT_EQ(r->trained_through, 12u);
  EXPECT_EQ(r->final_epoch, 12u);
  for (const EpochRecord& e : r->epochs) EXPECT_EQ(e.evaluated, e.epoch == 12u);
}

// Shards without validation nodes: nothing to select on or stop by. The run trains every epoch,
// returns the last epoch's model and says why; plateau, which follows the validation loss, is refused.
TEST(TrainFlowNoValid, NoValidationNodesMeansNoSelectionNoEarlyStopAndANote) {
  TempDir tmp;
  RawDatasetSpec spec = testutil::RandomRawDataset(400, 2000, 8, 4, 17);
  spec.test.insert(spec.test.end(), spec.valid.begin(), spec.valid.end());
  std::sort(spec.test.begin(), spec.test.end());
  spec.valid.clear();
  testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 8);
  ShardDirectory d = Open(tmp.Join("shards"));
  ASSERT_EQ(d.manifest().num_valid, 0u);
  TrainOptions o;  // the defaults: --eval-every 5 --patience 10
  o.epochs = 60;
  o.hidden = 16;
  o.lr = 0.05f;
  Gcn model(ModelConfig(d.manifest(), o), 0);
  Result<TrainReport> r = Train(d, o, model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->stopped_early);
  EXPECT_FALSE(r->selected);
  EXPECT_EQ(r->trained_through, 60u);
  EXPECT_EQ(r->final_epoch, 60u);
  EXPECT_EQ(r->selection_note,
            "the shards have no validation nodes: no model selection and no early stopping; the model is the last "
            "epoch's");
  EXPECT_GT(r->final_acc.test, 0.0);
  o.lr_schedule = LrSchedule::kPlateau;
  Gcn again(ModelConfig(d.manifest(), o), 0);
  EXPECT_EQ(Train(d, o, again).status().message(),
            "--lr-schedule plateau follows the validation loss, but the shards have no validation nodes");
}

TEST_F(TrainFlow, OptionsOfTheWorkflowAreCheckedAsSentences) {
  TrainOptions o = Options();
  o.eval_every = 0;
  o.lr_schedule = LrSchedule::kPlateau;
  EXPECT_EQ(o.Validate(8).message(), "--lr-schedule plateau follows the validation loss: set --eval-every N");
  o = Options();
  o.lr_gamma = 1.5f;
  EXPECT_EQ(o.Validate(8).message(), "--lr-gamma must be greater than 0 and at most 1, found 1.5");
  o = Options();
  o.grad_clip = -1;
  EXPECT_FALSE(o.Validate(8).ok());
}

// --- Learning-rate schedules.

TEST(LrScheduleTest, KnownValues) {
  LrScheduleOptions so;
  so.base_lr = 0.1f;
  so.epochs = 10;
  so.kind = LrSchedule::kStep;
  so.step_size = 3;
  so.gamma = 0.5f;
  LrScheduler step(so);
  EXPECT_FLOAT_EQ(step.ForEpoch(1), 0.1f);
  EXPECT_FLOAT_EQ(step.ForEpoch(3), 0.1f);
  EXPECT_FLOAT_EQ(step.ForEpoch(4), 0.05f);
  EXPECT_FLOAT_EQ(step.ForEpoch(7), 0.025f);
  so.kind = LrSchedule::kCosine;
  LrScheduler cosine(so);
  EXPECT_FLOAT_EQ(cosine.ForEpoch(1), 0.1f);
  EXPECT_FLOAT_EQ(cosine.ForEpoch(6), 0.05f);  // half way: (1 + cos(pi/2)) / 2
  EXPECT_NEAR(cosine.ForEpoch(10), 0.1 * 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-8);
  so.kind = LrSchedule::kPlateau;
  so.patience = 2;
  LrScheduler plateau(so);
  // Improves, then 3 evaluations without: the third (more than 2) halves the rate.
  for (double loss : {1.0, 0.9, 0.95, 0.9, 0.91}) plateau.OnEvaluation(loss);
  EXPECT_FLOAT_EQ(plateau.ForEpoch(99), 0.05f);
  plateau.OnEvaluation(std::nan(""));  // an empty validation split changes nothing
  EXPECT_EQ(plateau.state().bad, 0u);
  plateau.OnEvaluation(0.5);
  EXPECT_FLOAT_EQ(plateau.ForEpoch(1), 0.05f);
  EXPECT_EQ(plateau.state().best, 0.5);
}

TEST_F(TrainFlow, EpochsTrainWithTheScheduledRate) {
  TrainOptions o = Options();
  o.epochs = 8;
  o.lr_schedule = LrSchedule::kStep;
  o.lr_step_size = 3;
  o.lr_gamma = 0.1f;
  Result<TrainReport> r = Run(o);
  ASSERT_TRUE(r.ok());
  for (const EpochRecord& e : r->epochs)
    EXPECT_FLOAT_EQ(e.lr, 0.02f * std::pow(0.1f, static_cast<float>((e.epoch - 1) / 3))) << e.epoch;
  // A different schedule trains differently from the first reduction on.
  TrainOptions none = o;
  none.lr_schedule = LrSchedule::kNone;
  Result<TrainReport> rn = Run(none);
  ASSERT_TRUE(rn.ok());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(r->epochs[i].loss, rn->epochs[i].loss);
  EXPECT_NE(r->epochs[4].loss, rn->epochs[4].loss);
}

TEST_F(TrainFlow, GradientClippingBoundsTheSteps) {
  // Adam's step does not depend on the gradient's scale, except through its epsilon (1e-8): a
  // gradient clipped to a norm of 1e-12 moves the parameters by about lr x 1e-4 at most.
  TrainOptions o = Options();
  o.epochs = 1;
  o.eval_every = 0;
  o.weight_decay = 0;
  o.grad_clip = 1e-12f;
  ShardDirectory d = Open(tmp_.Join("shards"));
  Gcn start(ModelConfig(d.manifest(), o), o.seed);
  const GcnConfig cfg = ModelConfig(d.manifest(), o);
  Gcn clipped(cfg, o.seed), free(cfg, o.seed);
  ASSERT_TRUE(Train(d, o, clipped).ok());
  o.grad_clip = 0;
  ASSERT_TRUE(Train(d, o, free).ok());
  float moved_clipped = 0, moved_free = 0;
  for (size_t i = 0; i < start.params().size(); ++i) {
    moved_clipped = std::max(moved_clipped, std::abs(clipped.params()[i] - start.params()[i]));
    moved_free = std::max(moved_free, std::abs(free.params()[i] - start.params()[i]));
  }
  EXPECT_LT(moved_clipped, 4 * 0.02f * 1e-3f);
  EXPECT_GT(moved_free, 0.02f);
  // A bound above every gradient's norm changes nothing.
  o.grad_clip = 1e6f;
  Gcn loose(cfg, o.seed);
  ASSERT_TRUE(Train(d, o, loose).ok());
  EXPECT_TRUE(std::equal(loose.params().begin(), loose.params().end(), free.params().begin()));
}

// Resuming stays exact with the plateau schedule and model selection: their state is in the
// checkpoint. Different schedule options are refused.
TEST_F(TrainFlow, ResumeWithPlateauAndSelectionIsExact) {
  TrainOptions o = Options();
  o.epochs = 16;
  o.lr = 0.05f;
  o.lr_schedule = LrSchedule::kPlateau;
  o.lr_patience = 1;
  o.lr_gamma = 0.5f;
  o.grad_clip = 0.5f;
  std::vector<float> whole;
  Result<TrainReport> full = Run(o, &whole);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  ASSERT_LT(full->epochs.back().lr, o.lr) << "the plateau schedule never reduced the rate: a weak test";

  TrainOptions first = o;
  first.checkpoint_dir = tmp_.Join("ckpt");
  first.epochs = 7;
  ASSERT_TRUE(Run(first).ok());
  TrainOptions second = first;
  second.epochs = 16;
  second.resume = true;
  std::vector<float> resumed;
  Result<TrainReport> rest = Run(second, &resumed);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  ASSERT_EQ(rest->epochs.size(), 9u);
  for (size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(rest->epochs[i].loss, full->epochs[7 + i].loss) << i;
    EXPECT_EQ(rest->epochs[i].lr, full->epochs[7 + i].lr) << i;
  }
  EXPECT_EQ(rest->final_epoch, full->final_epoch);
  EXPECT_EQ(rest->final_acc.valid, full->final_acc.valid);
  EXPECT_EQ(resumed, whole);

  TrainOptions other = second;
  other.lr_schedule = LrSchedule::kStep;
  Result<TrainReport> refused = Run(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("written for different options"), std::string::npos);
}

// --- Inductive batches.

TEST(InductiveBatch, HoldsTheTrainingSubgraphOfItsClusters) {
  TempDir tmp;
  const RawDatasetSpec spec = testutil::RandomRawDataset(300, 1500, 5, 3, 23);
  testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 6);
  const ShardDirectory d = Open(tmp.Join("shards"));
  const std::set<uint32_t> train(spec.train.begin(), spec.train.end());
  const auto edges = testutil::NaiveEdgeSet(spec);
  for (std::vector<uint32_t> ids :
       {std::vector<uint32_t>{0, 2, 5}, std::vector<uint32_t>{1}, std::vector<uint32_t>{3, 4}}) {
    std::vector<ClusterData> data(ids.size());
    std::vector<ClusterView> ptrs;
    ShardDecoder dec;
    std::set<uint32_t> members;
    for (size_t k = 0; k < ids.size(); ++k) {
      ASSERT_TRUE(d.Load(ids[k], kAllSections, dec, data[k]).ok());
      ptrs.push_back(data[k]);
      members.insert(data[k].node_ids.begin(), data[k].node_ids.end());
    }
    Batch b;
    AssembleBatch(ptrs, FeatureNorm::None(), b, false, /*train_only=*/true);
    // Naive: the clusters' training nodes, and the raw edges with both ends among them.
    std::set<uint32_t> want_nodes;
    for (uint32_t v : members)
      if (train.count(v)) want_nodes.insert(v);
    std::map<uint32_t, uint32_t> deg;
    std::set<std::pair<uint32_t, uint32_t>> want_edges;
    for (auto [u, v] : edges)
      if (want_nodes.count(u) && want_nodes.count(v)) {
        want_edges.emplace(u, v);
        ++deg[u];
        ++deg[v];
      }
    ASSERT_EQ(b.num_nodes, want_nodes.size());
    EXPECT_EQ(b.num_train, b.num_nodes);
    EXPECT_EQ(std::set<uint32_t>(b.node_ids.begin(), b.node_ids.end()), want_nodes);
    std::set<std::pair<uint32_t, uint32_t>> got_edges;
    for (uint32_t i = 0; i < b.num_nodes; ++i) {
      const uint32_t u = b.node_ids[i];
      EXPECT_EQ(b.train_mask[i], 1);
      EXPECT_FLOAT_EQ(b.self_weights[i], 1.0f / float(deg[u] + 1));
      for (uint32_t e = b.offsets[i]; e < b.offsets[i + 1]; ++e) {
        const uint32_t v = b.node_ids[b.columns[e]];
        got_edges.emplace(std::min(u, v), std::max(u, v));
        EXPECT_FLOAT_EQ(b.weights[e], 1.0f / std::sqrt(float(deg[u] + 1) * float(deg[v] + 1)));
      }
      // Features and labels moved with their node.
      EXPECT_EQ(b.labels[i], spec.labels[u]);
      for (uint32_t f = 0; f < 5; ++f) EXPECT_EQ(b.features[uint64_t{i} * 5 + f], spec.features[u][f]);
    }
    EXPECT_EQ(got_edges, want_edges);
  }
}

TEST_F(TrainFlow, InductiveTrainingSeesOnlyTrainingNodesAndEvaluatesTheFullGraph) {
  TrainOptions o = Options();
  o.epochs = 10;
  o.eval_every = 0;
  o.inductive = true;
  Result<TrainReport> r = Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  uint64_t nodes = 0;
  for (const EpochRecord& e : r->epochs) nodes += e.stats.batch_nodes;
  EXPECT_EQ(nodes, uint64_t{10} * spec_.train.size());  // every epoch: the training nodes, once
  EXPECT_GT(r->final_acc.test, 0.5);                    // 4 classes; evaluated on the full graph
  TrainOptions t = o;
  t.inductive = false;
  Result<TrainReport> rt = Run(t);
  ASSERT_TRUE(rt.ok());
  uint64_t all = 0;
  for (const EpochRecord& e : rt->epochs) all += e.stats.batch_nodes;
  EXPECT_EQ(all, uint64_t{10} * spec_.num_nodes);
}

// --- cgcn-predict.

TEST_F(TrainFlow, PredictOnTheTrainingShardsGivesTrainingsPredictionsByteForByte) {
  TrainOptions o = Options();
  o.epochs = 6;
  o.hidden = 64;
  o.layers = 3;  // a 64 -> 64 layer: its activations are what spills below
  ShardDirectory d = Open(tmp_.Join("shards"));
  Gcn model(ModelConfig(d.manifest(), o), 0);
  o.predict = true;
  Result<TrainReport> r = Train(d, o, model);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(WritePredictions(tmp_.Join("train.csv"), r->predictions).ok());
  ASSERT_TRUE(SaveModel(tmp_.Join("m.cgcn"), model, r->feature_norm).ok());
  PredictOptions p;
  p.model_path = tmp_.Join("m.cgcn");
  p.shards_dir = tmp_.Join("shards");
  p.out = tmp_.Join("pred.csv");
  Result<PredictReport> pr = RunPredict(p);
  ASSERT_TRUE(pr.ok()) << pr.status().ToString();
  EXPECT_EQ(testutil::ReadFile(p.out), testutil::ReadFile(tmp_.Join("train.csv")));
  EXPECT_EQ(pr->acc.valid, r->final_acc.valid);
  EXPECT_EQ(pr->acc.test, r->final_acc.test);
  // With the least budget that works (activations spilled): the same file.
  // (One thread; activations of 2 x 400 x 64 floats, more than the least chunk of 64 KiB. Layer 0
  // aggregates its narrower input first, so only the 64 -> 64 layer stores 64 floats a node.)
  Result<EvalPlan> need = PlanEvaluation(d.manifest(), model.config(), EvalOptions{uint64_t{1} << 40, ""}, true, 1);
  ASSERT_TRUE(need.ok());
  p.mem_budget = ProcessRuntimeBytes() + Gcn::PlannedBytes(model.config()) + need->min_bytes;
  p.threads = 1;
  p.out = tmp_.Join("pred-budget.csv");
  Result<PredictReport> tight = RunPredict(p);
  ASSERT_TRUE(tight.ok()) << tight.status().ToString();
  EXPECT_TRUE(tight->eval.plan.spill);
  EXPECT_EQ(testutil::ReadFile(p.out), testutil::ReadFile(tmp_.Join("train.csv")));
  // Below what one cluster needs: refused before anything is written.
  p.mem_budget = ProcessRuntimeBytes() + Gcn::PlannedBytes(model.config()) + need->min_bytes / 2;
  p.out = tmp_.Join("pred-refused.csv");
  Result<PredictReport> refused = RunPredict(p);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("evaluation cannot fit in"), std::string::npos)
      << refused.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(p.out));
}

TEST_F(TrainFlow, PredictOnANewGraphWithUnlabeledNodes) {
  TrainOptions o = Options();
  o.epochs = 10;
  ShardDirectory d = Open(tmp_.Join("shards"));
  Gcn model(ModelConfig(d.manifest(), o), 0);
  Result<TrainReport> r = Train(d, o, model);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(SaveModel(tmp_.Join("m.cgcn"), model, r->feature_norm).ok());
  // Another graph of the same kind (same feature width), a third of its nodes unlabeled and in
  // no split.
  RawDatasetSpec other = testutil::RandomRawDataset(250, 1200, 8, 4, 99);
  std::vector<uint32_t> train, valid, test;
  uint32_t labeled = 0;
  for (uint32_t v = 0; v < other.num_nodes; ++v) {
    if (v % 3 == 2) {
      other.labels[v] = kNoLabel;
      continue;
    }
    ++labeled;
    (v % 3 == 0 ? test : valid).push_back(v);
  }
  other.train = {0};
  other.test = test;
  other.valid = valid;
  other.valid.erase(std::remove(other.valid.begin(), other.valid.end(), 0u), other.valid.end());
  other.test.erase(std::remove(other.test.begin(), other.test.end(), 0u), other.test.end());
  testutil::BuildShards(other, tmp_.Join("other-raw"), tmp_.Join("other"), 5);
  PredictOptions p;
  p.model_path = tmp_.Join("m.cgcn");
  p.shards_dir = tmp_.Join("other");
  p.out = tmp_.Join("other.csv");
  p.probabilities = true;
  Result<PredictReport> pr = RunPredict(p);
  ASSERT_TRUE(pr.ok()) << pr.status().ToString();
  EXPECT_EQ(pr->num_nodes, 250u);
  EXPECT_EQ(pr->acc.labeled_nodes, labeled);
  EXPECT_GT(pr->acc.labeled, 0.5);
  // The dense reference on the new graph, with the training graph's normalization.
  const Eigen::MatrixXd ref = DenseLogits(other, model, r->feature_norm);
  std::istringstream csv(testutil::ReadFile(p.out));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "node_id,label,p0,p1,p2,p3");
  uint32_t rows = 0, correct = 0;
  while (std::getline(csv, line)) {
    std::vector<double> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(std::stod(x));
    ASSERT_EQ(f.size(), 6u);
    const auto v = static_cast<uint32_t>(f[0]);
    EXPECT_EQ(v, rows++);
    Eigen::Index arg;
    ref.row(v).maxCoeff(&arg);
    EXPECT_EQ(f[1], static_cast<double>(arg)) << v;
    EXPECT_NEAR(f[2] + f[3] + f[4] + f[5], 1.0, 1e-5);
    if (other.labels[v] != kNoLabel) correct += static_cast<uint32_t>(arg) == other.labels[v];
  }
  EXPECT_EQ(rows, 250u);
  EXPECT_DOUBLE_EQ(pr->acc.labeled, static_cast<double>(correct) / labeled);
}

TEST_F(TrainFlow, PredictRefusesBeforeAnyWork) {
  TrainOptions o = Options();
  o.epochs = 1;
  ShardDirectory d = Open(tmp_.Join("shards"));
  Gcn model(ModelConfig(d.manifest(), o), 0);
  ASSERT_TRUE(SaveModel(tmp_.Join("m.cgcn"), model, FeatureNorm::Row()).ok());
  PredictOptions p;
  p.model_path = tmp_.Join("m.cgcn");
  p.shards_dir = tmp_.Join("shards");
  // Someone's file.
  testutil::WriteFile(tmp_.Join("notes.csv"), "id,comment\n1,keep me\n");
  p.out = tmp_.Join("notes.csv");
  Result<PredictReport> r = RunPredict(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--out " + p.out +
                                      ": exists and is not a predictions file cgcn wrote (its first line is "
                                      "'id,comment', expected 'node_id,label...'); remove it or choose another path");
  EXPECT_EQ(testutil::ReadFile(p.out), "id,comment\n1,keep me\n");
  // Inside the shard directory.
  p.out = tmp_.Join("shards/pred.csv");
  EXPECT_FALSE(RunPredict(p).ok());
  EXPECT_FALSE(std::filesystem::exists(p.out));
  // Another feature width.
  testutil::BuildShards(testutil::RandomRawDataset(100, 400, 5, 4, 1), tmp_.Join("w-raw"), tmp_.Join("w"), 2);
  p.out = tmp_.Join("pred.csv");
  p.shards_dir = tmp_.Join("w");
  r = RunPredict(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            p.model_path + ": the model takes 8 features per node, the shards in " + p.shards_dir + " hold 5");
  EXPECT_FALSE(std::filesystem::exists(p.out));
}

TEST(PredictTool, RunsAndReportsJson) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("raw"));
  ASSERT_EQ(
      testutil::RunTool("cgcn-preprocess",
                        {"--input", tmp.Join("raw"), "--out", tmp.Join("s"), "--parts", "2", "--quiet"}, tmp.path())
          .exit_code,
      0);
  const testutil::ToolRun t =
      testutil::RunTool("cgcn-train",
                        {"--shards", tmp.Join("s"), "--epochs", "3", "--hidden", "4", "--save-model", tmp.Join("m"),
                         "--predict-out", tmp.Join("t.csv"), "--quiet"},
                        tmp.path());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const testutil::ToolRun p = testutil::RunTool(
      "cgcn-predict", {"--model", tmp.Join("m"), "--shards", tmp.Join("s"), "--out", tmp.Join("p.csv"), "--quiet"},
      tmp.path());
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(testutil::ReadFile(tmp.Join("p.csv")), testutil::ReadFile(tmp.Join("t.csv")));
  const auto j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j["nodes"], 6);
  EXPECT_EQ(j["feature_norm"], "standard");
  EXPECT_EQ(j["labeled_nodes"], 6);
  const testutil::ToolRun bad = testutil::RunTool(
      "cgcn-predict", {"--model", tmp.Join("m"), "--shards", tmp.Join("s"), "--probabilities"}, tmp.path());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "cgcn-predict: error: invalid argument: --probabilities needs --out FILE\n");
}

// --- --runs and --plot-out.

TEST_F(TrainFlow, RunsTrainEachSeedAndReportMeanAndStd) {
  TrainRunOptions ro;
  ro.shards_dir = tmp_.Join("shards");
  ro.train = Options();
  ro.train.epochs = 8;
  ro.train.eval_every = 2;
  ro.train.seed = 5;
  ro.runs = 3;
  ro.save_model = tmp_.Join("m.cgcn");
  ro.predict_out = tmp_.Join("p.csv");
  ro.metrics_out = tmp_.Join("m.jsonl");
  Result<TrainRunReport> r = RunTraining(ro);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->runs.size(), 3u);
  // Each run is the single run with its seed.
  std::vector<double> test;
  double best_valid = -1;
  uint32_t best_run = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    TrainOptions o = ro.train;
    o.seed = 5 + i;
    Result<TrainReport> single = Run(o);
    ASSERT_TRUE(single.ok());
    EXPECT_EQ(r->runs[i].seed, 5u + i);
    EXPECT_EQ(r->runs[i].acc.test, single->final_acc.test) << i;
    EXPECT_EQ(r->runs[i].acc.valid, single->final_acc.valid) << i;
    EXPECT_EQ(r->runs[i].final_epoch, single->final_epoch) << i;
    test.push_back(single->final_acc.test);
    if (single->final_acc.valid > best_valid) best_valid = single->final_acc.valid, best_run = i;
  }
  EXPECT_EQ(r->selected_run, best_run);
  const double mean = (test[0] + test[1] + test[2]) / 3;
  double sq = 0;
  for (double t : test) sq += (t - mean) * (t - mean);
  const auto j = nlohmann::json::parse(r->summary_json);
  EXPECT_NEAR(j["test_acc_mean"].get<double>(), mean, 1e-12);
  EXPECT_NEAR(j["test_acc_std"].get<double>(), std::sqrt(sq / 2), 1e-12);
  ASSERT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][1]["seed"], 6);
  EXPECT_EQ(j["selected_run"], best_run);
  // The outputs are the selected run's: its model predicts its accuracy.
  PredictOptions p;
  p.model_path = ro.save_model;
  p.shards_dir = ro.shards_dir;
  Result<PredictReport> pr = RunPredict(p);
  ASSERT_TRUE(pr.ok());
  EXPECT_EQ(pr->acc.test, r->runs[best_run].acc.test);
  // Every run's epochs are in the metrics, tagged with the run.
  std::istringstream lines(testutil::ReadFile(ro.metrics_out));
  std::map<int, int> per_run;
  for (std::string line; std::getline(lines, line);) ++per_run[nlohmann::json::parse(line)["run"].get<int>()];
  EXPECT_EQ(per_run, (std::map<int, int>{{0, 8}, {1, 8}, {2, 8}}));
  // Not with a checkpoint.
  ro.train.checkpoint_dir = tmp_.Join("ckpt");
  Result<TrainRunReport> refused = RunTraining(ro);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "--runs 3 cannot be combined with --checkpoint (one checkpoint holds one run)");
}

TEST(MeanAndStdTest, KnownValues) {
  const MeanStd a = MeanAndStd({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(a.mean, 2.5);
  EXPECT_DOUBLE_EQ(a.std, std::sqrt(5.0 / 3.0));
  EXPECT_EQ(MeanAndStd({0.7}).std, 0.0);
  EXPECT_TRUE(std::isnan(MeanAndStd({std::nan("")}).mean));
}

// Well-formed XML in the sense an SVG viewer needs: one root, every element closed in order,
// attributes quoted, no stray '<' or bare '&' in text. Returns "" or what is wrong.
std::string XmlProblem(const std::string& x) {
  std::vector<std::string> open;
  size_t i = 0, roots = 0;
  static const std::regex attrs(R"((\s+[A-Za-z_:][-A-Za-z0-9_:.]*="[^"<]*")*\s*/?)");
  while (i < x.size()) {
    const size_t lt = x.find('<', i);
    const std::string text = x.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    for (size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1))
      if (!std::regex_search(text.substr(a), std::regex("^&(amp|lt|gt|quot|apos);"))) return "bare & in text";
    if (lt == std::string::npos) break;
    const size_t gt = x.find('>', lt);
    if (gt == std::string::npos) return "unterminated tag";
    std::string tag = x.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (tag.starts_with("?")) continue;
    if (tag.starts_with("/")) {
      if (open.empty() || open.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      open.pop_back();
      continue;
    }
    const size_t name_end = tag.find_first_of(" \t\n/");
    const std::string name = tag.substr(0, name_end);
    if (name.empty()) return "empty tag name";
    if (!std::regex_match(tag.substr(name.size()), attrs)) return "bad attributes in <" + name + ">";
    if (open.empty() && ++roots > 1) return "more than one root";
    if (!tag.ends_with("/")) open.push_back(name);
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

TEST(XmlCheckerTest, CatchesWhatItShould) {
  EXPECT_EQ(XmlProblem("<a><b x=\"1\"/></a>"), "");
  EXPECT_NE(XmlProblem("<a><b></a></b>"), "");
  EXPECT_NE(XmlProblem("<a x=1></a>"), "");
  EXPECT_NE(XmlProblem("<a>R&D</a>"), "");
  EXPECT_NE(XmlProblem("<a></a><a></a>"), "");
}

TEST_F(TrainFlow, PlotIsAWellFormedSvgHoldingEverySeries) {
  TrainRunOptions ro;
  ro.shards_dir = tmp_.Join("shards");
  ro.train = Options();
  ro.train.epochs = 12;
  ro.train.eval_every = 3;
  ro.plot_out = tmp_.Join("curves & more.svg");
  Result<TrainRunReport> r = RunTraining(ro);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->plot_written);
  const std::string svg = testutil::ReadFile(ro.plot_out);
  EXPECT_EQ(XmlProblem(svg), "") << svg;
  EXPECT_TRUE(svg.starts_with("<?xml")) << svg.substr(0, 40);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("(seed 0)</text>"), std::string::npos);  // the title
  // Titles are escaped.
  const std::string odd = LearningCurveSvg(r->train.epochs, "a & <b>", 5);
  EXPECT_EQ(XmlProblem(odd), "");
  EXPECT_NE(odd.find(">a &amp; &lt;b&gt;</text>"), std::string::npos);
  EXPECT_NE(odd.find("class=\"selected\""), std::string::npos);  // the selected epoch's marker
  // The series and how many points each has: 12 epochs, 4 evaluations.
  const std::regex poly(R"re(<polyline class="series" data-name="([^"]+)"[^>]* points="([^"]+)")re");
  std::map<std::string, size_t> points;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    const std::string pts = (*it)[2];
    points[(*it)[1]] = static_cast<size_t>(std::count(pts.begin(), pts.end(), ','));
  }
  EXPECT_EQ(points,
            (std::map<std::string, size_t>{
                {"training loss", 12}, {"validation loss", 4}, {"validation accuracy", 4}, {"test accuracy", 4}}));
  EXPECT_NE(svg.find(">epoch</text>"), std::string::npos);
  EXPECT_NE(svg.find(">accuracy</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1.0</text>"), std::string::npos);  // a tick on the accuracy axis
  // The legend names every series.
  for (const char* name : {"training loss", "validation loss", "validation accuracy", "test accuracy"})
    EXPECT_NE(svg.find(std::string(">") + name + "</text>"), std::string::npos) << name;
}

}  // namespace
}  // namespace cgcn
