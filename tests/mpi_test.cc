// Data-parallel training over MPI (issue 14): the real cgcn-train under the real mpirun (Open
// MPI, --oversubscribe: more ranks than this machine's cores), against one process accumulating
// the same batches. scripts/sanitize.sh leaves these out (Open MPI's own allocations under
// LeakSanitizer); test.sh runs them.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cgcn/batch_stream.h"
#include "cgcn/loss.h"
#include "cgcn/train.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "testutil/tool_runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace cgcn {
namespace {

using testutil::RunTool;
using testutil::TempDir;
using testutil::ToolRun;

// mpirun from PATH (scripts/install-deps.sh installs openmpi-bin).
std::string Mpirun() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/mpirun";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// mpirun's flags for a test machine: more ranks than cores, and root in CI.
std::vector<std::string> MpirunArgs(int ranks) {
  return {"--oversubscribe", "--allow-run-as-root", "-n", std::to_string(ranks),
          std::string(CGCN_BIN_DIR) + "/cgcn-train"};
}

ToolRun RunMpi(int ranks, const std::vector<std::string>& train_args, const std::string& scratch,
               double timeout_s = 300) {
  std::vector<std::string> args = MpirunArgs(ranks);
  args.insert(args.end(), train_args.begin(), train_args.end());
  return RunTool(Mpirun(), args, scratch, timeout_s);
}

struct Metrics {
  std::map<uint64_t, double> step_loss;
  std::vector<json> epochs;
};
Metrics ReadMetrics(const std::string& path) {
  Metrics m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    if (j.contains("step"))
      m.step_loss[j["step"].get<uint64_t>()] = j["loss"].get<double>();
    else
      m.epochs.push_back(j);
  }
  return m;
}

// --accumulate in one process, against a reference written here from the pieces: one epoch
// of 4 batches with --accumulate 4 is one Adam step on the mean of the 4 batch gradients.
TEST(Accumulate, StepIsTheMeanOfTheBatchGradients) {
  TempDir tmp("cgcn-accumulate");
  testutil::BuildShards(testutil::RandomRawDataset(400, 2000, 6, 3, 5), tmp.path(), tmp.Join("shards"), 4);
  Result<ShardDirectory> d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  TrainOptions o;
  o.clusters_per_batch = 1;
  o.epochs = 1;
  o.accumulate = 4;
  o.dropout = 0;  // the reference draws no masks
  o.eval_every = 0;
  o.feature_norm = FeatureNormMode::kNone;
  o.seed = 3;
  // Adam's step does not change when every gradient is scaled alike; weight decay, added to the
  // gradient, makes a sum where a mean belongs (or a missing batch) show.
  o.weight_decay = 0.1f;
  Gcn model(ModelConfig(d->manifest(), o), o.seed);
  Gcn ref(ModelConfig(d->manifest(), o), o.seed);
  Result<TrainReport> r = Train(*d, o, model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();

  StreamOptions so;
  so.clusters_per_batch = 1;
  so.seed = o.seed;
  so.feature_norm = FeatureNorm::None();
  so.propagate_features = ref.AggregatesInputFirst();
  BatchStream stream(*d, so);
  std::vector<double> sum(ref.params().size(), 0.0);
  int batches = 0;
  Workspace ws;
  ASSERT_TRUE(stream
                  .RunEpoch(
                      1,
                      [&](const Batch& b) {
                        if (b.num_train == 0) return Status::Ok();
                        const ConstMatrixMap logits = ref.Forward(b.Adjacency(), b.Features(), true, 0,
                                                                  b.has_propagated ? b.propagated.data() : nullptr);
                        MatrixMap g = ws.Get(b.num_nodes, ref.config().out_dim);
                        uint32_t count = 0;
                        TaskLoss(b.label_tasks, logits, b.labels, b.label_bits, b.train_mask, g, &count);
                        ref.ZeroGrad();
                        ref.Backward(b.Adjacency(), b.Features(), ConstMatrixMap(g.data(), g.rows(), g.cols()));
                        for (size_t i = 0; i < sum.size(); ++i) sum[i] += ref.grads()[i];
                        ++batches;
                        return Status::Ok();
                      },
                      nullptr)
                  .ok());
  ASSERT_GE(batches, 2);
  std::vector<float> mean(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) mean[i] = static_cast<float>(sum[i] / batches);
  Adam adam(ref.params().size(), o.lr, o.weight_decay);
  adam.Step(ref.params(), mean);
  double worst = 0;
  for (size_t i = 0; i < mean.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(model.params()[i] - ref.params()[i])));
  EXPECT_LT(worst, 1e-6) << "over " << batches << " batches";
  // And it is one step, not four: a plain epoch moves the parameters elsewhere.
  TrainOptions plain = o;
  plain.accumulate = 1;
  Gcn other(ModelConfig(d->manifest(), plain), plain.seed);
  ASSERT_TRUE(Train(*d, plain, other).ok());
  double moved = 0;
  for (size_t i = 0; i < mean.size(); ++i)
    moved = std::max(moved, static_cast<double>(std::abs(other.params()[i] - model.params()[i])));
  EXPECT_GT(moved, 1e-4);
}

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Mpirun().empty()) << "mpirun not found: scripts/install-deps.sh installs openmpi-bin";
    testutil::WriteRawDataset(tmp_.Join("raw"), testutil::RandomRawDataset(3000, 12000, 16, 4, 11),
                              testutil::Compression::kPlain);
    const ToolRun pre =
        RunTool("cgcn-preprocess", {"--input", tmp_.Join("raw"), "--out", shards_, "--parts", "12", "--quiet"},
                tmp_.path(), 300);
    ASSERT_EQ(pre.exit_code, 0) << pre.err;
  }
  std::vector<std::string> Train(std::vector<std::string> extra) const {
    std::vector<std::string> a = {"--shards", shards_, "--quiet", "--threads", "1", "--log-steps"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  TempDir tmp_{"cgcn-mpi"};
  std::string shards_ = tmp_.Join("shards");
};

// N ranks with q clusters each take the same steps as one process accumulating N batches: the
// same per-step losses (to 1e-5 relative), the same accuracy, and parameters checked equal on
// every rank after every epoch. Rank 0 alone writes the metrics and prints the summary.
TEST_F(Mpi, RanksEqualOneProcessAccumulatingTheirBatches) {
  struct Case {
    int ranks;
    std::string q;  // q = 5 with 12 clusters: 3 batches, so with 2 ranks the last step has one
    std::vector<std::string> model;
  };
  // The evaluation is split among the ranks too: the layers' planes (root weight, attention
  // scalars, residual input) cross between them; the predictions are the same bytes.
  const std::vector<Case> cases = {{2, "2", {}},
                                   {3, "1", {"--model", "sage", "--layers", "3", "--residual"}},
                                   {2, "5", {"--model", "gat", "--heads", "2", "--hidden", "32", "--layers", "3"}}};
  for (const Case& c : cases) {
    SCOPED_TRACE("ranks " + std::to_string(c.ranks) + " q " + c.q);
    const std::string one = tmp_.Join("one.jsonl"), many = tmp_.Join("many.jsonl");
    const std::string p_one = tmp_.Join("one.csv"), p_many = tmp_.Join("many.csv");
    for (const std::string& f : {one, many, p_one, p_many}) fs::remove(f);
    std::vector<std::string> common = {"-q", c.q, "--epochs", "4", "--eval-every", "2"};
    common.insert(common.end(), c.model.begin(), c.model.end());
    std::vector<std::string> a = Train(common);
    a.insert(a.end(), {"--accumulate", std::to_string(c.ranks), "--metrics-out", one, "--predict-out", p_one});
    const ToolRun single = RunTool("cgcn-train", a, tmp_.path(), 300);
    ASSERT_EQ(single.exit_code, 0) << single.err;
    a = Train(common);
    a.insert(a.end(), {"--metrics-out", many, "--predict-out", p_many});
    const ToolRun dist = RunMpi(c.ranks, a, tmp_.path());
    ASSERT_EQ(dist.exit_code, 0) << dist.err;
    const Metrics ms = ReadMetrics(one), mm = ReadMetrics(many);
    ASSERT_FALSE(ms.step_loss.empty());
    ASSERT_EQ(ms.step_loss.size(), mm.step_loss.size());
    for (const auto& [step, loss] : ms.step_loss) {
      ASSERT_TRUE(mm.step_loss.count(step)) << "step " << step;
      EXPECT_NEAR(mm.step_loss.at(step), loss, 1e-5 * std::abs(loss)) << "step " << step;
    }
    ASSERT_EQ(mm.epochs.size(), 4u);  // rank 0's records only
    for (const json& e : mm.epochs) {
      EXPECT_EQ(e["ranks"], c.ranks);
      EXPECT_EQ(e["param_checksum"].get<std::string>().size(), 16u);
      EXPECT_GT(e["allreduce_bytes"].get<uint64_t>(), 0u);
    }
    EXPECT_FALSE(ms.epochs[0].contains("ranks"));
    auto last_line = [](const std::string& out) {
      const size_t end = out.find_last_not_of('\n');
      return out.substr(out.rfind('\n', end) == std::string::npos ? 0 : out.rfind('\n', end) + 1);
    };
    const json js = json::parse(last_line(single.out)), jm = json::parse(last_line(dist.out));
    EXPECT_EQ(jm["test_acc"], js["test_acc"]);
    EXPECT_EQ(jm["valid_acc"], js["valid_acc"]);
    EXPECT_EQ(std::count(dist.out.begin(), dist.out.end(), '\n'), 1) << "one summary line, from rank 0: " << dist.out;
    const std::string predictions = testutil::ReadFile(p_one);
    EXPECT_GT(predictions.size(), 3000u);
    EXPECT_TRUE(predictions == testutil::ReadFile(p_many)) << "the predictions differ";
  }
}

// A checkpoint of 2 ranks resumes under 2 ranks to the uninterrupted run's every step; any other
// count is refused on every rank, naming the count to use.
TEST_F(Mpi, ResumeNeedsTheSameRankCount) {
  const std::string ref = tmp_.Join("ref.jsonl"), part = tmp_.Join("part.jsonl"), ckpt = tmp_.Join("ckpt");
  std::vector<std::string> a = Train({"-q", "2", "--epochs", "4", "--metrics-out", ref});
  ASSERT_EQ(RunMpi(2, a, tmp_.path()).exit_code, 0);
  a = Train({"-q", "2", "--epochs", "2", "--checkpoint", ckpt, "--checkpoint-every", "2", "--metrics-out", part});
  ASSERT_EQ(RunMpi(2, a, tmp_.path()).exit_code, 0);
  a = Train({"-q", "2", "--epochs", "4", "--checkpoint", ckpt, "--resume"});
  for (int n : {1, 3}) {
    const ToolRun r = n == 1 ? RunTool("cgcn-train", a, tmp_.path(), 300) : RunMpi(n, a, tmp_.path());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(
        r.err.find("written by a run of 2 ranks, this run has " + std::to_string(n) + ": resume with mpirun -n 2"),
        std::string::npos)
        << r.err;
  }
  a.insert(a.end(), {"--metrics-out", part});
  const ToolRun r = RunMpi(2, a, tmp_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadMetrics(part).step_loss, ReadMetrics(ref).step_loss);
}

// One rank on another shard directory, or on a copy missing its shards: every rank stops, with
// a message naming the rank and its host.
TEST_F(Mpi, BadInputOnOneRankStopsEveryRank) {
  const std::string other = tmp_.Join("other");
  ASSERT_EQ(RunTool("cgcn-preprocess",
                    {"--input", tmp_.Join("raw"), "--out", other, "--parts", "12", "--seed", "5", "--quiet"},
                    tmp_.path(), 300)
                .exit_code,
            0);
  const std::string train = std::string(CGCN_BIN_DIR) + "/cgcn-train";
  auto mpmd = [&](const std::string& dir1) {
    return RunTool(Mpirun(),
                   {"--oversubscribe", "--allow-run-as-root", "-n", "1", train, "--shards", shards_, "--epochs", "2",
                    "--quiet", ":", "-n", "1", train, "--shards", dir1, "--epochs", "2", "--quiet"},
                   tmp_.path(), 300);
  };
  ToolRun r = mpmd(other);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("every rank must train on the same shard directory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rank 1 on host "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(--shards " + other + ")"), std::string::npos) << r.err;

  // The same MANIFEST, but no shard files: rank 1 fails on the first shard it reads.
  const std::string copy = tmp_.Join("copy");
  fs::create_directories(copy);
  fs::copy_file(shards_ + "/MANIFEST", copy + "/MANIFEST");
  r = mpmd(copy);
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cgcn-train: rank 1 of 2 (host "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(copy + "/shard-"), std::string::npos) << r.err;
}

// The state letter and parent of process `pid` from /proc/PID/stat; false when it is gone.
bool ProcStat(pid_t pid, char* state, int* ppid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const size_t close = stat.rfind(')');  // the command name may hold spaces and parentheses
  return close != std::string::npos && std::sscanf(stat.c_str() + close + 1, " %c %d", state, ppid) == 2;
}

// Running, not gone and not a zombie waiting for whoever inherited it to reap it.
bool Running(pid_t pid) {
  char state = 0;
  int ppid = 0;
  return ProcStat(pid, &state, &ppid) && state != 'Z';
}

// The pids of the running processes whose parent is `parent`.
std::vector<pid_t> Children(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    char state = 0;
    int ppid = 0;
    if (ProcStat(pid, &state, &ppid) && ppid == parent && state != 'Z') out.push_back(pid);
  }
  return out;
}

// A rank killed mid-training (SIGKILL, as the OOM killer would): mpirun stops the others and
// exits non-zero within seconds; nothing hangs and no rank is left running.
TEST_F(Mpi, KilledRankStopsEveryRankPromptly) {
  testutil::Child job;
  std::vector<std::string> args = MpirunArgs(2);
  const std::vector<std::string> t =
      Train({"-q", "1", "--epochs", "1000000", "--patience", "0", "--metrics-out", tmp_.Join("m.jsonl")});
  args.insert(args.end(), t.begin(), t.end());
  ASSERT_TRUE(job.Start(Mpirun(), args, tmp_.Join("out.txt"), tmp_.Join("err.txt")));
  // Wait until training is under way (rank 0 has written an epoch record).
  for (int i = 0; i < 3000 && ReadMetrics(tmp_.Join("m.jsonl")).epochs.empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(ReadMetrics(tmp_.Join("m.jsonl")).epochs.empty()) << testutil::ReadFile(tmp_.Join("err.txt"));
  const std::vector<pid_t> ranks = Children(job.pid());
  ASSERT_EQ(ranks.size(), 2u);
  ASSERT_EQ(::kill(ranks[1], SIGKILL), 0);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  bool done = false;
  while (!(done = job.TryWait(&status)) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(done) << "mpirun still running 60 s after a rank was killed";
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[          ] mpirun exited " << waited << " s after rank pid " << ranks[1] << " was killed\n";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
  EXPECT_NE(testutil::ReadFile(tmp_.Join("err.txt")).find("exited on signal 9"), std::string::npos)
      << testutil::ReadFile(tmp_.Join("err.txt"));
  for (pid_t p : ranks) {
    for (int i = 0; i < 500 && Running(p); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(Running(p)) << "rank pid " << p << " still running after mpirun exited";
  }
}

}  // namespace
}  // namespace cgcn
