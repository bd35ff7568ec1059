#include "util/file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cgcn/checksum.h"
#include "util/fd.h"
#include "util/output_dir.h"

namespace cgcn {
namespace {
namespace fs = std::filesystem;

std::string Errno() { return std::strerror(errno); }

std::string TokenOf(const struct stat& st) {
  const uint64_t key[4] = {0x6367636e2d746d70ull /* "cgcn-tmp" */, static_cast<uint64_t>(st.st_dev),
                           static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size)};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(Checksum64(key, sizeof key)));
  return buf;
}

// Removes "<target>.cgcn-tmp.<token>" files a killed WriteFileAtomic left: regular files whose
// token matches their own device, inode and size and whose flock no live process holds.
void RemoveDeadFileTemporaries(const std::string& target) {
  const fs::path t(target);
  const std::string prefix = t.filename().string() + kTempInfix;
  const fs::path dir = t.parent_path().empty() ? fs::path(".") : t.parent_path();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 16 || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string path = entry.path().string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st {
    }, now{};
    const bool proof = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && TokenOf(st) == name.substr(prefix.size());
    if (proof && ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::lstat(path.c_str(), &now) == 0 && now.st_dev == st.st_dev &&
        now.st_ino == st.st_ino)
      ::unlink(path.c_str());
    ::close(fd);
  }
}

}  // namespace

std::string LinkedTemporaryPath(const std::string& target, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return target + kTempInfix + RandomHexToken();
  return target + kTempInfix + TokenOf(st);
}

Status WriteWholeFile(const std::string& path, std::span<const std::byte> bytes) {
  CGCN_ASSIGN_OR_RETURN(UniqueFd fd, CreateFileForWrite(path, CreateMode::kTruncate));
  CGCN_RETURN_IF_ERROR(WriteAll(fd.get(), path, bytes.data(), bytes.size(), 0));
  CGCN_RETURN_IF_ERROR(Fsync(fd.get(), path));
  return fd.Close(path);
}

Status FsyncDirectory(const std::string& dir) {
  const UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::IoError(dir + ": cannot open directory: " + Errno());
  return Fsync(fd.get(), dir);
}

Status WriteFileAtomic(const std::string& path, std::span<const std::byte> bytes) {
  std::error_code ec;
  // Follow a link: replace what it points to and keep the link.
  const std::string target = fs::is_symlink(fs::symlink_status(path, ec)) ? ResolvePath(path) : path;
  if (fs::is_directory(fs::symlink_status(target, ec)))
    return Status::IoError(target + ": is a directory, not a file to write");
  const fs::path parent = fs::path(target).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  RemoveDeadFileTemporaries(target);
  std::string tmp = target + kTempInfix + RandomHexToken();
  bool named = false;
  int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    named = true;
  }
  if (fd < 0) return Status::IoError(target + ": cannot create a file in " + dir + ": " + Errno());
  auto fail = [&](const std::string& what) {
    const std::string msg = target + ": " + what + ": " + Errno();
    ::close(fd);
    if (named) ::unlink(tmp.c_str());
    return Status::IoError(msg);
  };
  if (Status st = WriteAll(fd, target, bytes.data(), bytes.size(), 0); !st.ok()) {
    ::close(fd);
    if (named) ::unlink(tmp.c_str());
    return st;
  }
  if (::fsync(fd) != 0) return fail("fsync failed");
  if (!named) {
    // Held until closed: while it has a name, a later write sees it is alive.
    if (::flock(fd, LOCK_EX) != 0) return fail("cannot lock the new file");
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    // Nothing at the target: link it there directly, with no temporary name at all.
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      if (::close(fd) != 0) return Status::IoError(target + ": close failed: " + Errno());
      return FsyncDirectory(dir);
    }
    if (errno != EEXIST) return fail("cannot link");
    tmp = LinkedTemporaryPath(target, fd);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) return fail("cannot link");
    named = true;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) return fail("cannot rename " + tmp + " into place");
  if (::close(fd) != 0) return Status::IoError(target + ": close failed: " + Errno());
  return FsyncDirectory(dir);
}

Result<std::vector<std::byte>> ReadWholeFile(const std::string& path) {
  uint64_t size = 0;
  CGCN_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFileForRead(path, &size));
  std::vector<std::byte> out(size);
  CGCN_RETURN_IF_ERROR(ReadExact(fd.get(), path, out.data(), out.size(), 0));
  std::byte extra;
  CGCN_ASSIGN_OR_RETURN(const size_t more, ReadSome(fd.get(), path, &extra, 1, size));
  if (more != 0)
    return Status::IoError(path + ": file grew while it was read (" + std::to_string(size) + " bytes when opened)");
  return out;
}

}  // namespace cgcn
