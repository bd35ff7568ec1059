// Checksums used on disk: XXH3-64 (seed 0) from Debian's libxxhash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cgcn {

uint64_t Checksum64(std::span<const std::byte> bytes);
uint64_t Checksum64(const void* data, size_t size);

// Incremental XXH3-64 over a sequence of chunks; equals Checksum64 of their concatenation.
class StreamingChecksum {
 public:
  StreamingChecksum();
  ~StreamingChecksum();
  StreamingChecksum(const StreamingChecksum&) = delete;
  StreamingChecksum& operator=(const StreamingChecksum&) = delete;
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  void* state_;  // XXH3_state_t*
};

}  // namespace cgcn
