// A read-only memory mapping of a whole regular file (mmap of a descriptor from
// OpenRegularFileForRead: a FIFO or device is refused, never waited on).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "cgcn/status.h"

namespace cgcn {

// Move-only. bytes() is valid while this object lives. An empty file maps to an
// empty span. Not thread-safe to move concurrently; concurrent reads are fine.
class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path);
  MappedFile(MappedFile&&) noexcept;
  MappedFile& operator=(MappedFile&&) noexcept;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return bytes_; }
  const std::string& path() const { return path_; }
  // Hints the kernel to read the whole file ahead (posix_madvise WILLNEED).
  void WillNeed() const;
  // Drops this process's mapping of the pages it touched (madvise MADV_DONTNEED): they stay in
  // the page cache, out of the RSS, and the next read maps them again. For a read-only file
  // mapping this loses nothing.
  void ReleaseResident() const;

 private:
  MappedFile() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::span<const std::byte> bytes_;
  std::string path_;
};

// Page-cache hints for a whole file by path; advisory, errors are ignored.
// ReadAhead starts reading the file into the page cache in the background (POSIX_FADV_WILLNEED);
// DropPageCache evicts its clean pages (POSIX_FADV_DONTNEED).
void ReadAhead(const std::string& path);
void DropPageCache(const std::string& path);

// What this process has read from storage so far: page faults that waited for the disk
// (getrusage ru_majflt) and the bytes it caused to be read from the block layer, read-ahead
// included (/proc/self/io read_bytes; 0 where the kernel keeps no per-task I/O accounting).
// A warm page cache shows neither; the difference of two readings covers the time between.
struct DiskReadCounters {
  uint64_t major_faults = 0;
  uint64_t read_bytes = 0;
};
DiskReadCounters ReadDiskCounters();

}  // namespace cgcn
