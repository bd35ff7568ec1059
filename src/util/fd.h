// File descriptors: one owning handle and the read/write loops every file access goes through.
// EINTR is retried here and nowhere else; every error names the path and the byte offset.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "cgcn/status.h"

namespace cgcn {

// Owns one open file descriptor and closes it on destruction (errors ignored there: a file that
// was written must be closed with Close(), which reports them). Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the descriptor now: "PATH: close failed: ..." if close(2) reports an error (the
  // last chance for some file systems to report a failed write). Ok if none is open.
  Status Close(const std::string& path);

 private:
  void Reset() noexcept;
  int fd_ = -1;
};

// "a directory", "a FIFO", "a socket", "a character device", "a block device", "a symbolic
// link", "a regular file", for messages about what a path is.
const char* DescribeFileType(mode_t mode);

// Opens `path` for reading, refusing anything that is not a regular file before it can block:
// opened with O_RDONLY | O_NONBLOCK | O_CLOEXEC (a FIFO without a writer does not wait), checked
// with fstat, then O_NONBLOCK is cleared. Errors are IoError: "PATH: cannot open: <strerror>",
// "PATH: is a FIFO, not a regular file" (or a directory, a socket, a device...).
// `size`, if given, receives the file's size from that fstat.
Result<UniqueFd> OpenRegularFileForRead(const std::string& path, uint64_t* size = nullptr);

// Creates `path` for writing (O_WRONLY | O_CREAT | O_CLOEXEC): kTruncate replaces an existing
// file, kExclusive fails if one exists. Error: "PATH: cannot create: <strerror>".
enum class CreateMode { kTruncate, kExclusive };
// With read_too the descriptor is also open for reading (O_RDWR).
Result<UniqueFd> CreateFileForWrite(const std::string& path, CreateMode mode, mode_t permissions = 0644,
                                    bool read_too = false);

// Writes all `n` bytes, continuing short writes. `offset` is the file offset of data[0], for
// the message: "PATH: write failed at byte N: <strerror>" names the byte that was not written.
Status WriteAll(int fd, const std::string& path, const void* data, size_t n, uint64_t offset);
// Writes all `n` bytes at file offset `offset` (pwrite; the file position is not used), continuing
// short writes; errors as WriteAll's.
Status PwriteAll(int fd, const std::string& path, const void* data, size_t n, uint64_t offset);

// One read(2) of at most `n` bytes from the file position; 0 at the end of the file. `offset`
// is the file position, for the message: "PATH: read failed at byte N: <strerror>".
Result<size_t> ReadSome(int fd, const std::string& path, void* data, size_t n, uint64_t offset);

// Reads exactly `n` bytes from the file position (`offset` as for ReadSome). A file that ends
// first is an IoError: "PATH: ends at byte E, expected N bytes from byte OFFSET".
Status ReadExact(int fd, const std::string& path, void* data, size_t n, uint64_t offset);

// Reads exactly `n` bytes at `offset` with pread(2): the file position is neither used nor
// moved, so threads may share the descriptor. Errors as for ReadExact.
Status PreadExact(int fd, const std::string& path, void* data, size_t n, uint64_t offset);

// fsync(2): "PATH: fsync failed: <strerror>".
Status Fsync(int fd, const std::string& path);

}  // namespace cgcn
