// cgcn-preprocess under hostile conditions, run as the real binary:
//  - SIGKILL at seeded random moments spread over a run: the output path must be either
//    absent or a complete shard directory that verifies, never a partial one; a rerun
//    must succeed and clean up what the killed run left behind.
//  - a full disk (a tiny tmpfs): a clear error naming the file, and nothing left behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cgcn/dump.h"
#include "cgcn/manifest.h"
#include "cgcn/shard_directory.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "testutil/tool_runner.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using Clock = std::chrono::steady_clock;
using testutil::Compression;
using testutil::TempDir;

// ---------------------------------------------------------------------------------
// Running cgcn-preprocess as a child process

using testutil::Child;
using testutil::RunTool;
using testutil::ToolRun;

// Names in `parent` that are `base` or start with `base` + ".": the output, its marked
// temporaries "base.cgcn-tmp.<token>" and its lock file "base.cgcn-lock".
std::vector<std::string> OutputAndSiblings(const std::string& parent, const std::string& base) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(parent)) {
    const std::string name = e.path().filename().string();
    if (name == base || name.rfind(base + ".", 0) == 0) found.push_back(name);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Ok if `dir` opens as a shard directory and passes cgcn-dump --verify.
Status VerifyShardDirectory(const std::string& dir) {
  Result<ShardDirectory> d = ShardDirectory::Open(dir);
  if (!d.ok()) return d.status();
  std::ostringstream report;
  return Dump(DumpOptions{dir, std::nullopt, true, false, 20, ""}, report);
}

// ---------------------------------------------------------------------------------
// SIGKILL at random moments

// cgcn-preprocess prints this progress line on stderr just before it starts writing shards.
constexpr char kWritePhase[] = "[4/4] writing shards";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Polls (every millisecond) until `child`'s stderr, captured in `stderr_path`, shows the
// write phase; false (and the wait status in *status) if the child exits first.
bool WaitForWritePhase(Child& child, const std::string& stderr_path, int* status) {
  for (;;) {
    if (testutil::ReadFile(stderr_path).find(kWritePhase) != std::string::npos) return true;
    if (child.TryWait(status)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(CrashTest, SigkillNeverLeavesAPartialOutput) {
  // Moments: kBeforeWrite spread over reading/symmetrizing/partitioning (timed from the
  // start), kDuringWrite spread over writing the shards and exiting (timed from the moment
  // the tool announces that phase, so machine load does not push them out of it).
  constexpr int kBeforeWrite = 7, kDuringWrite = 8, kTrials = kBeforeWrite + kDuringWrite;
  uint64_t seed = 20240611;
  if (const char* s = std::getenv("CGCN_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::mt19937_64 rng(seed);
  std::cout << "[          ] seed " << seed << " (set CGCN_CRASH_SEED to replay)\n";

  TempDir tmp("cgcn-crash");
  const std::string raw = tmp.Join("raw"), scratch = tmp.Join("scratch"), work = tmp.Join("work");
  fs::create_directories(scratch);
  fs::create_directories(work);
  testutil::WriteRawDataset(raw, testutil::RandomRawDataset(20000, 100000, 32, 4, 7), Compression::kPlain);
  const std::string out = work + "/shards";
  const std::string child_out = scratch + "/child.stdout", child_err = scratch + "/child.stderr";
  // Not --quiet: the progress lines on stderr announce the write phase.
  const std::vector<std::string> base_args = {"--input", raw, "--out", out, "--parts", "16", "--threads", "2"};

  // Two uninterrupted runs. The faster one times the phases; the MANIFEST is what every
  // published directory must hold (a run is deterministic for a seed and thread count).
  double before_write_s = 1e9, write_s = 1e9;
  std::string ref_manifest;
  for (int i = 0; i < 2; ++i) {
    Child child;
    const auto t0 = Clock::now();
    ASSERT_TRUE(child.Start("cgcn-preprocess", base_args, child_out, child_err));
    int status = 0;
    ASSERT_TRUE(WaitForWritePhase(child, child_err, &status)) << testutil::ReadFile(child_err);
    const auto t_write = Clock::now();
    status = child.Wait();
    const auto t_end = Clock::now();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testutil::ReadFile(child_err);
    before_write_s = std::min(before_write_s, Seconds(t_write - t0));
    write_s = std::min(write_s, Seconds(t_end - t_write));
    ASSERT_TRUE(VerifyShardDirectory(out).ok());
    const std::string manifest = testutil::ReadFile(out + "/" + kManifestFileName);
    if (i > 0) {
      ASSERT_EQ(manifest, ref_manifest) << "two uninterrupted runs differ";
    }
    ref_manifest = manifest;
    fs::remove_all(out);
  }
  std::cout << "[          ] uninterrupted run: " << before_write_s << " s before the write phase, " << write_s
            << " s writing\n";

  int before_publish = 0, after_publish = 0, finished = 0, partial = 0, with_temporary = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const bool in_write = trial >= kBeforeWrite;
    const double delay_s =
        in_write ? write_s * (trial - kBeforeWrite + u) / kDuringWrite : before_write_s * (trial + u) / kBeforeWrite;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": kill " + std::to_string(delay_s) + " s after " +
                 (in_write ? "the write phase began" : "the start"));

    Child child;
    ASSERT_TRUE(child.Start("cgcn-preprocess", base_args, child_out, child_err));
    int status = 0;
    bool exited = in_write && !WaitForWritePhase(child, child_err, &status);
    if (!exited) {
      std::this_thread::sleep_for(std::chrono::duration<double>(delay_s));
      child.Kill();
      status = child.Wait();
    }
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!killed) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "status " << status << ": " << testutil::ReadFile(child_err);
      ++finished;
    }

    // The output is absent or complete; only a temporary the next run can prove dead (its marker,
    // or, killed between the marker's removal and the rename, the lock file naming it) and the
    // lock file may remain.
    const std::string lock_text =
        fs::exists(work + "/shards.cgcn-lock") ? testutil::ReadFile(work + "/shards.cgcn-lock") : "";
    for (const std::string& name : OutputAndSiblings(work, "shards")) {
      if (name.rfind("shards.cgcn-tmp.", 0) == 0) {
        ++with_temporary;
        const std::string token = name.substr(std::string("shards.cgcn-tmp.").size());
        EXPECT_TRUE(fs::exists(work + "/" + name + "/.cgcn-temporary") || fs::exists(out) ||
                    lock_text.find("\ntemp " + token + "\n") != std::string::npos)
            << name << " has no marker, nothing was published, and the lock file does not name it: " << lock_text;
      } else {
        EXPECT_TRUE(name == "shards" || name == "shards.cgcn-lock") << "unexpected " << name;
      }
    }
    const bool published = fs::exists(out);
    if (published) {
      if (killed) ++after_publish;
      Status s = VerifyShardDirectory(out);
      if (!s.ok() || testutil::ReadFile(out + "/" + kManifestFileName) != ref_manifest) {
        ++partial;
        ADD_FAILURE() << "partial output after the kill: " << s.ToString();
      }
    } else {
      EXPECT_TRUE(killed);
      ++before_publish;
    }

    // Rerun: plain if nothing was published, --overwrite otherwise.
    std::vector<std::string> args = base_args;
    if (published) args.push_back("--overwrite");
    ToolRun again = RunTool("cgcn-preprocess", args, scratch);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    Status s = VerifyShardDirectory(out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(testutil::ReadFile(out + "/" + kManifestFileName), ref_manifest);
    // The rerun removed the killed run's temporary (its marker proves it, and no one holds it)
    // and its own lock file.
    EXPECT_EQ(OutputAndSiblings(work, "shards"), std::vector<std::string>{"shards"});
    fs::remove_all(out);
  }
  std::cout << "[          ] " << kTrials << " kills: " << before_publish << " before publish (" << with_temporary
            << " of them left a temporary), " << after_publish << " after publish, " << finished
            << " found the run finished; partial outputs: " << partial << "\n";
  RecordProperty("kills_before_publish", before_publish);
  RecordProperty("kills_after_publish", after_publish);
  RecordProperty("runs_finished_before_kill", finished);
  RecordProperty("kills_leaving_temporary", with_temporary);
  RecordProperty("partial_outputs", partial);
  EXPECT_EQ(partial, 0);
  EXPECT_EQ(before_publish + after_publish + finished, kTrials);
  // Not an assertion: exactly where a kill lands depends on the machine's load.
  if (with_temporary == 0) std::cout << "[          ] note: no kill landed while shards were written\n";
}

// ---------------------------------------------------------------------------------
// A full disk

using testutil::TmpfsMount;

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

TEST(CrashTest, FullDiskFailsCleanly) {
  TempDir tmp("cgcn-diskfull");
  const std::string raw = tmp.Join("raw"), mnt = tmp.Join("small");
  // Noisy float features hardly compress: the shards exceed 256 KiB (checked below).
  testutil::WriteRawDataset(raw, testutil::RandomRawDataset(3000, 12000, 64, 4, 5), Compression::kPlain);

  // 256k fills up while the input is streamed into the scratch files; 1200k holds the scratch
  // files (~0.9 MiB) but not them and the shards together.
  std::vector<std::string> failed_on;
  for (const char* size : {"256k", "1200k"}) {
    TmpfsMount small(mnt, size);
    if (!small.mounted()) {
      GTEST_SKIP() << "cannot mount a tmpfs on " << mnt << " (" << std::strerror(small.error())
                   << "); this test needs root";
    }
    const std::string out = mnt + "/shards";
    ToolRun run = RunTool("cgcn-preprocess", {"--input", raw, "--out", out, "--parts", "4", "--quiet"}, tmp.path());
    EXPECT_EQ(run.exit_code, 3) << run.out << run.err;
    const std::regex expected(
        "cgcn-preprocess: error: I/O error: " + mnt +
        "/shards\\.cgcn-tmp\\.[0-9a-f]{16}/(shard-[0-9]{6}\\.cgs|MANIFEST|scratch/[a-z]+\\.(u32|f32)): "
        "(write failed at byte [0-9]+|fsync failed|close failed): No space left on device\n");
    EXPECT_TRUE(std::regex_match(run.err, expected)) << run.err;
    failed_on.push_back(run.err.find("/scratch/") != std::string::npos ? "scratch" : "shards");
    std::cout << "[          ] " << size << ": " << run.err;
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(mnt)) left.push_back(e.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{}) << "left in the full file system";
  }  // unmounted here, whatever happened above
  EXPECT_EQ(failed_on, (std::vector<std::string>{"scratch", "shards"}));

  // The same run with room to spare succeeds, and its shards do exceed the small mount.
  const std::string big = tmp.Join("big");
  TmpfsMount roomy(big, "64m");
  ASSERT_TRUE(roomy.mounted()) << std::strerror(roomy.error());
  ToolRun ok =
      RunTool("cgcn-preprocess", {"--input", raw, "--out", big + "/shards", "--parts", "4", "--quiet"}, tmp.path());
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_GT(TreeBytes(big + "/shards"), uint64_t{256} << 10);
  EXPECT_TRUE(VerifyShardDirectory(big + "/shards").ok());
}

}  // namespace
}  // namespace cgcn
