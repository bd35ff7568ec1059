// Running the real tools (CGCN_BIN_DIR/cgcn-*) as child processes, as a user would: fork/exec
// without a shell, stdout and stderr captured to files, with an optional deadline so that a
// hang fails a test instead of stalling the suite.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cgcn::testutil {

// A started tool. Killed (SIGKILL) and reaped on destruction if still running.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();
  // fork/exec of CGCN_BIN_DIR/`tool` (or of `tool` itself, an absolute path such as mpirun's);
  // false if it could not be started.
  bool Start(const std::string& tool, const std::vector<std::string>& args, const std::string& out_path,
             const std::string& err_path);
  void Signal(int sig) const;
  void Kill() const;
  // True (and the wait status in *status) if the child has exited; does not block.
  bool TryWait(int* status);
  // Reaps the child; the raw wait status, or -1.
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

struct ToolRun {
  int exit_code = -1;  // -1 if it did not exit normally (killed, or timed out)
  int signal = 0;      // the signal that ended it, if one did
  bool timed_out = false;
  std::string out, err;
};

// Runs CGCN_BIN_DIR/`tool` with `args`, capturing stdout and stderr through files in `scratch`
// (removed afterwards). With timeout_s > 0, a run still going after that long is killed and
// reported as timed_out.
ToolRun RunTool(const std::string& tool, const std::vector<std::string>& args, const std::string& scratch,
                double timeout_s = 0);

}  // namespace cgcn::testutil
