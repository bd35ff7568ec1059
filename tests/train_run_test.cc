// Training outputs (docs/RELIABILITY.md, "Training outputs"): the options and every path a run
// will write are checked before the first epoch; a write that fails at the end does not stop the
// others, and the summary still comes; checkpoints, resume, --quiet and the memory budget.
// Tool behaviour is tested on the real cgcn-train binary; library behaviour through Train and
// RunTraining. Keep the table in docs/RELIABILITY.md in step with the test names here.
#include "cgcn/train_run.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "cgcn/batch.h"
#include "cgcn/checkpoint.h"
#include "cgcn/memory_plan.h"
#include "cgcn/model_file.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "testutil/tool_runner.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::RunTool;
using testutil::TempDir;
using testutil::TmpfsMount;
using testutil::ToolRun;

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// The last line of stdout, parsed (null JSON if it is not JSON).
nlohmann::json SummaryOf(const ToolRun& r) {
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return nlohmann::json::parse(out.substr(out.rfind('\n') + 1), nullptr, false);
}

// A limit on the size of files written, for the tools this process starts while it lives (they
// inherit it); SIGXFSZ ignored, so that a write past it fails with EFBIG instead of killing.
// This process writes no regular file meanwhile.
class ScopedFileSizeLimit {
 public:
  explicit ScopedFileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{bytes, old_.rlim_max};
    ok_ = ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~ScopedFileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  ScopedFileSizeLimit(const ScopedFileSizeLimit&) = delete;
  ScopedFileSizeLimit& operator=(const ScopedFileSizeLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = SIG_DFL;
  bool ok_ = false;
};

std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The tiny dataset (6 nodes, 2 clusters) preprocessed by the real cgcn-preprocess, so the
// manifest records the input files (--check-input).
class TrainTool : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::WriteTinyRawDataset(raw());
    const ToolRun pre =
        RunTool("cgcn-preprocess", {"--input", raw(), "--out", shards(), "--parts", "2", "--quiet"}, tmp_.path());
    ASSERT_EQ(pre.exit_code, 0) << pre.err;
    manifest_ = testutil::ReadFile(shards() + "/MANIFEST");
    shard_files_ = Listing(shards());
  }

 public:
  std::string raw() const { return tmp_.Join("raw"); }
  std::string shards() const { return tmp_.Join("shards"); }
  std::string T(const std::string& rel) const { return tmp_.Join(rel); }
  ToolRun Train(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--shards", shards(), "--threads", "2"});
    if (std::find(args.begin(), args.end(), "--hidden") == args.end()) args.insert(args.end(), {"--hidden", "8"});
    return RunTool("cgcn-train", args, tmp_.path());
  }
  // The shard directory is as cgcn-preprocess left it.
  void ExpectShardsUntouched() const {
    EXPECT_EQ(testutil::ReadFile(shards() + "/MANIFEST"), manifest_);
    EXPECT_EQ(Listing(shards()), shard_files_);
  }

 protected:
  TempDir tmp_{"cgcn-train-tool"};
  std::string manifest_;
  std::vector<std::string> shard_files_;
};

// ---------------------------------------------------------------------------------
// Paths refused before the first epoch

struct RefusedCase {
  const char* name;
  std::function<void(const TrainTool&)> setup;  // makes what the case needs under the temp dir
  std::vector<std::string> args;                // {T} = the temp dir, {S} = the shard directory
  int exit_code;
  const char* message;  // expected in stderr after "cgcn-train: error: ", with {T} and {S}
};
std::ostream& operator<<(std::ostream& os, const RefusedCase& c) { return os << c.name; }

std::vector<RefusedCase> RefusedCases() {
  auto none = [](const TrainTool&) {};
  return {
      {"SaveModelOverTheManifest",
       none,
       {"--save-model", "{S}/MANIFEST"},
       2,
       "invalid argument: --save-model {S}/MANIFEST: inside the shard directory {S}, which this run reads (choose a "
       "path outside it)"},
      {"PredictOutInsideTheShards",
       none,
       {"--predict-out", "{S}/pred.csv"},
       2,
       "invalid argument: --predict-out {S}/pred.csv: inside the shard directory {S}"},
      {"CheckpointInsideTheShards",
       none,
       {"--checkpoint", "{S}/ck"},
       2,
       "invalid argument: --checkpoint {S}/ck: inside the shard directory {S}"},
      {"MetricsOutOverAnInputFile",
       none,
       {"--check-input", "{T}/raw", "--metrics-out", "{T}/raw/raw/edge.csv.gz"},
       2,
       "invalid argument: --metrics-out {T}/raw/raw/edge.csv.gz: is an input file of --check-input, which this run "
       "reads (choose another path)"},
      {"SaveModelIsADirectory",
       [](const TrainTool& t) { fs::create_directories(t.T("dir")); },
       {"--save-model", "{T}/dir"},
       2,
       "invalid argument: --save-model {T}/dir: is a directory, expected a file path"},
      {"PredictOutIsAPipe",
       [](const TrainTool& t) { ASSERT_EQ(::mkfifo(t.T("fifo").c_str(), 0644), 0); },
       {"--predict-out", "{T}/fifo"},
       2,
       "invalid argument: --predict-out {T}/fifo: exists and is not a regular file (cgcn replaces only regular files)"},
      {"SaveModelDirectoryMissing",
       none,
       {"--save-model", "{T}/no/such/model.bin"},
       3,
       "I/O error: --save-model {T}/no/such/model.bin: directory {T}/no/such does not exist"},
      {"SameFileTwice",
       none,
       {"--save-model", "{T}/out", "--predict-out", "{T}/out"},
       2,
       "invalid argument: --save-model and --predict-out would write the same file: {T}/out"},
      {"SameFileSpelledTwoWays",
       [](const TrainTool& t) { fs::create_directories(t.T("sub")); },
       {"--metrics-out", "{T}/out", "--save-model", "{T}/sub/../out"},
       2,
       "invalid argument: --metrics-out and --save-model would write the same file: {T}/out"},
      {"SaveModelIsTheCheckpointFile",
       none,
       {"--checkpoint", "{T}/ck", "--save-model", "{T}/ck/checkpoint.cgcn"},
       2,
       "invalid argument: --save-model and --checkpoint would write the same file: {T}/ck/checkpoint.cgcn"},
      {"PredictOutIsTheCheckpointDirectory",
       none,
       {"--checkpoint", "{T}/ck", "--predict-out", "{T}/ck"},
       2,
       "invalid argument: --predict-out {T}/ck: is the --checkpoint directory"},
      {"CheckpointIsAFile",
       [](const TrainTool& t) { testutil::WriteFile(t.T("ck"), "x"); },
       {"--checkpoint", "{T}/ck"},
       2,
       "invalid argument: --checkpoint {T}/ck: exists and is not a directory"},
  };
}

class TrainOutputRefused : public TrainTool, public ::testing::WithParamInterface<RefusedCase> {};

// Each path is refused with its flag and path named, before anything is trained or written:
// no epoch line, no metrics file (it is opened at the first epoch's record), the shard
// directory untouched.
TEST_P(TrainOutputRefused, BeforeTraining) {
  const RefusedCase& c = GetParam();
  c.setup(*this);
  std::vector<std::string> args;
  for (const std::string& a : c.args) args.push_back(ReplaceAll(ReplaceAll(a, "{T}", tmp_.path()), "{S}", shards()));
  const bool own_metrics = std::find(args.begin(), args.end(), "--metrics-out") != args.end();
  if (!own_metrics) args.insert(args.end(), {"--metrics-out", T("metrics.jsonl")});
  args.insert(args.end(), {"--epochs", "3"});
  const ToolRun r = Train(args);
  EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
  const std::string want =
      "cgcn-train: error: " + ReplaceAll(ReplaceAll(c.message, "{T}", tmp_.path()), "{S}", shards());
  EXPECT_EQ(r.err.rfind(want, 0), 0u) << "stderr: " << r.err << "\nwanted: " << want;
  EXPECT_EQ(r.out.find("epoch "), std::string::npos) << r.out;
  if (!own_metrics) {
    EXPECT_FALSE(fs::exists(T("metrics.jsonl"))) << "trained before refusing";
  }
  EXPECT_FALSE(fs::exists(T("ck/checkpoint.cgcn")));
  ExpectShardsUntouched();
}

INSTANTIATE_TEST_SUITE_P(Reliability, TrainOutputRefused, ::testing::ValuesIn(RefusedCases()),
                         [](const ::testing::TestParamInfo<RefusedCase>& p) { return std::string(p.param.name); });

// A directory where nothing can be created: a read-only mount as root (where permission bits do
// not stop writes), permission bits otherwise.
TEST_F(TrainTool, UnwritableDirectoryIsRefusedBeforeTraining) {
  const std::string dir = T("ro");
  std::unique_ptr<TmpfsMount> mount;
  if (::geteuid() == 0) {
    mount = std::make_unique<TmpfsMount>(dir, "64k", /*read_only=*/true);
    if (!mount->mounted())
      GTEST_SKIP() << "root, but cannot mount a read-only tmpfs: " << std::strerror(mount->error());
  } else {
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  }
  const ToolRun r = Train({"--epochs", "3", "--metrics-out", T("metrics.jsonl"), "--save-model", dir + "/model.bin"});
  if (::geteuid() != 0) fs::permissions(dir, fs::perms::owner_all);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  const std::string want = "cgcn-train: error: I/O error: --save-model " + dir + "/model.bin: cannot create files in " +
                           dir + ": " + std::strerror(::geteuid() == 0 ? EROFS : EACCES) + "\n";
  EXPECT_EQ(r.err, want);
  EXPECT_FALSE(fs::exists(T("metrics.jsonl"))) << "trained before refusing";
}

// A fresh run would overwrite the checkpoint an earlier run left: refused, the file kept.
TEST_F(TrainTool, FreshRunRefusesToOverwriteACheckpoint) {
  const ToolRun first = Train({"--epochs", "2", "--checkpoint", T("ck"), "--quiet"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string before = testutil::ReadFile(T("ck/checkpoint.cgcn"));
  const ToolRun again = Train({"--epochs", "2", "--checkpoint", T("ck"), "--metrics-out", T("metrics.jsonl")});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_EQ(again.err, "cgcn-train: error: invalid argument: --checkpoint " + T("ck") +
                           ": already holds checkpoint.cgcn from an earlier run: pass --resume to continue it, or "
                           "remove it (or choose another directory) to start afresh\n");
  EXPECT_EQ(testutil::ReadFile(T("ck/checkpoint.cgcn")), before);
  EXPECT_FALSE(fs::exists(T("metrics.jsonl")));
}

// ---------------------------------------------------------------------------------
// Options: one rule, sentences naming the flag

struct FlagCase {
  const char* name;
  std::vector<std::string> args;
  const char* message;  // the whole of stderr is expected to contain it
};
std::ostream& operator<<(std::ostream& os, const FlagCase& c) { return os << c.name; }

class TrainFlagRefused : public TrainTool, public ::testing::WithParamInterface<FlagCase> {};

TEST_P(TrainFlagRefused, ExitsTwoBeforeTraining) {
  std::vector<std::string> args = GetParam().args;
  args.insert(args.end(), {"--metrics-out", T("metrics.jsonl")});
  const ToolRun r = Train(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(T("metrics.jsonl")));
}

INSTANTIATE_TEST_SUITE_P(
    Reliability, TrainFlagRefused,
    ::testing::Values(
        FlagCase{"LrNan", {"--lr", "nan"}, "--lr must be a finite number, found nan"},
        FlagCase{"LrInf", {"--lr", "inf"}, "--lr must be a finite number, found inf"},
        FlagCase{"LrZero", {"--lr", "0"}, "--lr must be greater than 0, found 0"},
        FlagCase{"DropoutNan", {"--dropout", "nan"}, "--dropout must be a finite number, found nan"},
        FlagCase{"DropoutOne", {"--dropout", "1"}, "--dropout must be from 0 to 0.99, found 1"},
        FlagCase{"InputDropoutOne", {"--input-dropout", "1"}, "--input-dropout must be from 0 to 0.99, found 1"},
        FlagCase{
            "InputDropoutNegative", {"--input-dropout", "-0.1"}, "--input-dropout must be from 0 to 0.99, found -0.1"},
        FlagCase{"WeightDecayInf", {"--weight-decay", "inf"}, "--weight-decay must be a finite number, found inf"},
        FlagCase{"WeightDecayNegative", {"--weight-decay", "-0.5"}, "--weight-decay must be at least 0, found -0.5"},
        FlagCase{"EpochsZero", {"--epochs", "0"}, "--epochs must be at least 1, found 0"},
        FlagCase{"MoreClustersPerBatchThanClusters",
                 {"-q", "3"},
                 "--clusters-per-batch must be from 1 to 2, found 3 (the shards hold 2 clusters)"},
        FlagCase{"LayersTooMany", {"--layers", "17"}, "--layers must be from 1 to 16, found 17"},
        FlagCase{"CheckpointEveryWithoutCheckpoint",
                 {"--checkpoint-every", "3"},
                 "--checkpoint-every needs a checkpoint directory (--checkpoint DIR)"},
        FlagCase{"MemBudgetBelowOneByte", {"--mem-budget", "0.5"}, "--mem-budget: '0.5' is less than one byte"},
        FlagCase{"CacheNan", {"--cache", "nan"}, "--cache: 'nan' is not a memory size"},
        FlagCase{"CacheNegative", {"--cache", "-5"}, "--cache: '-5' is not a memory size"},
        FlagCase{"CacheEmpty", {"--cache", ""}, "--cache: '' is not a memory size"},
        FlagCase{"CacheBeyondTheBudget",
                 {"--cache", "1G", "--mem-budget", "64M"},
                 "--cache 1.0 GiB does not fit --mem-budget 64.0 MiB: training takes"},
        FlagCase{"GemmUnknown", {"--gemm", "mkl"}, "--gemm must be auto, eigen or onednn, found 'mkl'"},
        FlagCase{"ComputeUnknown", {"--compute", "fp8"}, "--compute must be f32 or bf16, found 'fp8'"},
        FlagCase{"ComputeBf16OnEigen",
                 {"--gemm", "eigen", "--compute", "bf16"},
                 OneDnnAvailable() ? "--compute bf16 runs on oneDNN, not on --gemm eigen: use --gemm onednn or auto"
                                   : "--compute bf16 runs on oneDNN, and this build of cgcn has none"},
        FlagCase{"AccumulateZero", {"--accumulate", "0"}, "--accumulate must be from 1 to 4096, found 0"},
        FlagCase{"AccumulateTooMany", {"--accumulate", "5000"}, "--accumulate must be from 1 to 4096, found 5000"},
        // The default --patience 10 quietly has nothing to count with --eval-every 0; one the user
        // gave would be a promise training cannot keep.
        FlagCase{"PatienceWithoutEvaluations",
                 {"--eval-every", "0", "--patience", "4"},
                 "--patience 4 counts evaluations, but --eval-every 0 evaluates only after the last epoch: set "
                 "--eval-every N"}),
    [](const ::testing::TestParamInfo<FlagCase>& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------------
// Printing

TEST_F(TrainTool, QuietPrintsOnlyTheSummaryLine) {
  const ToolRun r =
      Train({"--epochs", "3", "--eval-every", "1", "--quiet", "--save-model", T("m.bin"), "--predict-out", T("p.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(SummaryOf(r).is_discarded()) << r.out;
  EXPECT_TRUE(fs::exists(T("m.bin")) && fs::exists(T("p.csv")));
}

// ---------------------------------------------------------------------------------
// Checkpoints and resume

// --checkpoint DIR alone checkpoints after every epoch, so the run can be continued, and the
// continued run ends where an uninterrupted one does.
TEST_F(TrainTool, CheckpointWithoutCheckpointEveryWritesEveryEpoch) {
  const ToolRun two = Train({"--epochs", "2", "--checkpoint", T("ck"), "--quiet"});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  Result<Checkpoint> c = LoadCheckpoint(T("ck"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->epoch, 3u);  // after epoch 2
  EXPECT_EQ(c->next_batch, 0u);
  EXPECT_GT(c->step, 0u);
  const ToolRun three =
      Train({"--epochs", "3", "--checkpoint", T("ck"), "--resume", "--quiet", "--save-model", T("resumed.bin")});
  ASSERT_EQ(three.exit_code, 0) << three.err;
  const ToolRun straight = Train({"--epochs", "3", "--quiet", "--save-model", T("straight.bin")});
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  EXPECT_EQ(testutil::ReadFile(T("resumed.bin")), testutil::ReadFile(T("straight.bin")));
  const auto j = SummaryOf(three);
  EXPECT_EQ(j["epochs"], 1);  // this run trained epoch 3 only
  EXPECT_EQ(j["final_epoch"], 3);
  EXPECT_EQ(j["resumed_from"]["epoch"], 3);
  EXPECT_EQ(j["test_acc"], SummaryOf(straight)["test_acc"]);
}

// Resuming a run that has finished trains nothing and reports the restored model's real
// figures: the same as the run that finished, with no epoch claimed.
TEST_F(TrainTool, ResumeOfAFinishedRunReportsTheRestoredModel) {
  const ToolRun done = Train({"--epochs", "3", "--checkpoint", T("ck"), "--checkpoint-every", "100", "--quiet",
                              "--save-model", T("done.bin"), "--predict-out", T("done.csv")});
  ASSERT_EQ(done.exit_code, 0) << done.err;
  const ToolRun again = Train({"--epochs", "3", "--checkpoint", T("ck"), "--checkpoint-every", "100", "--resume",
                               "--save-model", T("again.bin"), "--predict-out", T("again.csv")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto d = SummaryOf(done), a = SummaryOf(again);
  ASSERT_GT(d["train_acc"].get<double>(), 0.0) << "a test that cannot tell real figures from zeros";
  for (const char* key : {"train_acc", "valid_acc", "test_acc"}) EXPECT_EQ(a[key], d[key]) << key;
  EXPECT_EQ(a["epochs"], 0);
  EXPECT_EQ(a["mean_epoch_s"], 0.0);
  EXPECT_EQ(a["final_epoch"], 3);
  EXPECT_EQ(a["resumed_from"]["epoch"], 4);
  EXPECT_GT(a["eval_s"].get<double>(), 0.0);
  EXPECT_NE(again.out.find("nothing left to train: the checkpoint is after epoch 3"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("epoch    "), std::string::npos) << "claims an epoch: " << again.out;
  EXPECT_EQ(testutil::ReadFile(T("again.bin")), testutil::ReadFile(T("done.bin")));
  EXPECT_EQ(testutil::ReadFile(T("again.csv")), testutil::ReadFile(T("done.csv")));
  // Asking for fewer epochs than the checkpoint holds is refused, not silently reported.
  const ToolRun fewer = Train({"--epochs", "2", "--checkpoint", T("ck"), "--resume"});
  EXPECT_EQ(fewer.exit_code, 2);
  EXPECT_NE(fewer.err.find("the checkpoint has trained into epoch 3, beyond --epochs 2 (resume with --epochs 3 or "
                           "more)"),
            std::string::npos)
      << fewer.err;
}

// ---------------------------------------------------------------------------------
// A write that fails at the end

// Checks a run whose --save-model write fails after training: exit 3, the error on stderr and
// in the summary's "errors", and the other outputs written all the same.
void ExpectModelFailedRestWritten(const TrainTool& t, const ToolRun& r, const std::string& model,
                                  const std::string& errno_text) {
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("cgcn-train: error: I/O error: --save-model " + model + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(errno_text), std::string::npos) << r.err;
  const auto j = SummaryOf(r);
  ASSERT_FALSE(j.is_discarded()) << "no summary line: " << r.out;
  ASSERT_TRUE(j.contains("errors")) << j.dump();
  ASSERT_EQ(j["errors"].size(), 1u) << j.dump();
  EXPECT_NE(j["errors"][0].get<std::string>().find("--save-model " + model), std::string::npos) << j.dump();
  EXPECT_TRUE(j["test_acc"].is_number()) << j.dump();
  EXPECT_EQ(testutil::ReadFile(t.T("p.csv")).substr(0, 14), "node_id,label\n");
  std::ifstream metrics(t.T("m.jsonl"));
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) lines += !nlohmann::json::parse(line).is_discarded();
  EXPECT_EQ(lines, 3);
  EXPECT_NE(r.out.find("predictions for 6 nodes written to"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("model written to"), std::string::npos) << r.out;
}

// The model goes to a tmpfs too small for it (needs root to mount; CI runs as root): ENOSPC.
TEST_F(TrainTool, FullDiskAtTheEndStillWritesTheRestAndTheSummary) {
  const std::string mnt = T("small");
  TmpfsMount small(mnt, "64k");
  if (!small.mounted())
    GTEST_SKIP() << "cannot mount a tmpfs on " << mnt << " (" << std::strerror(small.error()) << "); needs root";
  // 3 x 8192 + 8192 + 8192 x 2 + 2 parameters: 192 KiB, three times the mount.
  const std::string model = mnt + "/model.bin";
  const ToolRun r = Train({"--epochs", "3", "--hidden", "8192", "--save-model", model, "--predict-out", T("p.csv"),
                           "--metrics-out", T("m.jsonl")});
  ExpectModelFailedRestWritten(*this, r, model, "No space left on device");
  EXPECT_EQ(Listing(mnt), std::vector<std::string>{}) << "left in the full file system";
}

// The same without root: a file size limit (RLIMIT_FSIZE) the model exceeds: EFBIG.
TEST_F(TrainTool, FileSizeLimitAtTheEndStillWritesTheRestAndTheSummary) {
  const std::string model = T("model.bin");
  ToolRun r;
  {
    const ScopedFileSizeLimit limit(64 << 10);
    ASSERT_TRUE(limit.ok());
    r = Train({"--epochs", "3", "--hidden", "8192", "--save-model", model, "--predict-out", T("p.csv"), "--metrics-out",
               T("m.jsonl")});
  }
  ExpectModelFailedRestWritten(*this, r, model, "File too large");
  EXPECT_FALSE(fs::exists(model));
}

// Records that stop fitting in --metrics-out during training: training goes on, the other
// outputs are written, and the error is reported at the end.
TEST_F(TrainTool, MetricsWriteFailureDoesNotStopTraining) {
  // --quiet: the limit holds for the captured stdout too.
  ToolRun r;
  {
    const ScopedFileSizeLimit limit(4 << 10);
    ASSERT_TRUE(limit.ok());
    r = Train({"--epochs", "40", "--eval-every", "0", "--quiet", "--log-steps", "--metrics-out", T("m.jsonl"),
               "--save-model", T("m.bin"), "--predict-out", T("p.csv")});
  }
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.err, "cgcn-train: error: I/O error: --metrics-out " + T("m.jsonl") + ": write failed: File too large\n");
  const auto j = SummaryOf(r);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["epochs"], 40);
  ASSERT_TRUE(j.contains("errors")) << j.dump();
  EXPECT_EQ(j["errors"],
            nlohmann::json::array({"I/O error: --metrics-out " + T("m.jsonl") + ": write failed: File too large"}));
  EXPECT_EQ(j["final_epoch"], 40);
  FeatureNorm norm;
  EXPECT_TRUE(LoadModel(T("m.bin"), &norm).ok());
  EXPECT_EQ(testutil::ReadFile(T("p.csv")).substr(0, 14), "node_id,label\n");
  EXPECT_EQ(testutil::FileSize(T("m.jsonl")), uint64_t{4} << 10);
}

// ---------------------------------------------------------------------------------
// Library: Validate, Train's memory plan, RunTraining, stated sizes

TEST(TrainOptionsValidate, EveryBoundIsASentenceNamingTheFlag) {
  auto message = [](const std::function<void(TrainOptions&)>& edit) {
    TrainOptions o;
    edit(o);
    return o.Validate(12).message();
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(message([](TrainOptions&) {}), "");
  EXPECT_EQ(message([&](TrainOptions& o) { o.lr = nan; }), "--lr must be a finite number, found nan");
  EXPECT_EQ(message([&](TrainOptions& o) { o.lr = -inf; }), "--lr must be a finite number, found -inf");
  EXPECT_EQ(message([](TrainOptions& o) { o.lr = 0; }), "--lr must be greater than 0, found 0");
  EXPECT_EQ(message([&](TrainOptions& o) { o.dropout = nan; }), "--dropout must be a finite number, found nan");
  EXPECT_EQ(message([&](TrainOptions& o) { o.weight_decay = inf; }),
            "--weight-decay must be a finite number, found inf");
  EXPECT_EQ(message([](TrainOptions& o) { o.epochs = 0; }), "--epochs must be at least 1, found 0");
  EXPECT_EQ(message([](TrainOptions& o) { o.clusters_per_batch = 13; }),
            "--clusters-per-batch must be from 1 to 12, found 13 (the shards hold 12 clusters)");
  EXPECT_EQ(message([](TrainOptions& o) { o.hidden = 0; }), "--hidden must be from 1 to 65536, found 0");
  EXPECT_EQ(message([](TrainOptions& o) { o.prefetch = 0; }), "--prefetch must be from 1 to 64, found 0");
  EXPECT_EQ(message([](TrainOptions& o) { o.resume = true; }),
            "--resume needs a checkpoint directory (--checkpoint DIR)");
  TrainOptions bad;
  bad.lr = nan;
  EXPECT_EQ(bad.Validate(12).code(), StatusCode::kInvalidArgument);
}

class TrainLibrary : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::BuildShards(testutil::RandomRawDataset(3000, 15000, 12, 5, 21), tmp_.path(), tmp_.Join("shards"), 12);
    auto d = ShardDirectory::Open(tmp_.Join("shards"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dir_ = std::make_unique<ShardDirectory>(std::move(d).value());
    o_.epochs = 2;
    o_.hidden = 16;
    o_.clusters_per_batch = 3;
  }
  TempDir tmp_;
  std::unique_ptr<ShardDirectory> dir_;
  TrainOptions o_;
};

// Train refuses bad options itself, before the first epoch.
TEST_F(TrainLibrary, TrainValidatesItsOptions) {
  o_.dropout = std::numeric_limits<float>::quiet_NaN();
  Gcn model(ModelConfig(dir_->manifest(), o_), 1);
  int epochs = 0;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochRecord&) { ++epochs; };
  Result<TrainReport> r = Train(*dir_, o_, model, cb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--dropout must be a finite number, found nan");
  EXPECT_EQ(epochs, 0);
}

// With mem_budget, Train plans and applies the plan: the plan it reports is PlanMemory's, every
// evaluation spills as planned, decoded shards leave the page cache while it trains (and the
// directory's setting is back afterwards); the spill directory is checked before the first epoch.
TEST_F(TrainLibrary, TrainPlansAndAppliesItsMemoryBudget) {
  fs::create_directories(tmp_.Join("spill"));
  o_.tmp_dir = tmp_.Join("spill");
  o_.hidden = 256;  // activations of 6 MiB: more than evaluation gets below
  o_.layers = 3;    // a 256 -> 256 layer (layer 0 aggregates its narrower features first, its store is narrow)
  o_.mem_budget = 1ull << 30;
  const auto threads = static_cast<uint32_t>(std::min(2, tbb::this_task_arena::max_concurrency()));
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
  Result<MemoryPlan> roomy = PlanMemory(dir_->manifest(), o_, threads);
  ASSERT_TRUE(roomy.ok()) << roomy.status().ToString();
  o_.mem_budget = std::max(roomy->train_bytes, roomy->runtime_bytes + roomy->compute_bytes + roomy->eval.min_bytes);
  Result<MemoryPlan> want = PlanMemory(dir_->manifest(), o_, threads);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  ASSERT_TRUE(want->eval.spill);

  Gcn model(ModelConfig(dir_->manifest(), o_), 1);
  std::vector<std::string> plans;
  std::vector<bool> dropping;
  TrainCallbacks cb;
  cb.on_plan = [&](const MemoryPlan& p) { plans.push_back(p.Describe()); };
  cb.on_epoch = [&](const EpochRecord& r) {
    dropping.push_back(dir_->drop_page_cache());
    EXPECT_EQ(plans.size(), 1u) << "the plan comes before the first epoch";
    if (r.evaluated) {
      EXPECT_TRUE(r.eval_stats.plan.spill);
      EXPECT_EQ(r.eval_stats.plan.peak_bytes, want->eval.peak_bytes);
      EXPECT_GT(r.eval_stats.spill_read_bytes, 0u);
    }
  };
  Result<TrainReport> r = Train(*dir_, o_, model, cb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->plan.has_value());
  EXPECT_EQ(r->plan->Describe(), want->Describe());
  EXPECT_EQ(plans, std::vector<std::string>{want->Describe()});
  EXPECT_EQ(dropping, (std::vector<bool>{true, true}));
  EXPECT_FALSE(dir_->drop_page_cache());
  EXPECT_TRUE(r->final_eval.plan.spill);
  EXPECT_TRUE(fs::is_empty(tmp_.Join("spill")));

  // A spill directory that does not exist stops the run before it trains.
  o_.tmp_dir = tmp_.Join("no-such-dir");
  int epochs = 0;
  TrainCallbacks count;
  count.on_epoch = [&](const EpochRecord&) { ++epochs; };
  Result<TrainReport> missing = Train(*dir_, o_, model, count);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().ToString(),
            "I/O error: --tmp-dir " + o_.tmp_dir + ": directory " + o_.tmp_dir + " does not exist");
  EXPECT_EQ(epochs, 0);
}

// --gemm holds for the run alone: the summary names it, and the process's backend is back after.
TEST_F(TrainLibrary, RunTrainingUsesItsGemmBackendForTheRunOnly) {
  TrainRunOptions run;
  run.shards_dir = tmp_.Join("shards");
  run.train = o_;
  run.threads = 1;
  const DenseBackendConfig before = GetDenseBackend();
  for (DenseBackend b : {DenseBackend::kEigen, DenseBackend::kOneDnn}) {
    run.gemm = b;
    Result<TrainRunReport> r = RunTraining(run, {});
    if (b == DenseBackend::kOneDnn && !OneDnnAvailable()) {
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.status().message().find("--gemm onednn: this build of cgcn has no oneDNN"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(nlohmann::json::parse(r->summary_json)["gemm"], DenseBackendName(b));
    EXPECT_EQ(GetDenseBackend().backend, before.backend);
  }
}

// --compute bf16 runs where the CPU has AVX512_BF16: the summary names it, its losses are near
// f32's but not equal (the products do take bf16 operands: hidden 64 puts them above oneDNN's
// threshold), and the process is back to f32 after. Elsewhere it is refused before training.
TEST_F(TrainLibrary, RunTrainingWithBf16ComputeOrARefusal) {
  TrainRunOptions run;
  run.shards_dir = tmp_.Join("shards");
  run.train = o_;
  run.train.hidden = 64;
  run.train.layers = 3;
  run.train.epochs = 3;
  run.threads = 1;
  std::vector<std::vector<double>> losses(2);
  for (DenseCompute c : {DenseCompute::kF32, DenseCompute::kBf16}) {
    run.compute = c;
    TrainRunCallbacks cb;
    cb.on_epoch = [&](const EpochRecord& e) { losses[c == DenseCompute::kBf16].push_back(e.loss); };
    Result<TrainRunReport> r = RunTraining(run, cb);
    if (c == DenseCompute::kBf16 && !(OneDnnAvailable() && CpuSupportsBf16())) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().message(), CheckDenseBackend(DenseBackend::kOneDnn, DenseCompute::kBf16).message());
      EXPECT_TRUE(losses[1].empty());
      return;
    }
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(nlohmann::json::parse(r->summary_json)["compute"], DenseComputeName(c));
    EXPECT_EQ(GetDenseBackend().compute, DenseCompute::kF32);
  }
  ASSERT_EQ(losses[0].size(), 3u);
  ASSERT_EQ(losses[1].size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NE(losses[0][e], losses[1][e]) << "epoch " << e;
    EXPECT_NEAR(losses[1][e], losses[0][e], 0.02 * losses[0][e]) << "epoch " << e;
  }
}

// RunTraining does what cgcn-train does: outputs, metrics records and the summary, built in the
// library.
TEST_F(TrainLibrary, RunTrainingWritesEveryOutputAndTheSummary) {
  TrainRunOptions run;
  run.shards_dir = tmp_.Join("shards");
  run.train = o_;
  run.train.eval_every = 1;
  run.metrics_out = tmp_.Join("m.jsonl");
  run.log_steps = true;
  run.save_model = tmp_.Join("model.bin");
  run.predict_out = tmp_.Join("pred.csv");
  run.threads = 1;
  int started = 0, epochs = 0;
  TrainRunCallbacks cb;
  cb.on_start = [&](const Manifest& m, uint32_t threads) {
    ++started;
    EXPECT_EQ(m.num_nodes, 3000u);
    EXPECT_EQ(threads, 1u);
  };
  cb.on_epoch = [&](const EpochRecord&) { ++epochs; };
  Result<TrainRunReport> r = RunTraining(run, cb);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(started, 1);
  EXPECT_EQ(epochs, 2);
  EXPECT_TRUE(r->errors.empty());
  EXPECT_TRUE(r->model_written);
  EXPECT_TRUE(r->predictions_written);
  const auto j = nlohmann::json::parse(r->summary_json);
  for (const char* key : {"train_acc",
                          "valid_acc",
                          "test_acc",
                          "epochs",
                          "final_epoch",
                          "mean_epoch_s",
                          "best_epoch",
                          "best_valid_acc",
                          "test_acc_at_best_valid",
                          "decode_gb_per_s",
                          "decode_gb_per_core_s",
                          "input_wait_s",
                          "decode_s",
                          "decode_cpu_s",
                          "assemble_s",
                          "compute_s",
                          "eval_s",
                          "peak_rss_mb",
                          "threads",
                          "gemm"})
    EXPECT_TRUE(j.contains(key)) << key << " missing from " << j.dump();
  EXPECT_EQ(j["gemm"], DenseBackendName(DefaultDenseBackend()));
  EXPECT_FALSE(j.contains("errors"));
  EXPECT_FALSE(j.contains("resumed_from"));
  EXPECT_EQ(j["epochs"], 2);
  EXPECT_EQ(j["test_acc"], r->train.final_acc.test);
  double eval_sum = 0;
  for (const EpochRecord& e : r->train.epochs) eval_sum += e.eval_s;
  EXPECT_DOUBLE_EQ(j["eval_s"].get<double>(), eval_sum);
  // The last evaluation's phases: one entry per layer, and they add up to no more than its time.
  const auto& phases = j["final_eval_phases"];
  ASSERT_EQ(phases["layers"].size(), run.train.layers);
  double phase_sum = phases["pass0_s"].get<double>();
  EXPECT_GT(phase_sum, 0.0);
  for (const auto& p : phases["layers"])
    for (const char* k : {"load_s", "sum_s", "finish_s"}) {
      EXPECT_GE(p[k].get<double>(), 0.0) << k;
      phase_sum += p[k].get<double>();
    }
  EXPECT_LE(phase_sum, r->train.epochs.back().eval_s);
  int epoch_records = 0, step_records = 0;
  std::ifstream m(run.metrics_out);
  for (std::string line; std::getline(m, line);) {
    const auto rec = nlohmann::json::parse(line);
    epoch_records += rec.contains("epoch_s");
    step_records += rec.contains("step");
  }
  EXPECT_EQ(epoch_records, 2);
  EXPECT_EQ(step_records, 2 * 4);  // 12 clusters, q = 3
  FeatureNorm norm;
  Result<Gcn> loaded = LoadModel(run.save_model, &norm);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(testutil::ReadFile(run.predict_out).substr(0, 14), "node_id,label\n");
}

// The sizes memory plans add up are stated by the structures themselves; check them against
// the real thing.
TEST_F(TrainLibrary, StructuresStateTheirOwnSizes) {
  const GcnConfig cfg = ModelConfig(dir_->manifest(), o_);
  Gcn model(cfg, 1);
  EXPECT_EQ(Gcn::ParamCount(cfg), model.params().size());
  EXPECT_EQ(Gcn::PlannedBytes(cfg), (model.params().size() + model.grads().size()) * sizeof(float));
  EXPECT_EQ(Adam::PlannedBytes(model.params().size()), 2 * model.params().size() * sizeof(float));

  // An assembled batch holds what Batch::PlannedBytes says, but for the one extra offset and
  // the cluster list.
  std::vector<ClusterData> decoded(3);
  std::vector<ClusterView> views;
  ShardDecoder decoder;
  for (uint32_t c = 0; c < 3; ++c) {
    ASSERT_TRUE(dir_->Load(c, kAllSections, decoder, decoded[c]).ok());
    views.push_back(decoded[c]);
  }
  Batch b;
  AssembleBatch(views, FeatureNorm::Row(), b);
  auto bytes = [](const auto& v) { return v.size() * sizeof(v[0]); };
  const uint64_t actual = bytes(b.offsets) + bytes(b.columns) + bytes(b.weights) + bytes(b.self_weights) +
                          bytes(b.features) + bytes(b.labels) + bytes(b.train_mask) + bytes(b.node_ids);
  EXPECT_EQ(actual, Batch::PlannedBytes(b.num_nodes, b.columns.size(), b.feat_dim) + sizeof(uint32_t));
}

}  // namespace
}  // namespace cgcn
