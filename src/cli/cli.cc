#include "cgcn/cli.h"

#include <tbb/info.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "cgcn/comm.h"
#include "cgcn/version.h"

namespace cgcn::cli {

void AddCommonFlags(CLI::App& app, CommonFlags* flags, bool with_threads) {
  app.add_flag("--quiet", flags->quiet, "print only errors and the final JSON summary line");
  if (with_threads) AddNumber(app, "--threads", &flags->threads, "worker threads (0: all cores)", 0, 1024);
  AddVersionFlag(app);
}

void AddGemmFlag(CLI::App& app, DenseBackend* gemm) {
  app.add_option_function<std::string>(
         "--gemm",
         [gemm](const std::string& name) {
           if (!ParseDenseBackend(name, gemm))
             throw CLI::ValidationError("--gemm must be auto, eigen or onednn, found '" + name + "'");
         },
         std::string("library for the large dense products: onednn (oneDNN matmul, 1.3-2x Eigen's speed) or "
                     "eigen; results differ between the two by float rounding only, and with either they do not "
                     "depend on --threads; auto: ") +
             DenseBackendName(DefaultDenseBackend()) + " in this build" +
             (OneDnnAvailable() ? "" : " (built without oneDNN)"))
      ->default_str("auto");
}

void AddComputeFlag(CLI::App& app, DenseCompute* compute) {
  app.add_option_function<std::string>(
         "--compute",
         [compute](const std::string& name) {
           if (!ParseDenseCompute(name, compute))
             throw CLI::ValidationError("--compute must be f32 or bf16, found '" + name + "'");
         },
         std::string("input type of the large dense products: f32, or bf16 (operands rounded to bfloat16, f32 "
                     "accumulation, f32 weights and optimizer; needs --gemm onednn and a CPU with AVX512_BF16, "
                     "which this one ") +
             (CpuSupportsBf16() ? "has" : "lacks") + ")")
      ->default_str("f32");
}

void AddVersionFlag(CLI::App& app) {
  app.set_version_flag("--version", std::string(VersionString()),
                       "print the version, commit, build type and CPU target, then exit");
}

int ThreadCount(const CommonFlags& flags) {
  return flags.threads > 0 ? flags.threads : tbb::info::default_concurrency();
}

int ExitCode(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kInvalidArgument:
      return 2;
    case StatusCode::kInvalidInput:
    case StatusCode::kCorruption:
    case StatusCode::kUnsupported:
      return 1;
    default:
      return 3;
  }
}

int PrintError(std::string_view tool, const Status& s) {
  std::fflush(stdout);
  std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(tool.size()), tool.data(), s.ToString().c_str());
  return ExitCode(s);
}

int Fail(std::string_view tool, const Status& s) {
  Comm& comm = Comm::World();
  if (comm.distributed()) comm.Abort(std::string(tool), s.ToString(), ExitCode(s));
  return PrintError(tool, s);
}

std::string ShortCount(double n) {
  static const char* const kSuffix[] = {"", "k", "M", "G", "T", "P"};
  int k = 0;
  while (n >= 999.5 && k < 5) {
    n /= 1000.0;
    ++k;
  }
  char buf[32];
  if (k == 0)
    std::snprintf(buf, sizeof buf, "%.3g", n);
  else
    std::snprintf(buf, sizeof buf, n < 9.995 ? "%.2f%s" : n < 99.95 ? "%.1f%s" : "%.0f%s", n, kSuffix[k]);
  return buf;
}

std::string FormatDuration(double seconds) {
  const auto s = static_cast<uint64_t>(std::max(0.0, seconds) + 0.5);
  char buf[48];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60), static_cast<unsigned long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  return buf;
}

std::string FormatProgressLine(std::string_view phase, uint64_t done, uint64_t total, double elapsed_s) {
  std::string line = "  " + std::string(phase) + ": " + ShortCount(static_cast<double>(done));
  if (total != 0) {
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * static_cast<double>(done) / static_cast<double>(total));
    line += "/" + ShortCount(static_cast<double>(total)) + pct;
  }
  if (elapsed_s >= 0.5 && done > 0) {
    const double rate = static_cast<double>(done) / elapsed_s;
    line += ", " + ShortCount(rate) + "/s";
    if (total > done) line += ", ETA " + FormatDuration(static_cast<double>(total - done) / rate);
  }
  return line;
}

ProgressPrinter::ProgressPrinter(bool quiet) : tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}

ProgressFn ProgressPrinter::Fn() {
  return [this](std::string_view phase, uint64_t done, uint64_t total) { Update(phase, done, total); };
}

void ProgressPrinter::Update(std::string_view phase, uint64_t done, uint64_t total) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (phase != phase_) {
    phase_.assign(phase);
    phase_start_ = now;
  }
  const bool finished = total != 0 && done >= total;
  const double since = std::chrono::duration<double>(now - last_).count();
  if (!finished && since < (tty_ ? 0.1 : 30.0)) return;
  last_ = now;
  const std::string line =
      FormatProgressLine(phase, done, total, std::chrono::duration<double>(now - phase_start_).count());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    dirty_ = true;
  } else if (!finished) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

void ProgressPrinter::Line(const std::string& text) {
  if (quiet_) return;
  Finish();
  std::fprintf(stderr, "%s\n", text.c_str());
}

void ProgressPrinter::Finish() {
  if (tty_ && dirty_) std::fprintf(stderr, "\r\033[K");
  dirty_ = false;
}

}  // namespace cgcn::cli
