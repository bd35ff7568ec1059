// Never destroy or lose what the user has (docs/RELIABILITY.md, "Never destroy what the user
// has"): the real tools, run as a careless user would, against directories and files cgcn did
// not make. Each test failed on the code before these rules (issue 10).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cgcn/manifest.h"
#include "cgcn/shard_directory.h"
#include "cgcn/synth.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "testutil/tool_runner.h"
#include "util/file_util.h"
#include "util/output_dir.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::Compression;
using testutil::RunTool;
using testutil::TempDir;
using testutil::ToolRun;

// Every file below `dir` with its content, to show a tree is untouched.
std::vector<std::pair<std::string, std::string>> Snapshot(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    all.emplace_back(fs::relative(e.path(), dir).string(),
                     e.is_regular_file() ? testutil::ReadFile(e.path().string()) : std::string("<dir>"));
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A directory of the user's own: files and a subfolder.
void MakeUserDirectory(const std::string& dir) {
  testutil::WriteFile(dir + "/notes.txt", "my notes\n");
  testutil::WriteFile(dir + "/results/run1.csv", "1,2,3\n");
}

class Preprocess : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = tmp_.Join("raw");
    testutil::WriteTinyRawDataset(raw_, Compression::kPlain);
  }
  ToolRun Run(std::vector<std::string> args) {
    std::vector<std::string> all = {"--input", raw_, "--quiet"};
    all.insert(all.end(), args.begin(), args.end());
    if (std::find(args.begin(), args.end(), "--parts") == args.end()) all.insert(all.end(), {"--parts", "2"});
    return RunTool("cgcn-preprocess", all, tmp_.path(), 120);
  }
  TempDir tmp_{"cgcn-safety"};
  std::string raw_;
};

TEST_F(Preprocess, OverwriteRefusesADirectoryOfTheUsersOwn) {
  const std::string out = tmp_.Join("mine");
  MakeUserDirectory(out);
  const auto before = Snapshot(out);
  const ToolRun r = Run({"--out", out, "--overwrite"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "cgcn-preprocess: error: invalid argument: --overwrite refused: " + out +
                       " is not a shard directory cgcn wrote (it holds 'notes.txt', which cgcn does not write); "
                       "nothing was changed\n");
  EXPECT_EQ(Snapshot(out), before);
  EXPECT_EQ(Names(tmp_.path()), (std::vector<std::string>{"mine", "raw"}));
}

TEST_F(Preprocess, OverwriteReplacesAShardDirectory) {
  const std::string out = tmp_.Join("shards");
  ASSERT_EQ(Run({"--out", out}).exit_code, 0);
  const ToolRun r = Run({"--out", out, "--overwrite", "--seed", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->manifest().seed, 7);
  EXPECT_EQ(Names(tmp_.path()), (std::vector<std::string>{"raw", "shards"}));  // no lock, no temporary
}

TEST_F(Preprocess, OutputThatIsContainsOrLiesInsideTheInputIsRefused) {
  const auto before = Snapshot(raw_);
  struct Case {
    std::string out, says;
  };
  for (const Case& c : {Case{raw_, "is the input directory"}, Case{raw_ + "/", "is the input directory"},
                        Case{raw_ + "/raw/shards", "lies inside the input directory"},
                        Case{raw_ + "/../raw/split/x", "lies inside the input directory"},
                        Case{tmp_.path(), "contains the input directory"}}) {
    const ToolRun r = Run({"--out", c.out, "--overwrite"});
    EXPECT_EQ(r.exit_code, 2) << c.out << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.out << ": " << r.err;
    EXPECT_EQ(Snapshot(raw_), before) << "the input changed with --out " << c.out;
  }
  EXPECT_EQ(Names(tmp_.path()), (std::vector<std::string>{"raw"}));
}

TEST_F(Preprocess, SymlinkedOutIsFollowedAndKept) {
  const std::string real = tmp_.Join("disk/shards"), link = tmp_.Join("shards");
  ASSERT_EQ(Run({"--out", real}).exit_code, 0);
  fs::create_symlink(real, link);
  const ToolRun r = Run({"--out", link, "--overwrite", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), real);
  Result<ShardDirectory> d = ShardDirectory::Open(real);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->manifest().seed, 3);
  EXPECT_EQ(Names(tmp_.Join("disk")), (std::vector<std::string>{"shards"}));
  // A dangling link is refused and left as it is.
  const std::string dangling = tmp_.Join("nowhere");
  fs::create_symlink(tmp_.Join("missing/dir"), dangling);
  const ToolRun bad = Run({"--out", dangling});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("is a symbolic link to"), std::string::npos) << bad.err;
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_FALSE(fs::exists(tmp_.Join("missing")));
}

TEST_F(Preprocess, UsersSiblingsWithLookalikeNamesAreLeftAlone) {
  const std::string out = tmp_.Join("shards");
  // A backup and lookalikes of the old temporary names (dead pids), and an unmarked lookalike of
  // the new one: none carries proof that cgcn made it.
  for (const char* name :
       {"shards.old-20240101", "shards.tmp-999999", "shards.old-999999", "shards.cgcn-tmp.0123456789abcdef"})
    MakeUserDirectory(tmp_.Join(name));
  const auto before = Snapshot(tmp_.path());
  ASSERT_EQ(Run({"--out", out}).exit_code, 0);
  ASSERT_EQ(Run({"--out", out, "--overwrite"}).exit_code, 0);
  auto after = Snapshot(tmp_.path());
  std::erase_if(after, [](const auto& e) { return e.first.rfind("shards/", 0) == 0 || e.first == "shards"; });
  EXPECT_EQ(after, before);
}

TEST(StagedDirectory, KilledRunsMarkedTemporaryIsRemovedOnlyWithProofAndWhenNoOneHoldsIt) {
  TempDir tmp("cgcn-staged");
  const std::string out = tmp.Join("out");
  OutputDirOptions o;
  o.path = out;
  std::string dead_temp, live_temp;
  {
    Result<StagedDirectory> a = StagedDirectory::Create(o);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    dead_temp = a->temp_dir();
    // Simulate a killed process: keep the directory, drop the lock, as SIGKILL would.
    fs::copy(dead_temp, dead_temp + ".copy", fs::copy_options::recursive);
  }
  fs::rename(dead_temp + ".copy", dead_temp);
  testutil::WriteFile(dead_temp + "/shard-000000.cgs", "half written");
  ASSERT_TRUE(fs::exists(dead_temp + "/.cgcn-temporary"));
  // A live run's temporary: its marker is locked by a process that is still running (us).
  OutputDirOptions other;
  other.path = tmp.Join("other");
  Result<StagedDirectory> live = StagedDirectory::Create(other);
  ASSERT_TRUE(live.ok());
  live_temp = tmp.Join("out") + live->temp_dir().substr(tmp.Join("other").size());
  fs::copy(live->temp_dir(), live_temp, fs::copy_options::recursive);
  const int held = ::open((live_temp + "/.cgcn-temporary").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  {
    Result<StagedDirectory> b = StagedDirectory::Create(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_FALSE(fs::exists(dead_temp)) << "the dead run's marked temporary stays";
    EXPECT_TRUE(fs::exists(live_temp)) << "a held temporary was removed";
  }
  ::close(held);
}

// A run killed at each step of publishing (SIGKILL, in a child process) leaves a temporary
// without its marker; the next run proves it by the token the dead run's lock file recorded.
// Without that record such a temporary stayed for ever (CI, stop 19: a kill between the marker's
// removal and the rename).
TEST(StagedDirectory, RunKilledWhilePublishingLeavesATemporaryTheNextRunRemoves) {
  // Accepts a directory holding only MANIFEST and data files (as cgcn's shard check does).
  const auto replaceable = [](const std::string& dir) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (n != "MANIFEST" && n != "data") return Status::InvalidArgument("it holds " + n);
    }
    return Status::Ok();
  };
  enum class Step { kBeforeMarker, kBeforeRename, kAfterExchange, kUserFileAdded };
  for (Step step : {Step::kBeforeMarker, Step::kBeforeRename, Step::kAfterExchange, Step::kUserFileAdded}) {
    SCOPED_TRACE(static_cast<int>(step));
    TempDir tmp("cgcn-staged-kill");
    const std::string out = tmp.Join("out");
    if (step == Step::kAfterExchange) testutil::WriteFile(out + "/MANIFEST", "old");
    // A user's lookalike without a marker: never touched.
    MakeUserDirectory(out + ".cgcn-tmp.0123456789abcdef");
    OutputDirOptions o;
    o.path = out;
    o.overwrite = true;
    o.is_replaceable = replaceable;
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the run to be killed: plain system calls only
      Result<StagedDirectory> d = StagedDirectory::Create(o);
      if (!d.ok()) ::_exit(3);
      const std::string temp = d->temp_dir();
      if (::unlink((temp + "/.cgcn-temporary").c_str()) != 0) ::_exit(4);
      if (step != Step::kBeforeMarker) {
        testutil::WriteFile(temp + "/MANIFEST", "new");
        testutil::WriteFile(temp + "/data", "bytes");
      }
      if (step == Step::kUserFileAdded) testutil::WriteFile(temp + "/notes.txt", "the user's, written meanwhile");
      if (step == Step::kAfterExchange &&
          ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) != 0) {
        ::_exit(5);
      }
      ::raise(SIGKILL);
      ::_exit(6);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    std::vector<std::string> left = Names(tmp.path());
    // The lock file, the dead run's temporary, the lookalike and, after the exchange, out.
    ASSERT_EQ(left.size(), step == Step::kAfterExchange ? 4u : 3u) << ::testing::PrintToString(left);
    {
      Result<StagedDirectory> next = StagedDirectory::Create(o);
      ASSERT_TRUE(next.ok()) << next.status().ToString();
      std::vector<std::string> now = Names(tmp.path());
      std::erase(now, fs::path(next->temp_dir()).filename().string());
      std::vector<std::string> expected = {"out.cgcn-lock", "out.cgcn-tmp.0123456789abcdef"};
      if (step == Step::kAfterExchange) expected.insert(expected.begin(), "out");
      if (step == Step::kUserFileAdded) expected = left;  // not recognizably cgcn's: left alone
      EXPECT_EQ(now, expected);
    }
    if (step == Step::kAfterExchange) {
      EXPECT_EQ(testutil::ReadFile(out + "/MANIFEST"), "new");
    }
    EXPECT_EQ(testutil::ReadFile(out + ".cgcn-tmp.0123456789abcdef/notes.txt"), "my notes\n");
  }
}

TEST(StagedDirectory, SecondWriterOfTheSamePathFailsAtOnce) {
  TempDir tmp("cgcn-staged");
  OutputDirOptions o;
  o.path = tmp.Join("out");
  Result<StagedDirectory> first = StagedDirectory::Create(o);
  ASSERT_TRUE(first.ok());
  // The same path spelled differently resolves to the same lock.
  o.path = tmp.Join("./x/../out/");
  Result<StagedDirectory> second = StagedDirectory::Create(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(second.status().message().find("is being written by another cgcn process (pid " +
                                           std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.status().message();
  testutil::WriteFile(first->temp_dir() + "/f", "x");
  ASSERT_TRUE(first->Publish().ok());
  EXPECT_EQ(testutil::ReadFile(tmp.Join("out/f")), "x");
}

TEST(StagedDirectory, PublishRefusesToReplaceWhatAppearedMeanwhile) {
  TempDir tmp("cgcn-staged");
  OutputDirOptions o;
  o.path = tmp.Join("out");
  Result<StagedDirectory> s = StagedDirectory::Create(o);
  ASSERT_TRUE(s.ok());
  MakeUserDirectory(tmp.Join("out"));  // another program made it while we were writing
  const auto before = Snapshot(tmp.Join("out"));
  const Status p = s->Publish();
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.message().find("appeared while this run was writing"), std::string::npos) << p.message();
  EXPECT_EQ(Snapshot(tmp.Join("out")), before);
}

TEST_F(Preprocess, ASecondRunToTheSameOutFailsWhileTheFirstHoldsIt) {
  const std::string out = tmp_.Join("shards");
  OutputDirOptions o;
  o.path = out;
  Result<StagedDirectory> first = StagedDirectory::Create(o);  // stands in for a running cgcn-preprocess
  ASSERT_TRUE(first.ok());
  const ToolRun r = Run({"--out", out});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is being written by another cgcn process (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// SIGINT and SIGTERM: the temporary is removed, then the tool exits with 128 + signal.
TEST(Interrupt, PreprocessRemovesItsTemporaryAndExitsWith128PlusSignal) {
  TempDir tmp("cgcn-interrupt");
  const std::string raw = tmp.Join("raw"), work = tmp.Join("work");
  fs::create_directories(work);
  testutil::WriteRawDataset(raw, testutil::RandomRawDataset(20000, 100000, 32, 4, 7), Compression::kPlain);
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(strsignal(sig));
    testutil::Child child;
    ASSERT_TRUE(child.Start("cgcn-preprocess", {"--input", raw, "--out", work + "/shards", "--parts", "16"},
                            tmp.Join("out.txt"), tmp.Join("err.txt")));
    // Wait until the run is under way: its temporary exists and holds scratch files.
    bool started = false;
    int status = 0;
    for (int i = 0; i < 20000 && !started; ++i) {
      for (const auto& e : fs::directory_iterator(work))
        if (e.path().filename().string().rfind("shards.cgcn-tmp.", 0) == 0 &&
            fs::exists(e.path() / "scratch/edges.u32"))
          started = true;
      if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(started) << testutil::ReadFile(tmp.Join("err.txt"));
    child.Signal(sig);
    status = child.Wait();
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
    if (WEXITSTATUS(status) == 0) {  // the run finished before the signal landed: nothing to check
      fs::remove_all(work + "/shards");
      continue;
    }
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << testutil::ReadFile(tmp.Join("err.txt"));
    EXPECT_EQ(Names(work), std::vector<std::string>{}) << testutil::ReadFile(tmp.Join("err.txt"));
    EXPECT_NE(testutil::ReadFile(tmp.Join("err.txt")).find("interrupted by"), std::string::npos);
  }
}

TEST(Synth, OverwriteReplacesOnlyWhatCgcnSynthMade) {
  TempDir tmp("cgcn-synth-safety");
  const std::string mine = tmp.Join("mine"), made = tmp.Join("made");
  MakeUserDirectory(mine);
  const auto before = Snapshot(mine);
  const std::vector<std::string> args = {"--nodes",   "300", "--avg-degree", "4",          "--features", "4",
                                         "--classes", "3",   "--quiet",      "--overwrite"};
  std::vector<std::string> a = args;
  a.insert(a.end(), {"--out", mine});
  const ToolRun r = RunTool("cgcn-synth", a, tmp.path(), 120);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a raw directory cgcn wrote (it holds"), std::string::npos) << r.err;
  EXPECT_EQ(Snapshot(mine), before);
  a = args;
  a.insert(a.end(), {"--out", made});
  ASSERT_EQ(RunTool("cgcn-synth", a, tmp.path(), 120).exit_code, 0);
  EXPECT_TRUE(fs::exists(made + "/" + kSynthMarkerName));
  const ToolRun again = RunTool("cgcn-synth", a, tmp.path(), 120);  // --overwrite of its own output
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST(Synth, MemBudgetFlagIsParsedAndChecked) {
  TempDir tmp("cgcn-synth-budget");
  const std::vector<std::string> args = {"--nodes",   "3000", "--avg-degree", "8",     "--features", "4",
                                         "--classes", "3",    "--quiet",      "--out", tmp.Join("g")};
  std::vector<std::string> a = args;
  a.insert(a.end(), {"--mem-budget", "12Q"});
  ToolRun r = RunTool("cgcn-synth", a, tmp.path(), 120);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--mem-budget: '12Q' is not a memory size"), std::string::npos) << r.err;
  a = args;
  a.insert(a.end(), {"--mem-budget", "1M"});  // 3000 nodes take 117.2 KiB, plus the 4 MiB working set
  r = RunTool("cgcn-synth", a, tmp.path(), 120);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--mem-budget 1.0 MiB (1048576 bytes) is too small"), std::string::npos) << r.err;
  EXPECT_TRUE(Snapshot(tmp.path()).empty());
  a = args;
  a.insert(a.end(), {"--mem-budget", "5M"});
  r = RunTool("cgcn-synth", a, tmp.path(), 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"mem_budget\":5242880"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"scratch_bytes\":"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp.Join("g/scratch")));
}

TEST(WriteFileAtomic, LeavesEveryOtherFileAloneAndFollowsLinks) {
  TempDir tmp("cgcn-atomic");
  const std::string path = tmp.Join("model.cgcn");
  // Lookalikes of the old temporaries, with dead pids: a user's files now.
  testutil::WriteFile(path + ".tmp-999999", "user's file");
  testutil::WriteFile(path + ".tmp-20240101", "user's backup");
  const std::string bytes = "model bytes";
  const auto span = std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
  ASSERT_TRUE(WriteFileAtomic(path, span).ok());
  EXPECT_EQ(testutil::ReadFile(path), bytes);
  EXPECT_EQ(Names(tmp.path()),
            (std::vector<std::string>{"model.cgcn", "model.cgcn.tmp-20240101", "model.cgcn.tmp-999999"}));
  // A link is followed: the file it points to is replaced, the link stays.
  testutil::WriteFile(tmp.Join("real/target.cgcn"), "old");
  fs::create_symlink(tmp.Join("real/target.cgcn"), tmp.Join("link.cgcn"));
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("link.cgcn"), span).ok());
  EXPECT_TRUE(fs::is_symlink(tmp.Join("link.cgcn")));
  EXPECT_EQ(testutil::ReadFile(tmp.Join("real/target.cgcn")), bytes);
  // A directory is refused.
  fs::create_directories(tmp.Join("adir"));
  EXPECT_FALSE(WriteFileAtomic(tmp.Join("adir"), span).ok());
}

// A process killed between linking its new file and renaming it over the target leaves
// "<file>.cgcn-tmp.<token>"; the next write of the same file removes it, because the token is the
// file's own device, inode and size and no one holds its lock. A live writer's temporary and a
// user's lookalike stay.
TEST(WriteFileAtomic, NextWriteRemovesADeadWritersLinkedTemporaryOnly) {
  TempDir tmp("cgcn-atomic-dead");
  const std::string path = tmp.Join("checkpoint.cgcn");
  testutil::WriteFile(path, "old");
  testutil::WriteFile(path + ".cgcn-tmp.0123456789abcdef", "user's lookalike");
  // Two linked temporaries made as WriteFileAtomic makes them: one whose writer died (its fd is
  // closed), one whose writer lives (fd open, lock held).
  auto link_temporary = [&](const std::string& content) {
    const int fd = ::open(tmp.path().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    EXPECT_EQ(::flock(fd, LOCK_EX), 0);
    const std::string name = LinkedTemporaryPath(path, fd);
    EXPECT_EQ(
        ::linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(fd)).c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW),
        0);
    return std::make_pair(fd, name);
  };
  const auto [dead_fd, dead] = link_temporary("killed writer");
  ::close(dead_fd);
  const auto [live_fd, live] = link_temporary("live writer");
  ASSERT_NE(dead, live);
  // A user's copy under the dead one's name pattern but another inode: no proof.
  const std::string copied = tmp.Join("other.cgcn");
  testutil::WriteFile(copied, "x");
  const std::string bytes = "new";
  const auto span = std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
  ASSERT_TRUE(WriteFileAtomic(path, span).ok());
  EXPECT_EQ(testutil::ReadFile(path), bytes);
  EXPECT_FALSE(fs::exists(dead)) << "the dead writer's temporary stays";
  EXPECT_TRUE(fs::exists(live)) << "a live writer's temporary was removed";
  EXPECT_EQ(testutil::ReadFile(path + ".cgcn-tmp.0123456789abcdef"), "user's lookalike");
  ::close(live_fd);
  // Renamed copy of a proven name onto another file: its inode does not match, it stays.
  fs::rename(copied, dead);
  ASSERT_TRUE(WriteFileAtomic(path, span).ok());
  EXPECT_TRUE(fs::exists(dead));
  // The live writer died meanwhile: now its temporary goes.
  EXPECT_FALSE(fs::exists(live));
  // A fresh file is linked in place directly, with no temporary name at any time.
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("fresh.cgcn"), span).ok());
  EXPECT_EQ(testutil::ReadFile(tmp.Join("fresh.cgcn")), bytes);
}

// One rule for numbers on every tool: sentences, no wrap-around, no NaN.
TEST_F(Preprocess, NumericFlagsFollowOneRule) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string out = tmp_.Join("shards");
  for (const Case& c :
       {Case{{"--seed", "4294967298"}, "--seed must be from 0 to 2147483647, found 4294967298"},
        Case{{"--seed", "-1"}, "--seed must be from 0 to 2147483647, found -1"},
        Case{{"--parts", "0"}, "--parts must be from 1 to 16777216, found 0"},
        Case{{"--zstd-level", "abc"},
             "--zstd-level must be a whole number from -2147483648 to 2147483647, found 'abc'"},
        Case{{"--min-compression-ratio", "nan"}, "--min-compression-ratio must be a finite number, found nan"},
        Case{{"--mem-budget", "0.5"}, "'0.5' is less than one byte"},
        Case{{"--threads", "5000"}, "--threads must be from 0 to 1024, found 5000"}}) {
    std::vector<std::string> args = {"--out", out};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const ToolRun r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(Preprocess, QuietPrintsOnlyTheJsonLine) {
  const ToolRun r = Run({"--out", tmp_.Join("shards")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(r.out.rfind("{\"", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"nodes\":6"), std::string::npos) << r.out;
}

TEST(Version, EveryToolSaysWhatItIs) {
  TempDir tmp("cgcn-version");
  for (const char* tool : {"cgcn-preprocess", "cgcn-train", "cgcn-dump", "cgcn-synth"}) {
    const ToolRun r = RunTool(tool, {"--version"}, tmp.path(), 60);
    EXPECT_EQ(r.exit_code, 0) << tool << ": " << r.err;
    EXPECT_EQ(r.out.rfind("cgcn ", 0), 0u) << tool << ": " << r.out;
    for (const char* part : {"commit ", " build", "CPU target -march="})
      EXPECT_NE(r.out.find(part), std::string::npos) << tool << " --version lacks '" << part << "': " << r.out;
  }
}

}  // namespace
}  // namespace cgcn
