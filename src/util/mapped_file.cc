#include "cgcn/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "util/fd.h"

namespace cgcn {

// The mapping; unmapped on destruction. The file descriptor is closed once mapped.
struct MappedFile::Impl {
  void* addr = nullptr;
  size_t size = 0;
  ~Impl() {
    if (addr != nullptr) ::munmap(addr, size);
  }
};

Result<MappedFile> MappedFile::Open(const std::string& path) {
  uint64_t size = 0;
  CGCN_ASSIGN_OR_RETURN(const UniqueFd fd, OpenRegularFileForRead(path, &size));
  MappedFile f;
  f.path_ = path;
  f.impl_ = std::make_unique<Impl>();
  if (size == 0) return f;  // mmap refuses empty files; an empty span is the honest view
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (addr == MAP_FAILED) return Status::IoError(path + ": cannot memory-map: " + std::strerror(errno));
  f.impl_->addr = addr;
  f.impl_->size = static_cast<size_t>(size);
  f.bytes_ = std::span<const std::byte>(static_cast<const std::byte*>(addr), f.impl_->size);
  return f;
}

MappedFile::MappedFile(MappedFile&&) noexcept = default;
MappedFile& MappedFile::operator=(MappedFile&&) noexcept = default;
MappedFile::~MappedFile() = default;

void MappedFile::WillNeed() const {
  if (!bytes_.empty()) posix_madvise(const_cast<std::byte*>(bytes_.data()), bytes_.size(), POSIX_MADV_WILLNEED);
}

void MappedFile::ReleaseResident() const {
  if (!bytes_.empty()) ::madvise(const_cast<std::byte*>(bytes_.data()), bytes_.size(), MADV_DONTNEED);
}

void DropPageCache(const std::string& path) {
  Result<UniqueFd> fd = OpenRegularFileForRead(path);
  if (!fd.ok()) return;  // advisory: nothing to release
  posix_fadvise(fd->get(), 0, 0, POSIX_FADV_DONTNEED);
}

void ReadAhead(const std::string& path) {
  Result<UniqueFd> fd = OpenRegularFileForRead(path);
  if (!fd.ok()) return;  // advisory: the real read reports the error
  posix_fadvise(fd->get(), 0, 0, POSIX_FADV_WILLNEED);
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
