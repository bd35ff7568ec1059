#include "cgcn/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/iostreams/device/mapped_file.hpp>
#include <exception>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace cgcn {

struct MappedFile::Impl {
  boost::iostreams::mapped_file_source source;
};

Result<MappedFile> MappedFile::Open(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return Status::IoError(path + ": cannot open: file does not exist");
  if (!std::filesystem::is_regular_file(status)) return Status::IoError(path + ": not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::IoError(path + ": cannot stat: " + ec.message());
  MappedFile f;
  f.path_ = path;
  f.impl_ = std::make_unique<Impl>();
  if (size == 0) return f;  // Boost refuses to map empty files; an empty span is the honest view.
  try {
    f.impl_->source.open(path);
  } catch (const std::exception& e) {
    return Status::IoError(path + ": cannot memory-map: " + e.what());
  }
  f.bytes_ =
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(f.impl_->source.data()), f.impl_->source.size());
  return f;
}

MappedFile::MappedFile(MappedFile&&) noexcept = default;
MappedFile& MappedFile::operator=(MappedFile&&) noexcept = default;
MappedFile::~MappedFile() = default;

void MappedFile::WillNeed() const {
  if (!bytes_.empty()) posix_madvise(const_cast<std::byte*>(bytes_.data()), bytes_.size(), POSIX_MADV_WILLNEED);
}

void DropPageCache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // advisory: nothing to release
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

void ReadAhead(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // advisory: the real read reports the error
  posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  close(fd);
}

DiskReadCounters ReadDiskCounters() {
  DiskReadCounters c;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) c.major_faults = static_cast<uint64_t>(ru.ru_majflt);
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value)
    if (key == "read_bytes:") c.read_bytes = value;
  return c;
}

}  // namespace cgcn
