#include "testutil/tool_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "testutil/testutil.h"

namespace cgcn::testutil {

Child::~Child() {
  if (pid_ > 0) {
    Kill();
    Wait();
  }
}

bool Child::Start(const std::string& tool, const std::vector<std::string>& args, const std::string& out_path,
                  const std::string& err_path) {
  std::vector<std::string> all = {tool.front() == '/' ? tool : std::string(CGCN_BIN_DIR) + "/" + tool};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) {
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return false;
  }
  pid_ = ::fork();
  if (pid_ == 0) {  // only async-signal-safe calls until exec
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  return pid_ > 0;
}

void Child::Signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}
void Child::Kill() const { Signal(SIGKILL); }

bool Child::TryWait(int* status) {
  if (pid_ <= 0 || ::waitpid(pid_, status, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

int Child::Wait() {
  if (pid_ < 0) return -1;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, 0);
  while (r < 0 && errno == EINTR);
  pid_ = -1;
  return r < 0 ? -1 : status;
}

ToolRun RunTool(const std::string& tool, const std::vector<std::string>& args, const std::string& scratch,
                double timeout_s) {
  ToolRun run;
  Child child;
  const std::string out_path = scratch + "/tool.stdout", err_path = scratch + "/tool.stderr";
  if (!child.Start(tool, args, out_path, err_path)) {
    run.err = "cannot start " + tool + ": " + std::strerror(errno);
    return run;
  }
  int status = 0;
  if (timeout_s > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    bool done = false;
    while (!(done = child.TryWait(&status)) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!done) {
      run.timed_out = true;
      child.Kill();
      status = child.Wait();
    }
  } else {
    status = child.Wait();
  }
  run.exit_code = status >= 0 && WIFEXITED(status) && !run.timed_out ? WEXITSTATUS(status) : -1;
  run.signal = status >= 0 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  std::filesystem::remove(err_path, ec);
  return run;
}

}  // namespace cgcn::testutil
