#include "cgcn/cli.h"

#include <tbb/info.h>
#include <unistd.h>

#include <cstdio>

#include "cgcn/version.h"

namespace cgcn::cli {

void AddCommonFlags(CLI::App& app, CommonFlags* flags, bool with_threads) {
  app.add_flag("--quiet", flags->quiet, "print only errors and the final JSON summary line");
  if (with_threads) AddNumber(app, "--threads", &flags->threads, "worker threads (0: all cores)", 0, 1024);
  AddVersionFlag(app);
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

int Fail(std::string_view tool, const Status& s) {
  std::fflush(stdout);
  std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(tool.size()), tool.data(), s.ToString().c_str());
  return ExitCode(s);
}

ProgressPrinter::ProgressPrinter(bool quiet) : tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}

ProgressFn ProgressPrinter::Fn() {
  return [this](std::string_view phase, uint64_t done, uint64_t total) { Update(phase, done, total); };
}

void ProgressPrinter::Update(std::string_view phase, uint64_t done, uint64_t total) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool finished = total != 0 && done >= total;
  const double since = std::chrono::duration<double>(now - last_).count();
  if (!finished && since < (tty_ ? 0.1 : 5.0)) return;
  last_ = now;
  char line[256];
  if (total)
    std::snprintf(line, sizeof line, "  %.*s: %llu/%llu (%.0f%%)", static_cast<int>(phase.size()), phase.data(),
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                  100.0 * static_cast<double>(done) / static_cast<double>(total));
  else
    std::snprintf(line, sizeof line, "  %.*s: %llu", static_cast<int>(phase.size()), phase.data(),
                  static_cast<unsigned long long>(done));
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line);
    dirty_ = true;
  } else if (!finished) {
    std::fprintf(stderr, "%s\n", line);
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
