// cgcn-cold-warm-bench: training epochs with a cold page cache against warm ones, in one process.
//
//   build/bin/cgcn-cold-warm-bench --shards DIR [--rounds 5] [-q 20] [--layers 3] [--hidden 256] [--feature-norm none]
//
// Runs cgcn's trainer (Train, as cgcn-train does) for 1 + 2 x rounds epochs. Epoch 1 warms the
// process up (its buffers are fresh memory) and is not counted. Each round is then one warm
// epoch (every shard file read beforehand, so the page cache holds them all) and one cold epoch
// (sync; echo 3 > /proc/sys/vm/drop_caches beforehand), in the order warm-cold in odd rounds and
// cold-warm in even ones, so a drift in the VM's speed over the run does not favour either.
// Adjacent epochs of one process differ only in where the shards come from, which separate
// processes (fresh memory, a VM whose speed changes from minute to minute) do not give.
//
// Per epoch it prints the pipeline's split (input wait, decode wall and CPU, assembly, compute),
// what the process read from disk during the epoch (MB, and the page faults that had to wait for
// it), and where the machine's CPU time went meanwhile, from /proc/stat: kernel (system, irq and
// softirq), idle (idle and iowait) and steal (taken by the hypervisor), in CPU-seconds. The figure
// compared with the target (cold <= 1.05 x warm) is the ratio of the median cold epoch to the
// median warm one. Needs root (drops the page cache). The usual full-graph evaluation follows
// the last epoch and is not timed here.
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cgcn/byte_size.h"
#include "cgcn/gcn.h"
#include "cgcn/shard_directory.h"
#include "cgcn/train.h"

namespace {

enum class Cache { kWarmup, kWarm, kCold };

const char* CacheName(Cache c) { return c == Cache::kCold ? "cold" : c == Cache::kWarm ? "warm" : "warmup"; }

// Epoch 1 is the warm-up; then rounds of two epochs, warm-cold in odd rounds, cold-warm in even ones.
Cache CacheOf(uint32_t epoch) {
  if (epoch <= 1) return Cache::kWarmup;
  const uint32_t round = (epoch - 2) / 2 + 1, second = (epoch - 2) % 2;
  return (round % 2 == 1) == (second == 0) ? Cache::kWarm : Cache::kCold;
}

// System-wide CPU ticks from /proc/stat's "cpu" line, grouped.
struct CpuTicks {
  uint64_t user = 0, kernel = 0, idle = 0, steal = 0;  // user+nice, system+irq+softirq, idle+iowait
};
CpuTicks ReadCpuTicks() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {};  // user nice system idle iowait irq softirq steal
  stat >> cpu;
  for (uint64_t& x : v) stat >> x;
  return {v[0] + v[1], v[2] + v[5] + v[6], v[3] + v[4], v[7]};
}

bool DropCaches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

// Reads every shard file once, so the page cache holds them all.
void WarmCache(const cgcn::ShardDirectory& shards) {
  std::vector<char> buf(1 << 20);
  for (uint32_t c = 0; c < shards.num_clusters(); ++c) {
    std::ifstream f(shards.ShardPath(c), std::ios::binary);
    while (f.read(buf.data(), static_cast<std::streamsize>(buf.size())) || f.gcount() > 0) {
    }
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  CLI::App app{
      "Times cgcn training epochs with a cold page cache against warm ones, alternating in one process "
      "(a benchmark; needs root to drop the page cache).",
      "cgcn-cold-warm-bench"};
  std::string dir, feature_norm = "none";
  uint32_t rounds = 5;
  int threads = 0;
  bool evict = false;
  TrainOptions o;
  o.clusters_per_batch = 20;
  o.layers = 3;
  o.hidden = 256;
  o.weight_decay = 0;
  app.add_option("--shards", dir, "shard directory")->required();
  app.add_option("--rounds", rounds, "pairs of epochs (one warm, one cold)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-q,--clusters-per-batch", o.clusters_per_batch, "clusters per batch q")->capture_default_str();
  app.add_option("--layers", o.layers, "GCN layers")->capture_default_str();
  app.add_option("--hidden", o.hidden, "hidden units per layer")->capture_default_str();
  app.add_option("--prefetch", o.prefetch, "batches in flight")->capture_default_str();
  app.add_option("--feature-norm", feature_norm, "row or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"row", "none"}));
  app.add_option("--threads", threads, "worker threads (default: all cores)");
  app.add_flag("--evict", evict,
               "drop each shard from the page cache once decoded, as cgcn-train --mem-budget does (the page cache "
               "then never holds the graph: every epoch after a warm one reads from disk)");
  CLI11_PARSE(app, argc, argv);
  o.feature_norm = feature_norm == "row" ? FeatureNormMode::kRow : FeatureNormMode::kNone;
  o.epochs = 1 + 2 * rounds;
  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));

  Result<ShardDirectory> shards = ShardDirectory::Open(dir);
  if (!shards.ok()) {
    std::fprintf(stderr, "cgcn-cold-warm-bench: %s\n", shards.status().ToString().c_str());
    return 1;
  }
  shards->set_drop_page_cache(evict);
  if (!DropCaches()) {
    std::fprintf(stderr, "cgcn-cold-warm-bench: cannot write /proc/sys/vm/drop_caches (run as root)\n");
    return 2;
  }
  const Manifest& m = shards->manifest();
  uint64_t shard_bytes = 0;
  for (const auto& s : m.shards) shard_bytes += s.file_size;
  Gcn model(ModelConfig(m, o), o.seed);
  std::printf("%s: %llu nodes, %u clusters, %s of shards; q=%u, %u x %u GCN, %d threads, %u rounds\n", dir.c_str(),
              static_cast<unsigned long long>(m.num_nodes), m.num_parts, FormatBytes(shard_bytes).c_str(),
              o.clusters_per_batch, o.layers, o.hidden, nthreads, rounds);
  std::printf("%5s %6s %9s %8s %8s %10s %8s %9s %7s %9s %7s %7s %8s %7s %7s\n", "epoch", "cache", "epoch_s", "wait_s",
              "decode_s", "decode_cpu", "assem_s", "compute_s", "ra_s", "disk_MB", "majflt", "GB/s/c", "kernel_s",
              "idle_s", "steal_s");
  std::fflush(stdout);

  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::vector<double> warm, cold;
  CpuTicks cpu0;
  bool prepared = true;  // every drop of the page cache succeeded (else a "cold" epoch was not cold)
  auto prepare = [&](uint32_t epoch) {
    if (CacheOf(epoch) == Cache::kCold)
      prepared = DropCaches() && prepared;
    else
      WarmCache(*shards);
    cpu0 = ReadCpuTicks();
  };
  prepare(1);
  auto on_epoch = [&](const EpochRecord& r) {
    const CpuTicks cpu1 = ReadCpuTicks();
    auto secs = [&](uint64_t a, uint64_t b) { return static_cast<double>(b - a) / hz; };
    const Cache c = CacheOf(r.epoch);
    std::printf("%5u %6s %9.3f %8.3f %8.3f %10.3f %8.3f %9.3f %7.3f %9.1f %7llu %7.3f", r.epoch, CacheName(c),
                r.epoch_s, r.stats.input_wait_s, r.stats.decode_s, r.stats.decode_cpu_s, r.stats.assemble_s,
                r.stats.consume_s, r.stats.read_ahead_s, static_cast<double>(r.stats.disk_read_bytes) / 1048576.0,
                static_cast<unsigned long long>(r.stats.major_faults), r.stats.DecodeGBPerCoreSecond());
    if (r.evaluated)  // the CPU ticks would include the evaluation that follows the last epoch
      std::printf(" %8s %7s %7s  (then evaluation, %.1f s)\n", "-", "-", "-", r.eval_s);
    else
      std::printf(" %8.2f %7.2f %7.2f\n", secs(cpu0.kernel, cpu1.kernel), secs(cpu0.idle, cpu1.idle),
                  secs(cpu0.steal, cpu1.steal));
    std::fflush(stdout);
    if (c == Cache::kWarm) warm.push_back(r.epoch_s);
    if (c == Cache::kCold) cold.push_back(r.epoch_s);
    if (r.epoch < o.epochs) prepare(r.epoch + 1);
  };
  TrainCallbacks callbacks;
  callbacks.on_epoch = on_epoch;
  Result<TrainReport> rep = Train(*shards, o, model, callbacks);
  if (!rep.ok()) {
    std::fprintf(stderr, "cgcn-cold-warm-bench: %s\n", rep.status().ToString().c_str());
    return 1;
  }
  if (!prepared) {
    std::fprintf(stderr, "cgcn-cold-warm-bench: dropping the page cache failed\n");
    return 3;
  }
  std::string per_round;
  for (size_t i = 0; i < warm.size() && i < cold.size(); ++i)
    per_round += (i ? ", " : "") + std::to_string(cold[i] / warm[i]).substr(0, 5);
  const double mw = Median(warm), mc = Median(cold);
  std::printf("median epoch: warm %.3f s, cold %.3f s; cold / warm = %.3f (per round: %s); test accuracy %.4f\n", mw,
              mc, mc / mw, per_round.c_str(), rep->final_acc.test);
  return 0;
}
