// Proves that scripts/sanitize.sh's ThreadSanitizer run can fail: with the same build flags,
// TSAN_OPTIONS (suppressions included) and ITT collector (tests/tsan_itt.cc) as the real run,
//   tsan_canary clean   hands data to TBB tasks and back the way cgcn does (main fills a buffer,
//                       a parallel_for writes disjoint rows, main reads and frees it): TSan must
//                       stay silent, which shows that TBB's hand-offs are visible to it;
//   tsan_canary race    lets parallel_for bodies on two threads write one plain counter at the
//                       same time: TSan must report it, which shows that races between TBB tasks
//                       are still caught (and that no suppression, and no edge added by
//                       tests/tsan_itt.cc or tests/tsan_tbb_pool.cc, hides code running in a
//                       parallel_for).
// Exit status: 0 when the run did what it should before TSan's verdict (TSan itself makes a
// reporting process exit with 66); sanitize.sh requires 0 for "clean" and 66 for "race".
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace {

constexpr size_t kRows = 4096, kCols = 64;

// Spreads the bodies over both threads: each does a little work, one row per task.
template <typename Body>
bool RunOnTwoThreads(Body body) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::atomic<uint64_t> threads_seen{0};
    const auto main_id = std::this_thread::get_id();
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, kRows, 1),
        [&](const tbb::blocked_range<size_t>& r) {
          threads_seen.fetch_or(std::this_thread::get_id() == main_id ? 1 : 2, std::memory_order_relaxed);
          for (size_t i = r.begin(); i != r.end(); ++i) body(i);
        },
        tbb::simple_partitioner());
    if (threads_seen.load() == 3) return true;
  }
  return false;
}

int Clean() {
  auto data = std::make_unique<std::vector<float>>(kRows * kCols, 1.0f);  // written by main
  const bool spread = RunOnTwoThreads([&](size_t i) {
    float* row = data->data() + i * kCols;  // each task its own row
    for (size_t j = 1; j < kCols; ++j) row[j] += row[j - 1];
  });
  double sum = 0;
  for (float v : *data) sum += v;  // main reads what the workers wrote
  data.reset();                    // and frees it
  std::printf("tsan_canary clean: %s, checksum %.0f\n", spread ? "ran on 2 threads" : "ran on 1 thread", sum);
  return spread ? 0 : 1;
}

// The planted race is made certain rather than likely: the first body each thread runs writes the
// plain counter, then waits (bounded) until the other thread has written it too, and writes it
// once more. The wait uses relaxed atomics only, which order nothing for TSan, so both pairs of
// writes are unordered and each second write happens, in real time, after the other thread's
// first: TSan must report it. (Plain increments from every body used to be enough, but the real
// synchronization of TBB's task pool, which tests/tsan_tbb_pool.cc shows TSan, can order all of
// them in a run: that check missed 2 runs in 20.)
int Race() {
  long counter = 0;  // deliberately not atomic
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::atomic<uint64_t> first_seen{0};
    std::atomic<int> arrived{0};
    std::atomic<bool> met{false};
    const auto main_id = std::this_thread::get_id();
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, kRows, 1),
        [&](const tbb::blocked_range<size_t>&) {
          const uint64_t me = std::this_thread::get_id() == main_id ? 1 : 2;
          if (first_seen.fetch_or(me, std::memory_order_relaxed) & me) return;  // not this thread's first body
          counter += 1;
          arrived.fetch_add(1, std::memory_order_relaxed);
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (arrived.load(std::memory_order_relaxed) < 2 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
          if (arrived.load(std::memory_order_relaxed) < 2) return;  // the other thread never came
          counter += 1;
          met.store(true, std::memory_order_relaxed);
        },
        tbb::simple_partitioner());
    if (met.load()) {
      std::printf("tsan_canary race: 2 threads wrote the counter concurrently, counter %ld\n", counter);
      return 0;
    }
  }
  std::printf("tsan_canary race: the 2 threads never ran bodies at the same time, counter %ld\n", counter);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 2);
  if (argc == 2 && std::strcmp(argv[1], "clean") == 0) return Clean();
  if (argc == 2 && std::strcmp(argv[1], "race") == 0) return Race();
  std::fprintf(stderr, "usage: %s clean|race\n", argv[0]);
  return 2;
}
