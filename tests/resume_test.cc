// Checkpoints: a resumed run continues exactly where the checkpoint left off.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cgcn/checkpoint.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"
#include "testutil/shards.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::BuildShards(testutil::RandomRawDataset(600, 3000, 8, 4, 17), tmp_.path(), tmp_.Join("shards"), 12);
    auto d = ShardDirectory::Open(tmp_.Join("shards"));
    ASSERT_TRUE(d.ok());
    dir_ = std::make_unique<ShardDirectory>(std::move(d).value());
    o_.epochs = 3;
    o_.clusters_per_batch = 2;
    o_.hidden = 16;
    o_.checkpoint_dir = tmp_.Join("ckpt");
  }
  Gcn NewModel() const { return Gcn(GcnConfig{8, 16, 4, 2, 0.5f}, 5); }
  std::map<uint64_t, double> Run(const TrainOptions& o, std::vector<float>* params = nullptr,
                                 const std::function<void(uint64_t)>& after_step = {},
                                 std::vector<float>* buffers = nullptr) {
    Gcn model(ModelConfig(dir_->manifest(), o), 5);  // for o_: NewModel()
    std::map<uint64_t, double> losses;
    TrainCallbacks callbacks;
    callbacks.on_step = [&](uint64_t step, uint32_t, uint64_t, double loss) {
      losses[step] = loss;
      if (after_step) after_step(step);
    };
    Result<TrainReport> r = Train(*dir_, o, model, callbacks);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (params) params->assign(model.params().begin(), model.params().end());
    if (buffers) buffers->assign(model.buffers().begin(), model.buffers().end());
    return losses;
  }
  // Runs `ck` (checkpoints every 4 steps) to the end, then puts back the checkpoint of step 8
  // (epoch 2, batch 2), which the file holds when step 9 is reported: the state of a run killed
  // during step 9. Returns the full run's losses.
  std::map<uint64_t, double> RunAndRewindToStep8(const TrainOptions& ck) {
    const std::string saved = tmp_.Join("saved.cgcn");
    const std::string file = ck.checkpoint_dir + "/" + kCheckpointFileName;
    const auto losses = Run(ck, nullptr, [&](uint64_t step) {
      if (step == 9) fs::copy_file(file, saved);
    });
    fs::copy_file(saved, file, fs::copy_options::overwrite_existing);
    fs::remove(saved);
    return losses;
  }
  // Runs `ck` (with resume set) from the checkpoint RunAndRewindToStep8 left: the 10 steps after
  // step 8 have the reference run's losses, and the parameters (and buffers, when given) end as
  // the reference's.
  void ExpectResumeMatches(const TrainOptions& ck, const std::map<uint64_t, double>& ref,
                           const std::vector<float>& ref_params, const std::vector<float>* ref_buffers = nullptr) {
    ASSERT_TRUE(ck.resume);
    std::vector<float> params, buffers;
    const auto resumed = Run(ck, &params, {}, &buffers);
    ASSERT_EQ(resumed.size(), 10u);
    for (const auto& [step, loss] : resumed) EXPECT_EQ(loss, ref.at(step)) << "step " << step;
    EXPECT_EQ(params, ref_params);
    if (ref_buffers) {
      EXPECT_EQ(buffers, *ref_buffers);
    }
  }
  testutil::TempDir tmp_;
  std::unique_ptr<ShardDirectory> dir_;
  TrainOptions o_;
};

TEST_F(ResumeTest, MidEpochResumeReproducesEveryStepLoss) {
  std::vector<float> ref_params;
  const auto ref = Run(o_, &ref_params);
  ASSERT_EQ(ref.size(), 18u);  // 3 epochs x 6 batches (every batch has training nodes)

  TrainOptions ck = o_;
  ck.checkpoint_every = 4;
  const auto first = RunAndRewindToStep8(ck);
  EXPECT_EQ(first, ref);  // checkpointing does not perturb training
  Result<Checkpoint> c = LoadCheckpoint(ck.checkpoint_dir);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->step, 8u);
  EXPECT_EQ(c->epoch, 2u);
  EXPECT_EQ(c->next_batch, 2u);

  ck.resume = true;
  ASSERT_NO_FATAL_FAILURE(ExpectResumeMatches(ck, ref, ref_params));
}

// Input dropout draws from the step's seed like the hidden dropout: a resumed run reproduces
// every step; a resume without it is refused by the signature, which names it.
TEST_F(ResumeTest, InputDropoutResumesExactlyAndIsPartOfTheSignature) {
  TrainOptions o = o_;
  o.input_dropout = 0.5f;
  std::vector<float> ref_params, plain_params;
  const auto ref = Run(o, &ref_params);
  ASSERT_EQ(ref.size(), 18u);
  const auto plain = Run(o_, &plain_params);
  EXPECT_NE(ref, plain);  // the inputs were dropped
  TrainOptions ck = o;
  ck.checkpoint_every = 4;
  RunAndRewindToStep8(ck);
  ck.resume = true;
  ASSERT_NO_FATAL_FAILURE(ExpectResumeMatches(ck, ref, ref_params));

  TrainOptions other = ck;
  other.input_dropout = 0.0f;
  Gcn model(ModelConfig(dir_->manifest(), other), 5);
  Result<TrainReport> r = Train(*dir_, other, model);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("input_dropout=0.5"), std::string::npos) << r.status().message();
}

// Batch norm's running statistics are part of the state: a resumed sage model with batch norm
// and residual connections reproduces every step, its parameters and its statistics; a resume
// with other layers is refused by the signature.
TEST_F(ResumeTest, BatchNormModelResumesWithItsRunningStatistics) {
  TrainOptions o = o_;
  o.layers = 3;
  o.layer_kind = LayerKind::kSage;
  o.norm = NormKind::kBatch;
  o.residual = true;
  std::vector<float> ref_params, ref_buffers;
  const auto ref = Run(o, &ref_params, {}, &ref_buffers);
  ASSERT_EQ(ref.size(), 18u);
  ASSERT_EQ(ref_buffers.size(), 4u * 16);
  TrainOptions ck = o;
  ck.checkpoint_every = 4;
  RunAndRewindToStep8(ck);
  Result<Checkpoint> c = LoadCheckpoint(ck.checkpoint_dir);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->buffers.size(), ref_buffers.size());
  EXPECT_NE(c->buffers, ref_buffers);  // step 8's statistics, not the last
  ck.resume = true;
  ASSERT_NO_FATAL_FAILURE(ExpectResumeMatches(ck, ref, ref_params, &ref_buffers));

  TrainOptions other = ck;
  other.norm = NormKind::kLayer;
  Gcn model(ModelConfig(dir_->manifest(), other), 5);
  Result<TrainReport> r = Train(*dir_, other, model);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model=sage diag_lambda=0 heads=1 residual=1 norm=batch"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("norm=layer"), std::string::npos) << r.status().message();
}

TEST_F(ResumeTest, RefusesCheckpointOfOtherOptionsAndCorruptFiles) {
  TrainOptions ck = o_;
  ck.checkpoint_every = 3;
  Run(ck);
  ck.resume = true;
  ck.lr = 0.02f;
  Gcn model = NewModel();
  Result<TrainReport> r = Train(*dir_, ck, model);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("lr=0.0199"), std::string::npos) << r.status().message();
  const std::string file = ck.checkpoint_dir + "/" + kCheckpointFileName;
  testutil::FlipByte(file, 100);
  ck.lr = o_.lr;
  r = Train(*dir_, ck, model);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("checkpoint.cgcn"), std::string::npos);
}

// The real thing: SIGKILL the tool mid-run, resume it, compare every step's loss with an
// uninterrupted run.
TEST_F(ResumeTest, SigkillThenResumeMatchesUninterruptedRun) {
  const std::string bin = std::string(CGCN_BIN_DIR) + "/cgcn-train";
  const std::string common =
      " --shards " + tmp_.Join("shards") + " --epochs 300 -q 2 --hidden 16 --quiet --log-steps --eval-every 0";
  auto read_steps = [](const std::string& path) {
    std::map<uint64_t, double> m;
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;  // a line cut by the kill
      if (j.contains("step")) {
        const uint64_t s = j["step"];
        const double loss = j["loss"];
        auto it = m.find(s);
        if (it != m.end()) {
          EXPECT_EQ(it->second, loss) << "step " << s << " logged twice with different losses";
        }
        m[s] = loss;
      }
    }
    return m;
  };
  ASSERT_EQ(std::system((bin + common + " --metrics-out " + tmp_.Join("ref.jsonl") + " >/dev/null").c_str()), 0);
  const auto ref = read_steps(tmp_.Join("ref.jsonl"));
  ASSERT_EQ(ref.size(), 1800u);

  std::mt19937 rng(3);
  int killed_mid_run = 0;
  for (int trial = 0; trial < 3; ++trial) {
    std::string ckpt = tmp_.Join("k");
    ckpt += std::to_string(trial);
    const std::string metrics = ckpt + ".jsonl";
    const std::string args = common + " --checkpoint " + ckpt + " --checkpoint-every 5 --metrics-out " + metrics;
    const pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + bin + args + " >/dev/null 2>&1").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Kill at a random moment after the first checkpoint exists (so there is something to resume
    // from, however fast the machine is).
    for (int i = 0; i < 2000 && !fs::exists(ckpt + "/" + kCheckpointFileName); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed_mid_run;
    const bool have_checkpoint = fs::exists(ckpt + "/" + kCheckpointFileName);
    const std::string rerun = bin + args + (have_checkpoint ? " --resume" : "") + " >/dev/null";
    ASSERT_EQ(std::system(rerun.c_str()), 0);
    EXPECT_EQ(read_steps(metrics), ref) << "trial " << trial;
    for (const auto& e : fs::directory_iterator(ckpt))
      EXPECT_EQ(e.path().filename(), kCheckpointFileName) << "temporary left behind";
  }
  EXPECT_GT(killed_mid_run, 0);
}

}  // namespace
}  // namespace cgcn
