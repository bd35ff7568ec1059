// Shared by the tools' thin mains: progress lines, exit codes, resource figures.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "cgcn/progress.h"
#include "cgcn/status.h"

// Parses flags like CLI11_PARSE, but every usage error exits with 2 (--help exits 0).
// Needs <CLI/CLI.hpp> included before use.
#define CGCN_PARSE_FLAGS(app, argc, argv) \
  try {                                   \
    (app).parse((argc), (argv));          \
  } catch (const CLI::ParseError& e) {    \
    return (app).exit(e) == 0 ? 0 : 2;    \
  }

namespace cgcn::tools {

// Exit codes: 0 ok, 1 bad input or corrupt data, 2 usage error, 3 I/O or internal failure.
inline int ExitCode(const Status& s) {
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

inline int Fail(const char* tool, const Status& s) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: error: %s\n", tool, s.ToString().c_str());
  return ExitCode(s);
}

inline double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

inline std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// Draws progress on stderr: an updating line on a TTY, a plain line every few seconds otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet = false) : tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}
  ~ProgressPrinter() { Finish(); }
  ProgressFn Fn() {
    return [this](std::string_view phase, uint64_t done, uint64_t total) { Update(phase, done, total); };
  }
  void Update(std::string_view phase, uint64_t done, uint64_t total) {
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
  // Clears the TTY line so the next ordinary output starts clean.
  void Finish() {
    if (tty_ && dirty_) std::fprintf(stderr, "\r\033[K");
    dirty_ = false;
  }

 private:
  bool tty_, quiet_;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace cgcn::tools
