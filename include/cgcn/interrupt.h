// SIGINT, SIGTERM and SIGHUP stop a tool cleanly: what the run had half-written is removed, then
// the process exits with 128 + the signal's number. Library code registers what it creates
// (temporary directories, lock files) for as long as it is unfinished; the tools install the
// handler first thing in main.
#pragma once

#include <cstdint>
#include <string>

namespace cgcn {

// Blocks the three signals in the calling thread (and so in every thread created after it) and
// starts a thread that waits for them, removes every registered path and calls _exit(128 + N).
// Call once, from main, before any other thread exists. Without it registrations cost nothing
// and signals keep their default action.
void InstallInterruptCleanup();

// Registers `path` for removal (recursively, for a directory) if the process is interrupted,
// until destroyed or Release()d. Move-only.
class InterruptCleanup {
 public:
  InterruptCleanup() = default;
  explicit InterruptCleanup(std::string path);
  InterruptCleanup(InterruptCleanup&& o) noexcept;
  InterruptCleanup& operator=(InterruptCleanup&& o) noexcept;
  InterruptCleanup(const InterruptCleanup&) = delete;
  InterruptCleanup& operator=(const InterruptCleanup&) = delete;
  ~InterruptCleanup() { Release(); }
  // Stops watching the path (it is complete, published or already removed).
  void Release();

 private:
  uint64_t id_ = 0;  // 0: nothing registered
};

}  // namespace cgcn
