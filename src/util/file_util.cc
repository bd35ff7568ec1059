#include "util/file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace cgcn {
namespace {
std::string Errno() { return std::strerror(errno); }
}  // namespace

Status WriteWholeFile(const std::string& path, std::span<const std::byte> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError(path + ": cannot create: " + Errno());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const std::string err = Errno();
      ::close(fd);
      return Status::IoError(path + ": write failed at byte " + std::to_string(done) + ": " + err);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const std::string err = Errno();
    ::close(fd);
    return Status::IoError(path + ": fsync failed: " + err);
  }
  if (::close(fd) != 0) return Status::IoError(path + ": close failed: " + Errno());
  return Status::Ok();
}

Status FsyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(dir + ": cannot open directory: " + Errno());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IoError(dir + ": fsync failed: " + Errno());
  return Status::Ok();
}

std::vector<std::string> DeadSiblings(const std::string& path, const std::string& tag) {
  namespace fs = std::filesystem;
  std::vector<std::string> dead;
  const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  const std::string prefix = fs::path(path).filename().string() + tag;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    const bool alive = pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
    if (!alive) dead.push_back(entry.path().string());
  }
  return dead;
}

Status WriteFileAtomic(const std::string& path, std::span<const std::byte> bytes) {
  for (const std::string& stale : DeadSiblings(path, ".tmp-")) ::unlink(stale.c_str());
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  Status s = WriteWholeFile(tmp, bytes);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = Status::IoError(path + ": cannot rename " + tmp + " into place: " + Errno());
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return FsyncDirectory(dir.empty() ? "." : dir);
}

Status PublishDirectory(const std::string& tmp, const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string old;
  if (fs::exists(out, ec)) {
    old = out + ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(out, old, ec);
    if (ec) return Status::IoError(out + ": cannot move the existing directory aside: " + ec.message());
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code e2;
    if (!old.empty()) fs::rename(old, out, e2);
    return Status::IoError(out + ": cannot rename " + tmp + " into place: " + ec.message());
  }
  const fs::path parent = fs::absolute(out, ec).parent_path();
  CGCN_RETURN_IF_ERROR(FsyncDirectory(parent.string()));
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::Ok();
}

Result<std::vector<std::byte>> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(path + ": cannot open: " + Errno());
  std::vector<std::byte> out;
  std::byte buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      const std::string err = Errno();
      ::close(fd);
      return Status::IoError(path + ": read failed: " + err);
    }
    if (r == 0) break;
    out.insert(out.end(), buf, buf + r);
  }
  ::close(fd);
  return out;
}

}  // namespace cgcn
