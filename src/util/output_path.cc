#include "util/output_path.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/output_dir.h"

namespace cgcn {
namespace {

namespace fs = std::filesystem;

// Paths are compared resolved (ResolvePath, util/output_dir.h), so that two spellings of one file
// compare equal.
fs::path Normal(const std::string& path) { return fs::path(ResolvePath(path)); }

// Creates a file in `dir` that is never linked (O_TMPFILE), or, where the file system cannot,
// one with a unique name that is removed at once. Returns 0 or the errno.
int ProbeCreate(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return 0;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return errno;
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const fs::path name = dir / (".cgcn-probe-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(name.c_str());
      return 0;
    }
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

// The nearest existing directory at or above `p` (normal).
fs::path ExistingAncestor(fs::path p) {
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_relative_path()) p = p.parent_path();
  return p;
}

Status CheckWritableDirectory(const std::string& subject, const fs::path& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) return Status::IoError(subject + ": directory " + dir.string() + " does not exist");
  if (!fs::is_directory(st)) return Status::IoError(subject + ": " + dir.string() + " is not a directory");
  if (const int e = ProbeCreate(dir); e != 0)
    return Status::IoError(subject + ": cannot create files in " + dir.string() + ": " + std::strerror(e));
  return Status::Ok();
}

}  // namespace

void OutputPaths::AddFile(std::string flag, std::string path) {
  if (!path.empty()) outputs_.push_back(Output{std::move(flag), std::move(path), "", false});
}
void OutputPaths::AddDirectory(std::string flag, std::string dir, std::string file_name) {
  if (!dir.empty()) outputs_.push_back(Output{std::move(flag), std::move(dir), std::move(file_name), true});
}
void OutputPaths::AddInputDirectory(std::string what, std::string dir) {
  if (!dir.empty()) inputs_.push_back(Input{std::move(what), std::move(dir), true});
}
void OutputPaths::AddInputFile(std::string what, std::string path) {
  if (!path.empty()) inputs_.push_back(Input{std::move(what), std::move(path), false});
}

Status OutputPaths::Check() const {
  // First what the paths mean: inputs, and outputs colliding with each other; then the file system.
  std::vector<fs::path> files(outputs_.size()), dirs(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const Output& o = outputs_[i];
    const fs::path n = Normal(o.path);
    for (const Input& in : inputs_) {
      const fs::path ni = Normal(in.path);
      if (in.directory && PathIsWithin(n.string(), ni.string()))
        return Status::InvalidArgument(o.flag + " " + o.path + ": inside " + in.what + " " + in.path +
                                       ", which this run reads (choose a path outside it)");
      if (!in.directory && n == ni)
        return Status::InvalidArgument(o.flag + " " + o.path + ": is " + in.what +
                                       ", which this run reads (choose another path)");
    }
    files[i] = o.directory ? n / o.file_name : n;
    if (o.directory) dirs[i] = n;
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    for (size_t j = 0; j < outputs_.size(); ++j) {
      if (i == j) continue;
      if (j > i && files[i] == files[j])
        return Status::InvalidArgument(outputs_[i].flag + " and " + outputs_[j].flag +
                                       " would write the same file: " + files[i].string());
      if (!outputs_[i].directory && outputs_[j].directory && files[i] == dirs[j])
        return Status::InvalidArgument(outputs_[i].flag + " " + outputs_[i].path + ": is the " + outputs_[j].flag +
                                       " directory");
    }
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const Output& o = outputs_[i];
    const std::string subject = o.flag + " " + o.path;
    std::error_code ec;
    if (!o.directory) {
      const fs::file_status st = fs::status(files[i], ec);
      if (fs::is_directory(st)) return Status::InvalidArgument(subject + ": is a directory, expected a file path");
      if (fs::exists(st) && !fs::is_regular_file(st))
        return Status::InvalidArgument(subject +
                                       ": exists and is not a regular file (cgcn replaces only regular files)");
      CGCN_RETURN_IF_ERROR(CheckWritableDirectory(subject, files[i].parent_path()));
    } else {
      const fs::file_status st = fs::status(dirs[i], ec);
      if (fs::exists(st) && !fs::is_directory(st))
        return Status::InvalidArgument(subject + ": exists and is not a directory");
      const fs::file_status fst = fs::status(files[i], ec);
      if (fs::exists(fst) && !fs::is_regular_file(fst))
        return Status::InvalidArgument(subject + ": " + files[i].string() + " exists and is not a regular file");
      CGCN_RETURN_IF_ERROR(CheckWritableDirectory(subject, ExistingAncestor(dirs[i])));
    }
  }
  return Status::Ok();
}

Status CheckScratchDirectory(const std::string& what, const std::string& dir) {
  return CheckWritableDirectory(what, Normal(dir));
}

}  // namespace cgcn
