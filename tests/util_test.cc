// The low-level helpers: file descriptors and their read/write loops (src/util/fd.h), the
// refusal of anything but a regular file by every reader, and ParallelFor (src/util/parallel.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cgcn/byte_size.h"
#include "cgcn/checkpoint.h"
#include "cgcn/cli.h"
#include "cgcn/mapped_file.h"
#include "cgcn/model_file.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_directory.h"
#include "testutil/testutil.h"
#include "util/fd.h"
#include "util/file_util.h"
#include "util/parallel.h"
#include "util/text_source.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::TempDir;

void MakeFifo(const std::string& path) {
  fs::remove_all(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path << ": " << std::strerror(errno);
}

// Runs fn() on another thread and returns its result. If it has not returned after 20 s it is
// blocked on `fifo` (a blocking open(2) of a FIFO waits for a writer): the test fails, and
// opening and closing the FIFO's write end lets the blocked call return, so it fails rather than
// hangs.
template <typename Fn>
auto WithFifoDeadline(const std::string& fifo, Fn fn) {
  auto result = std::async(std::launch::async, fn);
  if (result.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
    ADD_FAILURE() << "still blocked on the FIFO " << fifo << " after 20 s";
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (w >= 0) ::close(w);
  }
  return result.get();
}

void ExpectIoError(const Status& s, const std::string& want) {
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_EQ(s.message(), want);
}

TEST(Fd, OpenRegularFileForReadSaysWhatAPathIs) {
  TempDir tmp("cgcn-fd");
  const std::string file = tmp.Join("file"), fifo = tmp.Join("fifo"), sock = tmp.Join("sock");
  testutil::WriteFile(file, "12345");
  uint64_t size = 0;
  Result<UniqueFd> f = OpenRegularFileForRead(file, &size);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(size, 5u);
  EXPECT_EQ(::fcntl(f->get(), F_GETFL) & O_NONBLOCK, 0) << "O_NONBLOCK left set";
  EXPECT_NE(::fcntl(f->get(), F_GETFD) & FD_CLOEXEC, 0);

  MakeFifo(fifo);
  ExpectIoError(WithFifoDeadline(fifo, [&] { return OpenRegularFileForRead(fifo).status(); }),
                fifo + ": is a FIFO, not a regular file");
  ExpectIoError(OpenRegularFileForRead(tmp.path()).status(), tmp.path() + ": is a directory, not a regular file");
  ExpectIoError(OpenRegularFileForRead("/dev/null").status(), "/dev/null: is a character device, not a regular file");
  ExpectIoError(OpenRegularFileForRead(tmp.Join("missing")).status(),
                tmp.Join("missing") + ": cannot open: No such file or directory");
  // A socket cannot be opened at all (ENXIO); the message still says what it is.
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ExpectIoError(OpenRegularFileForRead(sock).status(), sock + ": is a socket, not a regular file");
  ::close(s);
}

// Every reader of the library goes through OpenRegularFileForRead: a FIFO is refused, with its
// path, and nothing waits for a writer.
TEST(Fd, ReadersRefuseAFifo) {
  TempDir tmp("cgcn-fd");
  const std::string fifo = tmp.Join("fifo");
  MakeFifo(fifo);
  const std::string want = fifo + ": is a FIFO, not a regular file";
  auto check = [&](const char* reader, auto fn) {
    SCOPED_TRACE(reader);
    const Status s = WithFifoDeadline(fifo, fn);
    EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  check("ReadWholeFile", [&] { return ReadWholeFile(fifo).status(); });
  check("MappedFile::Open", [&] { return MappedFile::Open(fifo).status(); });
  check("TextSource::Open", [&] { return TextSource::Open(fifo).status(); });
  check("LoadModel", [&] { return LoadModel(fifo, nullptr).status(); });
  // Advisory page-cache hints must not block either (they report nothing).
  check("ReadAhead", [&] {
    ReadAhead(fifo);
    DropPageCache(fifo);
    return OpenRegularFileForRead(fifo).status();
  });

  // A checkpoint directory whose checkpoint is a FIFO.
  const std::string ckpt_dir = tmp.Join("ckpt");
  fs::create_directory(ckpt_dir);
  const std::string ckpt = ckpt_dir + "/" + kCheckpointFileName;
  MakeFifo(ckpt);
  {
    const Status s = WithFifoDeadline(ckpt, [&] { return LoadCheckpoint(ckpt_dir).status(); });
    ExpectIoError(s, ckpt + ": is a FIFO, not a regular file");
  }

  // Raw input: the digest (cgcn-preprocess's first read) and the parser, plain and gzip.
  const std::string raw = tmp.Join("raw");
  testutil::WriteTinyRawDataset(raw, testutil::Compression::kPlain);
  for (const char* name : {"raw/edge.csv", "raw/edge.csv.gz"}) {
    fs::remove(raw + "/raw/edge.csv");
    fs::remove(raw + "/raw/edge.csv.gz");
    const std::string edge = raw + "/" + name;
    MakeFifo(edge);
    SCOPED_TRACE(name);
    const Status digest = WithFifoDeadline(edge, [&] { return DigestRawInput(RawReadOptions{raw, ""}).status(); });
    ExpectIoError(digest, edge + ": is a FIFO, not a regular file");
    const Status parse = WithFifoDeadline(edge, [&] { return ReadRawGraph(RawReadOptions{raw, ""}).status(); });
    ExpectIoError(parse, edge + ": is a FIFO, not a regular file");
  }

  // A shard directory whose MANIFEST is a FIFO.
  const std::string shards = tmp.Join("shards");
  fs::create_directory(shards);
  const std::string manifest = shards + "/MANIFEST";
  MakeFifo(manifest);
  ExpectIoError(WithFifoDeadline(manifest, [&] { return ShardDirectory::Open(shards).status(); }),
                manifest + ": is a FIFO, not a regular file");
}

TEST(Fd, WriteAllAndReadExactNameTheFileAndTheByte) {
  TempDir tmp("cgcn-fd");
  const std::string path = tmp.Join("f");
  {
    Result<UniqueFd> w = CreateFileForWrite(path, CreateMode::kExclusive);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE(WriteAll(w->get(), path, "abcdefgh", 8, 0).ok());
    ASSERT_TRUE(w->Close(path).ok());
    EXPECT_FALSE(w->valid());
    ExpectIoError(CreateFileForWrite(path, CreateMode::kExclusive).status(), path + ": cannot create: File exists");
  }
  uint64_t size = 0;
  Result<UniqueFd> r = OpenRegularFileForRead(path, &size);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(size, 8u);
  char buf[16] = {};
  ASSERT_TRUE(ReadExact(r->get(), path, buf, 5, 0).ok());
  EXPECT_EQ(std::string(buf, 5), "abcde");
  ExpectIoError(ReadExact(r->get(), path, buf, 4, 5), path + ": ends at byte 8, expected 4 bytes from byte 5");
  ASSERT_TRUE(PreadExact(r->get(), path, buf, 3, 2).ok());
  EXPECT_EQ(std::string(buf, 3), "cde");
  ExpectIoError(PreadExact(r->get(), path, buf, 4, 6), path + ": ends at byte 8, expected 4 bytes from byte 6");
  Result<size_t> eof = ReadSome(r->get(), path, buf, 4, 8);
  ASSERT_TRUE(eof.ok());
  EXPECT_EQ(*eof, 0u);
  // Writing to a descriptor opened for reading fails with the byte it was at.
  ExpectIoError(WriteAll(r->get(), path, "x", 1, 42), path + ": write failed at byte 42: Bad file descriptor");
}

// A signal handler installed without SA_RESTART makes a blocked read(2) or write(2) fail with
// EINTR (or return what it transferred so far). ReadExact and WriteAll must carry on.
std::atomic<int> g_signals{0};
void CountSignal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

class SignalStorm {
 public:
  // Sends SIGUSR1 to `target` every 2 ms until destroyed.
  explicit SignalStorm(pthread_t target) : target_(target) {
    struct sigaction sa {};
    sa.sa_handler = CountSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    ::sigaction(SIGUSR1, &sa, &old_);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        ::pthread_kill(target_, SIGUSR1);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  ~SignalStorm() {
    stop_ = true;
    thread_.join();
    ::sigaction(SIGUSR1, &old_, nullptr);
  }

 private:
  pthread_t target_;
  struct sigaction old_ {};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Fd, ReadExactAndWriteAllRetryAfterSignals) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd rd(fds[0]), wr(fds[1]);
  SignalStorm storm(::pthread_self());
  // The control: with the storm running, a plain blocked read(2) does fail with EINTR.
  char c;
  errno = 0;
  EXPECT_EQ(::read(rd.get(), &c, 1), -1);
  EXPECT_EQ(errno, EINTR);

  // WriteAll into a full pipe: its first write(2) blocks before transferring anything, so a
  // signal makes it fail with EINTR; a reader thread starts draining only after 30 ms.
  const int flags = ::fcntl(wr.get(), F_GETFL);
  ASSERT_EQ(::fcntl(wr.get(), F_SETFL, flags | O_NONBLOCK), 0);
  size_t prefill = 0;
  for (char block[4096] = {}; ::write(wr.get(), block, sizeof block) > 0;) prefill += sizeof block;
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_EQ(::fcntl(wr.get(), F_SETFL, flags), 0);
  std::vector<char> data(size_t{1} << 18);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::vector<char> got(prefill + data.size());
  std::thread drain([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    size_t done = 0;
    while (done < got.size()) {
      const ssize_t r = ::read(rd.get(), got.data() + done, std::min<size_t>(4096, got.size() - done));
      if (r > 0) done += static_cast<size_t>(r);
      if (r == 0) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  const int before = g_signals.load();
  const Status w = WriteAll(wr.get(), "pipe", data.data(), data.size(), 0);
  ASSERT_TRUE(wr.Close("pipe").ok());  // the drain sees the end even if WriteAll gave up early
  drain.join();
  EXPECT_TRUE(w.ok()) << w.ToString();
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin() + static_cast<std::ptrdiff_t>(prefill)));
  EXPECT_GT(g_signals.load(), before) << "no signal arrived while writing";

  // ReadExact while a writer trickles 8 bytes in 4 pieces.
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  rd = UniqueFd(fds[0]);
  wr = UniqueFd(fds[1]);
  std::thread trickle([&] {
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ASSERT_EQ(::write(wr.get(), "ab", 2), 2);
    }
  });
  char buf[8];
  const Status r = ReadExact(rd.get(), "pipe", buf, sizeof buf, 0);
  trickle.join();
  EXPECT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(std::string(buf, 8), "abababab");
}

// ---------------------------------------------------------------------------------
// ParallelFor

TEST(ParallelFor, RunsEveryIndexOnce) {
  std::vector<std::atomic<int>> hits(1000);
  const Status s = ParallelFor(uint32_t{0}, uint32_t{1000}, "test", [&](uint32_t i) {
    hits[i].fetch_add(1);
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok());
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].load(), 1) << i;
  EXPECT_TRUE(ParallelFor(uint64_t{5}, uint64_t{5}, "empty", [](uint64_t) { return Status::Internal("ran"); }).ok());
}

// The error reported is the lowest failing index's, whatever the thread count and schedule.
TEST(ParallelFor, LowestFailingIndexWins) {
  for (int threads : {1, 2}) {
    for (int round = 0; round < 20; ++round) {
      tbb::task_arena arena(threads);
      const Status s = arena.execute([&] {
        return ParallelFor(size_t{0}, size_t{2000}, "test", [&](size_t i) {
          if (i == 1999 || i == 1200 || i == 37 + static_cast<size_t>(round) * 3)
            return Status::InvalidInput("index " + std::to_string(i));
          return Status::Ok();
        });
      });
      EXPECT_EQ(s.message(), "index " + std::to_string(37 + round * 3)) << threads << " threads, round " << round;
    }
  }
}

// Work after a failure is skipped: on one thread nothing after the failing index runs.
TEST(ParallelFor, SkipsLaterIndicesAfterAFailure) {
  tbb::task_arena one(1);
  std::atomic<int> ran{0};
  const Status s = one.execute([&] {
    return ParallelFor(uint32_t{0}, uint32_t{10000}, "test", [&](uint32_t i) {
      ran.fetch_add(1);
      return i == 10 ? Status::IoError("stop") : Status::Ok();
    });
  });
  EXPECT_EQ(s.message(), "stop");
  EXPECT_EQ(ran.load(), 11);
}

TEST(ParallelFor, ExceptionsBecomeTheIndexStatus) {
  const Status oom = ParallelFor(uint32_t{0}, uint32_t{100}, "building cluster", [](uint32_t i) -> Status {
    if (i == 42) throw std::bad_alloc();
    if (i == 77) throw std::runtime_error("later");
    return Status::Ok();
  });
  EXPECT_EQ(oom.code(), StatusCode::kInternal);
  EXPECT_EQ(oom.message(), "building cluster: out of memory");
  const Status what = ParallelFor(uint32_t{0}, uint32_t{100}, "ctx", [](uint32_t i) -> Status {
    if (i >= 60) throw std::runtime_error("boom " + std::to_string(i));
    return Status::Ok();
  });
  EXPECT_EQ(what.ToString(), "internal error: ctx: boom 60");
  const Status carried = ParallelFor(uint32_t{0}, uint32_t{100}, "ctx", [](uint32_t i) -> Status {
    if (i == 3) throw StatusException{Status::Corruption("carried")};
    return Status::Ok();
  });
  EXPECT_EQ(carried.ToString(), "corruption: carried");
}

TEST(ParallelFor, CatchStatusTakesVoidAndStatusFunctions) {
  EXPECT_TRUE(CatchStatus("x", [] {}).ok());
  EXPECT_EQ(CatchStatus("x", [] { return Status::IoError("e"); }).ToString(), "I/O error: e");
  EXPECT_EQ(CatchStatus("sampling edges", [] { throw std::bad_alloc(); }).ToString(),
            "internal error: sampling edges: out of memory");
  EXPECT_EQ(CatchStatus("x", [] { throw 17; }).ToString(), "internal error: x: unknown exception");
}

// ---------------------------------------------------------------------------------
// FormatBytes

TEST(FormatBytes, OneDecimalOfTheLargestUnitRoundedUp) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1025), "1.1 KiB");  // rounded up, never down
  EXPECT_EQ(FormatBytes(136192), "133.0 KiB");
  EXPECT_EQ(FormatBytes(136193), "133.1 KiB");
  EXPECT_EQ(FormatBytes((uint64_t{1} << 20) - 1), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(FormatBytes(uint64_t{1} << 20), "1.0 MiB");
  EXPECT_EQ(FormatBytes(uint64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(FormatBytes((uint64_t{5} << 40) + 1), "5.1 TiB");
  EXPECT_EQ(FormatBytes(uint64_t{1} << 50), "1.0 PiB");
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16.0 EiB");
}

// A size printed as "needs at least X" is enough when X is passed back to --mem-budget.
TEST(FormatBytes, ParsingThePrintedSizeGivesAtLeastTheSize) {
  for (uint64_t b : {uint64_t{1024}, uint64_t{1025}, uint64_t{99999}, uint64_t{123456789}, uint64_t{987654321012},
                     (uint64_t{1} << 30) - 1, (uint64_t{7} << 40) + 12345}) {
    std::string text = FormatBytes(b);
    text.erase(text.find(' '), 1);  // ParseByteSize takes "1.5GiB", not "1.5 GiB"
    Result<uint64_t> parsed = ParseByteSize(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
    EXPECT_GE(*parsed, b) << text;
    EXPECT_LT(*parsed - b, *parsed / 10) << text;  // less than a tenth of the unit over
  }
}

// Progress lines for hour-long phases: counts shortened, rate over the phase, time left.
TEST(ProgressLine, ShowsRateAndEta) {
  EXPECT_EQ(cli::ShortCount(0), "0");
  EXPECT_EQ(cli::ShortCount(999), "999");
  EXPECT_EQ(cli::ShortCount(1234), "1.23k");
  EXPECT_EQ(cli::ShortCount(45'600'000), "45.6M");
  EXPECT_EQ(cli::ShortCount(789'000'000), "789M");
  EXPECT_EQ(cli::ShortCount(2'200'000'000), "2.20G");
  EXPECT_EQ(cli::FormatDuration(59.4), "0:59");
  EXPECT_EQ(cli::FormatDuration(61), "1:01");
  EXPECT_EQ(cli::FormatDuration(3725), "1:02:05");
  // 1.1 G of 2.2 G entries in 100 s: 11 M/s, 100 s left.
  EXPECT_EQ(cli::FormatProgressLine("sort rows", 1'100'000'000, 2'200'000'000, 100.0),
            "  sort rows: 1.10G/2.20G (50%), 11.0M/s, ETA 1:40");
  // Unknown total: no percentage and no ETA.
  EXPECT_EQ(cli::FormatProgressLine("read edges", 3000, 0, 2.0), "  read edges: 3.00k, 1.50k/s");
  // Too early for a rate.
  EXPECT_EQ(cli::FormatProgressLine("write shards", 3, 1500, 0.1), "  write shards: 3/1.50k (0%)");
  // Finished: no ETA.
  EXPECT_EQ(cli::FormatProgressLine("write shards", 1500, 1500, 30.0), "  write shards: 1.50k/1.50k (100%), 50/s");
  EXPECT_EQ(cli::FormatProgressLine("refine", 1, 0, 2.0), "  refine: 1, 0.5/s");
}

}  // namespace
}  // namespace cgcn
