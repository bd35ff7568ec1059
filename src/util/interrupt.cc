#include "cgcn/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace cgcn {
namespace {

struct Registry {
  std::mutex mu;
  std::map<uint64_t, std::string> paths;  // by registration order
  uint64_t next = 1;
};
Registry& Reg() {
  static Registry* r = new Registry;  // never destroyed: the signal thread may use it during exit
  return *r;
}

void RemoveRegistered() {
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  // Newest first: a lock file registered before its temporary directory goes last.
  for (auto it = r.paths.rbegin(); it != r.paths.rend(); ++it) {
    // Workers may still be creating files in a directory while it is removed: retry a few times.
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::error_code ec;
      std::filesystem::remove_all(it->second, ec);
      if (!std::filesystem::exists(std::filesystem::symlink_status(it->second, ec))) break;
    }
  }
}

}  // namespace

void InstallInterruptCleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] {
      int sig = 0;
      while (sigwait(&set, &sig) != 0) {
      }
      RemoveRegistered();
      std::fflush(stdout);
      std::fprintf(stderr, "\ninterrupted by %s: removed what this run had half-written\n", strsignal(sig));
      _exit(128 + sig);
    }).detach();
  });
}

InterruptCleanup::InterruptCleanup(std::string path) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  id_ = r.next++;
  r.paths.emplace(id_, std::move(path));
}

InterruptCleanup::InterruptCleanup(InterruptCleanup&& o) noexcept : id_(std::exchange(o.id_, 0)) {}

InterruptCleanup& InterruptCleanup::operator=(InterruptCleanup&& o) noexcept {
  if (this != &o) {
    Release();
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

void InterruptCleanup::Release() {
  if (id_ == 0) return;
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.paths.erase(id_);
  id_ = 0;
}

}  // namespace cgcn
