#include "util/file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/fd.h"
#include "util/output_dir.h"

namespace cgcn {
namespace {
std::string Errno() { return std::strerror(errno); }
}  // namespace

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
  namespace fs = std::filesystem;
  std::error_code ec;
  // Follow a link: replace what it points to and keep the link.
  const std::string target = fs::is_symlink(fs::symlink_status(path, ec)) ? ResolvePath(path) : path;
  if (fs::is_directory(fs::symlink_status(target, ec)))
    return Status::IoError(target + ": is a directory, not a file to write");
  const fs::path parent = fs::path(target).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  const std::string tmp = target + ".cgcn-tmp." + RandomHexToken();
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
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
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
