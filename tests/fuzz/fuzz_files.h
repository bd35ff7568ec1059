// Shared by the libFuzzer targets whose code under test reads files by path (the raw CSV/gzip
// reader, the model and checkpoint loaders): one private scratch directory per process, made on
// first use under $TMPDIR (scripts/fuzz.sh points it into build-fuzz/) and removed at exit, and
// plain POSIX writes into it. A failure of the harness itself (disk full, ...) aborts with a
// message saying so: the run fails, and the log tells it apart from a finding.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace cgcn::fuzz {

[[noreturn]] inline void HarnessFailure(const std::string& what) {
  std::fprintf(stderr, "fuzz harness failure (not a finding): %s\n", what.c_str());
  std::abort();
}

// The process's scratch directory, created on the first call.
inline const std::string& ScratchDir() {
  struct Dir {
    std::string path;
    Dir() {
      std::error_code ec;
      std::string pattern = (std::filesystem::temp_directory_path(ec) / "cgcn-fuzz-XXXXXX").string();
      if (ec || ::mkdtemp(pattern.data()) == nullptr) HarnessFailure(pattern + ": mkdtemp: " + std::strerror(errno));
      path = pattern;
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// Replaces `path` with `bytes`. A new file rather than a truncated one: ext4 writes a file back
// when it is closed after a truncation (its auto_da_alloc heuristic), which costs more than the
// rest of a run.
inline void WriteBytes(const std::string& path, std::span<const std::byte> bytes) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) HarnessFailure(path + ": unlink: " + std::strerror(errno));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) HarnessFailure(path + ": open: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) HarnessFailure(path + ": write: " + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  if (::close(fd) != 0) HarnessFailure(path + ": close: " + std::strerror(errno));
}
inline void WriteBytes(const std::string& path, std::string_view text) {
  WriteBytes(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

inline std::vector<std::byte> ReadBytes(const std::string& path) {
  std::vector<std::byte> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) HarnessFailure(path + ": open: " + std::strerror(errno));
  std::byte buf[1 << 14];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) HarnessFailure(path + ": read: " + std::strerror(errno));
    if (r == 0) break;
    out.insert(out.end(), buf, buf + r);
  }
  ::close(fd);
  return out;
}

inline bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

}  // namespace cgcn::fuzz
