// What every cgcn tool shares on its command line: the common flags (--quiet, --threads,
// --version), numeric flags under one rule (cgcn/flag_check.h), exit codes, error lines and the
// progress line. The tools in tools/ hold flag definitions and printing only; everything they
// run is a library operation.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cgcn/dense.h"
#include "cgcn/flag_check.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"

// Parses flags like CLI11_PARSE, but every usage error exits with 2 (--help and --version exit 0).
#define CGCN_PARSE_FLAGS(app, argc, argv) \
  try {                                   \
    (app).parse((argc), (argv));          \
  } catch (const CLI::ParseError& e) {    \
    return (app).exit(e) == 0 ? 0 : 2;    \
  }

namespace cgcn::cli {

// Flags every tool has.
struct CommonFlags {
  bool quiet = false;  // errors and the final JSON line only
  int threads = 0;     // 0: all cores
};
// Adds --quiet, --threads (when with_threads) and --version (version, commit, build type, CPU target).
void AddCommonFlags(CLI::App& app, CommonFlags* flags, bool with_threads = true);
// Adds --version alone (tools without the other common flags).
void AddVersionFlag(CLI::App& app);
// Adds --gemm auto|eigen|onednn (the dense products' library, cgcn/dense.h) into `gemm`.
void AddGemmFlag(CLI::App& app, DenseBackend* gemm);
// Adds --compute f32|bf16 (the dense products' input type, cgcn/dense.h) into `compute`.
void AddComputeFlag(CLI::App& app, DenseCompute* compute);
// The worker threads --threads asks for (0 = every core).
int ThreadCount(const CommonFlags& flags);

// A number as --help shows a default.
template <typename T>
std::string NumberText(T v) {
  std::ostringstream os;
  os << +v;
  return os.str();
}

// A numeric flag parsed by ParseNumber: a malformed, out-of-type-range or non-finite value is a
// usage error with a sentence ("--lr must be a finite number, found 'nan'"). With bounds, also
// CheckRange. Semantic bounds of library options are checked by their Validate().
template <typename T>
CLI::Option* AddNumber(CLI::App& app, const std::string& name, T* target, const std::string& help) {
  const std::string flag = name.substr(0, name.find(','));
  CLI::Option* opt = app.add_option_function<std::string>(
      name,
      [target, flag](const std::string& text) {
        Result<T> v = ParseNumber<T>(flag, text);
        if (!v.ok()) throw CLI::ValidationError(v.status().message());
        *target = *v;
      },
      help);
  opt->type_name(std::is_integral_v<T> ? "INT" : "NUMBER")->default_str(NumberText(*target));
  return opt;
}
template <typename T>
CLI::Option* AddNumber(CLI::App& app, const std::string& name, T* target, const std::string& help, T lo, T hi) {
  const std::string flag = name.substr(0, name.find(','));
  CLI::Option* opt = app.add_option_function<std::string>(
      name,
      [target, flag, lo, hi](const std::string& text) {
        Result<T> v = ParseNumber<T>(flag, text);
        Status s = v.ok() ? CheckRange(flag, *v, lo, hi) : v.status();
        if (!s.ok()) throw CLI::ValidationError(s.message());
        *target = *v;
      },
      help);
  opt->type_name(std::is_integral_v<T> ? "INT" : "NUMBER")->default_str(NumberText(*target));
  return opt;
}

// Exit codes: 0 ok, 1 bad input or corrupt data, 2 usage error, 3 I/O or internal failure,
// 128 + N killed by signal N (after removing what the run had half-written).
int ExitCode(const Status& s);
// Prints "TOOL: error: KIND: message" on stderr (after flushing stdout); returns ExitCode(s).
int PrintError(std::string_view tool, const Status& s);
// PrintError, for an error that ends the run. In a job of several ranks (cgcn/comm.h) it names
// the rank and host and ends every rank at once (MPI_Abort) with ExitCode(s): the other ranks
// would otherwise wait for this one in their next collective.
int Fail(std::string_view tool, const Status& s);

// One progress line: "  PHASE: DONE/TOTAL (P%), RATE/s, ETA H:MM:SS" with counts shortened
// (12.3M), the rate over the phase so far and the time left at that rate; without a total,
// "  PHASE: DONE, RATE/s". No rate or ETA before 0.5 s of a phase have passed.
std::string FormatProgressLine(std::string_view phase, uint64_t done, uint64_t total, double elapsed_s);
// A count shortened to 3 significant digits: 999, 1.23k, 45.6M, 7.89G.
std::string ShortCount(double n);
// Seconds as M:SS or H:MM:SS.
std::string FormatDuration(double seconds);

// Draws progress on stderr: an updating line on a terminal (redrawn at most 10 times a second), a
// plain line every 30 seconds otherwise (logs stay short on hour-long phases); nothing with
// --quiet. Rate and ETA are measured from the first update of each phase.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet);
  ~ProgressPrinter() { Finish(); }
  ProgressFn Fn();
  void Update(std::string_view phase, uint64_t done, uint64_t total);
  // A line of its own on stderr ("[2/4] partitioning ..."), clearing a drawn progress line first.
  void Line(const std::string& text);
  // Clears the terminal line so the next ordinary output starts clean.
  void Finish();

 private:
  bool tty_, quiet_;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_{};
  std::string phase_;  // the phase being timed
  std::chrono::steady_clock::time_point phase_start_{};
};

}  // namespace cgcn::cli
