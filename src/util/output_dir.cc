#include "util/output_dir.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "util/file_util.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

constexpr const char* kMarkerName = ".cgcn-temporary";
constexpr const char* kMarkerMagic = "cgcn temporary directory\n";
constexpr const char* kLockSuffix = ".cgcn-lock";
constexpr const char* kLockMagic = "cgcn lock\n";

std::string Errno() { return std::strerror(errno); }

// Reads at most `max` bytes of an open file from offset 0.
std::string ReadSome(int fd, size_t max) {
  std::string s(max, '\0');
  ssize_t r;
  do {
    r = ::pread(fd, s.data(), max, 0);
  } while (r < 0 && errno == EINTR);
  s.resize(r > 0 ? static_cast<size_t>(r) : 0);
  return s;
}

Status WriteText(int fd, const std::string& text, const std::string& path) {
  if (::ftruncate(fd, 0) != 0) return Status::IoError(path + ": cannot truncate: " + Errno());
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::IoError(path + ": write failed: " + Errno());
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

// The temporaries of killed runs. A sibling "OUT.cgcn-tmp.<token>" is removed when
//  - its marker proves cgcn made it (the magic line and the token of the directory's own name)
//    and no live process holds the marker's lock; or
//  - it has no marker, but `dead_token` names it: the lock file of a run that died while holding
//    it (this run now holds that lock, so no one else writes the directory) recorded the token
//    before the directory was created. Such a directory lost its marker at publish (killed
//    between the marker's removal and the rename, or after an exchange, holding the replaced
//    output) or was killed before writing it; it is removed only when it is empty or
//    `is_replaceable` recognizes it as an output cgcn made.
// Every other name is left alone.
void RemoveDeadTemporaries(const std::string& target, const std::string& dead_token,
                           const std::function<Status(const std::string&)>& is_replaceable) {
  const fs::path t(target);
  const std::string prefix = t.filename().string() + kTempInfix;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(t.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::error_code e2;
    if (!fs::is_directory(fs::symlink_status(entry.path(), e2))) continue;
    const std::string token = name.substr(prefix.size());
    const std::string marker = (entry.path() / kMarkerName).string();
    const int fd = ::open(marker.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      if (errno != ENOENT || dead_token.empty() || token != dead_token) continue;  // no proof: not ours
      const bool empty = fs::is_empty(entry.path(), e2) && !e2;
      if (empty || (is_replaceable && is_replaceable(entry.path().string()).ok())) fs::remove_all(entry.path(), e2);
      continue;
    }
    struct stat st {};
    const bool proof = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                       ReadSome(fd, 256).rfind(std::string(kMarkerMagic) + "token " + token + "\n", 0) == 0;
    const bool dead = proof && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (dead) fs::remove_all(entry.path(), e2);
    ::close(fd);
  }
}

// The token a dead holder of the lock file recorded ("temp <token>"), or "".
std::string DeadToken(const std::string& lock_content) {
  const size_t at = lock_content.find("\ntemp ");
  if (lock_content.rfind(kLockMagic, 0) != 0 || at == std::string::npos) return "";
  const size_t begin = at + 6, end = lock_content.find('\n', begin);
  if (end == std::string::npos || end - begin != 16) return "";
  const std::string token = lock_content.substr(begin, 16);
  for (char c : token)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  return token;
}

}  // namespace

std::string RandomHexToken() {
  std::random_device rd;
  const uint64_t v = (uint64_t{rd()} << 32) ^ rd() ^ (static_cast<uint64_t>(::getpid()) << 16);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string ResolvePath(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) p = fs::absolute(path, ec).lexically_normal();
  std::string s = p.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool PathIsWithin(const std::string& inner, const std::string& outer) {
  const fs::path in = fs::path(inner).lexically_normal(), out = fs::path(outer).lexically_normal();
  auto i = in.begin();
  for (auto o = out.begin(); o != out.end(); ++o, ++i) {
    if (o->empty() && std::next(o) == out.end()) break;  // trailing separator
    if (i == in.end() || *i != *o) return false;
  }
  return true;
}

Result<StagedDirectory> StagedDirectory::Create(const OutputDirOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument(options.flag + ": no path given");
  StagedDirectory d;
  d.is_replaceable_ = options.is_replaceable;
  std::error_code ec;
  // 1. Resolve. A link at OUT is followed; the directory it points to is written or replaced.
  const fs::file_status link_st = fs::symlink_status(options.path, ec);
  if (fs::is_symlink(link_st) && !fs::exists(fs::status(options.path, ec)))
    return Status::InvalidArgument(options.flag + " " + options.path + " is a symbolic link to '" +
                                   fs::read_symlink(options.path, ec).string() +
                                   "', which does not exist: give the directory to write, or create it first");
  d.target_ = ResolvePath(options.path);
  if (d.target_ == "/" || fs::path(d.target_).filename().empty())
    return Status::InvalidArgument(options.flag + " " + options.path + ": not a usable output path");
  const std::string shown = fs::is_symlink(link_st) ? options.path + " (-> " + d.target_ + ")" : options.path;
  // 2. Never write into, around or over an input.
  for (const std::string& input : options.inputs) {
    const std::string in = ResolvePath(input);
    if (d.target_ == in)
      return Status::InvalidArgument(options.flag + " " + shown + " is the input directory " + input +
                                     ": choose another output path");
    if (PathIsWithin(d.target_, in))
      return Status::InvalidArgument(options.flag + " " + shown + " lies inside the input directory " + input +
                                     ": choose a path outside it");
    if (PathIsWithin(in, d.target_))
      return Status::InvalidArgument(options.flag + " " + shown + " contains the input directory " + input +
                                     ": replacing it would delete the input");
  }
  const fs::path parent = fs::path(d.target_).parent_path();
  fs::create_directories(parent, ec);
  if (ec) return Status::IoError(parent.string() + ": cannot create directory: " + ec.message());

  // 3. The lock: one cgcn run per output path at a time.
  d.lock_path_ = d.target_ + kLockSuffix;
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(d.lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0) return Status::IoError(d.lock_path_ + ": cannot create the lock file for " + shown + ": " + Errno());
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::InvalidArgument(d.lock_path_ + " exists and is not a regular file: cgcn did not make it");
    }
    const std::string content = ReadSome(fd, 64);
    if (!content.empty() && content.rfind(kLockMagic, 0) != 0) {
      ::close(fd);
      return Status::InvalidArgument(d.lock_path_ + " exists and was not written by cgcn: remove or rename it");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder = ReadSome(fd, 64);
      ::close(fd);
      if (err != EWOULDBLOCK) return Status::IoError(d.lock_path_ + ": cannot lock: " + std::strerror(err));
      const size_t at = holder.find("pid ");
      holder = at == std::string::npos ? "" : holder.substr(at + 4, holder.find('\n', at) - at - 4);
      return Status::InvalidArgument(shown + " is being written by another cgcn process" +
                                     (holder.empty() ? "" : " (pid " + holder + ")") + ", which holds " + d.lock_path_ +
                                     ": wait for it to finish or choose another " + options.flag);
    }
    // The file may have been unlinked by its previous holder between our open and flock.
    struct stat now {};
    if (::stat(d.lock_path_.c_str(), &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
      d.lock_fd_ = fd;
      break;
    }
    ::close(fd);
    if (attempt > 100) return Status::IoError(d.lock_path_ + ": the lock file keeps changing");
  }
  d.lock_cleanup_ = InterruptCleanup(d.lock_path_);

  // 4. Provably dead temporaries of earlier runs for this output. The lock file still holding
  // content means its last holder died before removing it; it names that run's temporary.
  RemoveDeadTemporaries(d.target_, DeadToken(ReadSome(d.lock_fd_, 256)), options.is_replaceable);
  // This run's temporary is named in the lock file before it is created, so a run killed at any
  // point leaves a temporary the next run can prove.
  const std::string token = RandomHexToken();
  CGCN_RETURN_IF_ERROR(
      WriteText(d.lock_fd_, std::string(kLockMagic) + "pid " + std::to_string(::getpid()) + "\ntemp " + token + "\n",
                d.lock_path_));

  // 5. What is there now.
  const fs::file_status st = fs::symlink_status(d.target_, ec);
  if (fs::exists(st)) {
    if (!options.overwrite)
      return Status::InvalidArgument(shown + ": already exists (pass --overwrite to replace it once the new " +
                                     options.what + " is complete)");
    if (!fs::is_directory(st))
      return Status::InvalidArgument(shown + " exists and is not a directory: cgcn replaces only a " + options.what +
                                     " it wrote");
    if (options.is_replaceable) {
      Status s = options.is_replaceable(d.target_);
      if (!s.ok())
        return Status::InvalidArgument("--overwrite refused: " + shown + " is not a " + options.what + " cgcn wrote (" +
                                       s.message() + "); nothing was changed");
    }
    struct stat old {};
    if (::stat(d.target_.c_str(), &old) != 0) return Status::IoError(d.target_ + ": cannot stat: " + Errno());
    d.existed_ = true;
    d.old_dev_ = old.st_dev;
    d.old_ino_ = old.st_ino;
  }

  // 6. The marked temporary.
  d.temp_ = d.target_ + kTempInfix + token;
  if (::mkdir(d.temp_.c_str(), 0755) != 0)
    return Status::IoError(d.temp_ + ": cannot create temporary directory: " + Errno());
  d.armed_ = true;
  d.temp_cleanup_ = InterruptCleanup(d.temp_);
  d.marker_ = d.temp_ + "/" + kMarkerName;
  d.marker_fd_ = ::open(d.marker_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (d.marker_fd_ < 0) return Status::IoError(d.marker_ + ": cannot create: " + Errno());
  if (::flock(d.marker_fd_, LOCK_EX | LOCK_NB) != 0) return Status::IoError(d.marker_ + ": cannot lock: " + Errno());
  CGCN_RETURN_IF_ERROR(WriteText(d.marker_fd_,
                                 std::string(kMarkerMagic) + "token " + token + "\npid " + std::to_string(::getpid()) +
                                     "\nfor " + d.target_ + "\n",
                                 d.marker_));
  return d;
}

StagedDirectory::StagedDirectory(StagedDirectory&& o) noexcept
    : target_(std::move(o.target_)),
      temp_(std::move(o.temp_)),
      lock_path_(std::move(o.lock_path_)),
      marker_(std::move(o.marker_)),
      lock_fd_(std::exchange(o.lock_fd_, -1)),
      marker_fd_(std::exchange(o.marker_fd_, -1)),
      existed_(o.existed_),
      old_dev_(o.old_dev_),
      old_ino_(o.old_ino_),
      armed_(std::exchange(o.armed_, false)),
      is_replaceable_(std::move(o.is_replaceable_)),
      temp_cleanup_(std::move(o.temp_cleanup_)),
      lock_cleanup_(std::move(o.lock_cleanup_)) {}

void StagedDirectory::Abandon() {
  if (armed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
    armed_ = false;
  }
  temp_cleanup_.Release();
  if (marker_fd_ >= 0) ::close(marker_fd_);
  marker_fd_ = -1;
}

StagedDirectory::~StagedDirectory() {
  Abandon();
  if (lock_fd_ >= 0) {
    ::unlink(lock_path_.c_str());  // while still holding it: a waiter re-checks the inode
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  lock_cleanup_.Release();
}

Status StagedDirectory::Publish() {
  if (!armed_) return Status::Internal(temp_ + ": published twice or abandoned");
  if (::unlink(marker_.c_str()) != 0) return Status::IoError(marker_ + ": cannot remove: " + Errno());
  CGCN_RETURN_IF_ERROR(FsyncDirectory(temp_));
  const std::string parent = fs::path(target_).parent_path().string();
  if (!existed_) {
    if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY)
        return Status::IoError(target_ +
                               " appeared while this run was writing (not from cgcn, which would have "
                               "waited for the lock): it was left alone and the new output removed");
      if (err != EINVAL && err != ENOSYS)
        return Status::IoError(target_ + ": cannot rename " + temp_ + " into place: " + std::strerror(err));
      // A file system without renameat2 flags (e.g. NFS): a plain rename refuses a non-empty target.
      if (fs::exists(fs::symlink_status(target_)))
        return Status::IoError(target_ + " appeared while this run was writing: it was left alone");
      if (::rename(temp_.c_str(), target_.c_str()) != 0)
        return Status::IoError(target_ + ": cannot rename " + temp_ + " into place: " + Errno());
    }
    armed_ = false;
    temp_cleanup_.Release();
    return FsyncDirectory(parent);
  }
  // Replace: only the very directory that was checked at the start.
  struct stat now {};
  if (::stat(target_.c_str(), &now) != 0 || now.st_dev != old_dev_ || now.st_ino != old_ino_)
    return Status::IoError(target_ +
                           " was moved or replaced by another process while this run was writing: it "
                           "was left alone and the new output removed");
  if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    if (err != EINVAL && err != ENOSYS)
      return Status::IoError(target_ + ": cannot swap " + temp_ + " into place: " + std::strerror(err));
    // Without RENAME_EXCHANGE: move the old one aside first (it is never lost: on failure it is
    // moved back).
    const std::string aside = temp_ + ".old";
    if (::rename(target_.c_str(), aside.c_str()) != 0)
      return Status::IoError(target_ + ": cannot move the old directory aside: " + Errno());
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      const std::string e = Errno();
      (void)::rename(aside.c_str(), target_.c_str());
      return Status::IoError(target_ + ": cannot rename " + temp_ + " into place: " + e);
    }
    temp_ = aside;
  }
  // temp_ now holds the old directory. Remove it only if it still holds nothing but cgcn's files.
  armed_ = false;
  temp_cleanup_.Release();
  CGCN_RETURN_IF_ERROR(FsyncDirectory(parent));
  if (!is_replaceable_ || is_replaceable_(temp_).ok()) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  return Status::Ok();
}

}  // namespace cgcn
