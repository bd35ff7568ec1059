#include "util/fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgcn {
namespace {

std::string Errno(int err) { return std::strerror(err); }

std::string At(const std::string& path, const char* what, uint64_t offset, int err) {
  return path + ": " + what + " failed at byte " + std::to_string(offset) + ": " + Errno(err);
}

Status EndsEarly(const std::string& path, uint64_t end, size_t n, uint64_t offset) {
  return Status::IoError(path + ": ends at byte " + std::to_string(end) + ", expected " + std::to_string(n) +
                         " bytes from byte " + std::to_string(offset));
}

Status NotRegular(const std::string& path, mode_t mode) {
  return Status::IoError(path + ": is " + DescribeFileType(mode) + ", not a regular file");
}

}  // namespace

void UniqueFd::Reset() noexcept {
  // Not retried on EINTR: on Linux the descriptor is released whatever close(2) returns.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status UniqueFd::Close(const std::string& path) {
  if (fd_ < 0) return Status::Ok();
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) return Status::IoError(path + ": close failed: " + Errno(errno));
  return Status::Ok();
}

const char* DescribeFileType(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "an unknown kind of file";
}

Result<UniqueFd> OpenRegularFileForRead(const std::string& path, uint64_t* size) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    // A socket cannot be opened at all (ENXIO): say what the path is rather than "No such
    // device or address".
    struct stat st {};
    if (err == ENXIO && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
    return Status::IoError(path + ": cannot open: " + Errno(err));
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IoError(path + ": cannot stat: " + Errno(errno));
  if (!S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return Status::IoError(path + ": cannot clear O_NONBLOCK: " + Errno(errno));
  if (size != nullptr) *size = static_cast<uint64_t>(st.st_size);
  return owned;
}

Result<UniqueFd> CreateFileForWrite(const std::string& path, CreateMode mode, mode_t permissions, bool read_too) {
  const int flags =
      (read_too ? O_RDWR : O_WRONLY) | O_CREAT | O_CLOEXEC | (mode == CreateMode::kExclusive ? O_EXCL : O_TRUNC);
  int fd;
  do fd = ::open(path.c_str(), flags, permissions);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::IoError(path + ": cannot create: " + Errno(errno));
  return UniqueFd(fd);
}

Status WriteAll(int fd, const std::string& path, const void* data, size_t n, uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(At(path, "write", offset + done, errno));
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status PwriteAll(int fd, const std::string& path, const void* data, size_t n, uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(At(path, "write", offset + done, errno));
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Result<size_t> ReadSome(int fd, const std::string& path, void* data, size_t n, uint64_t offset) {
  for (;;) {
    const ssize_t r = ::read(fd, data, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) return Status::IoError(At(path, "read", offset, errno));
  }
}

Status ReadExact(int fd, const std::string& path, void* data, size_t n, uint64_t offset) {
  auto* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < n) {
    CGCN_ASSIGN_OR_RETURN(const size_t r, ReadSome(fd, path, p + done, n - done, offset + done));
    if (r == 0) return EndsEarly(path, offset + done, n, offset);
    done += r;
  }
  return Status::Ok();
}

Status PreadExact(int fd, const std::string& path, void* data, size_t n, uint64_t offset) {
  auto* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(At(path, "read", offset + done, errno));
    }
    if (r == 0) return EndsEarly(path, offset + done, n, offset);
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status Fsync(int fd, const std::string& path) {
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) return Status::IoError(path + ": fsync failed: " + Errno(errno));
  return Status::Ok();
}

}  // namespace cgcn
