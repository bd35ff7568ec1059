// NumPy's .npz container, read in bounded memory: a zip file (PKWARE APPNOTE 6.3, ZIP64 included)
// whose members are .npy arrays, stored or deflated. Internal to the raw reader (src/raw); the
// dataset layout that uses it is described in cgcn/raw_reader.h.
//
//   ReadZipDirectory  the central directory (pread of the end records and the directory only)
//   ParseNpyHeader    an .npy header: magic, version 1.0/2.0/3.0, the dict {descr, fortran_order, shape}
//   MemberDecoder     a member's stored bytes -> its bytes (zlib raw inflate for deflate), with the
//                     size and CRC-32 the directory declares checked at the end
//
// Messages name the file and a byte offset: "PATH byte N: ..." for the zip structure (offsets in the
// file), "PATH member NAME byte N: ..." for a member's contents (offsets in the member's
// uncompressed bytes, the .npy file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/status.h"

namespace cgcn::npz {

struct ZipMember {
  std::string name;
  uint16_t method = 0;         // 0 stored, 8 deflated (nothing else is accepted)
  uint32_t crc32 = 0;          // of the uncompressed bytes
  uint64_t stored_size = 0;    // compressed size
  uint64_t size = 0;           // uncompressed size
  uint64_t header_offset = 0;  // of the local file header
  uint64_t data_offset = 0;    // of the first stored byte (past the local header)
};

// The largest central directory accepted (an .npz has a handful of members).
inline constexpr uint64_t kMaxDirectoryBytes = uint64_t{16} << 20;

// Reads the end-of-central-directory record (and the ZIP64 one when present), the central
// directory and every member's local header, by pread on `fd` (`path` is for messages, `file_size`
// its size). Refused: no end record, several disks, encryption, a method other than stored or
// deflated, a member or directory outside the file, members that overlap, a local header whose
// name differs from the directory's, two members of one name. Members come in directory order.
Result<std::vector<ZipMember>> ReadZipDirectory(int fd, const std::string& path, uint64_t file_size);

// The preamble of an .npy file: 6 magic bytes, 2 version bytes, the header length (2 bytes for
// version 1.0, 4 for 2.0 and 3.0).
inline constexpr size_t kNpyPreambleBytes = 12;  // enough for every version
inline constexpr uint64_t kMaxNpyHeaderBytes = 65536;

struct NpyHeader {
  int major = 0, minor = 0;
  std::string descr;  // as written, e.g. "<i8"
  bool fortran_order = false;
  std::vector<uint64_t> shape;
  uint64_t data_offset = 0;  // bytes before the array data (preamble + header)
  // Where each value starts in the member, for messages.
  uint64_t descr_at = 0, fortran_order_at = 0, shape_at = 0;
  uint64_t elements() const;  // product of shape (1 for a 0-d array); callers check sizes first
};

// From the first min(kNpyPreambleBytes, member size) bytes: the total length of the header
// (preamble included), after checking the magic, the version and that it stays below
// kMaxNpyHeaderBytes. `where` prefixes messages ("PATH member NAME").
Result<uint64_t> NpyHeaderBytes(std::span<const char> first, const std::string& where);

// Parses a whole header (`bytes` holds exactly NpyHeaderBytes of it), checks the dtype against
// `dtypes` (when not empty; "expected dtype '<i8' or '<i4', found '>f4'"), then that the member's
// `member_size` bytes hold exactly the shape's elements of the dtype's size (an unknown dtype size
// is refused: only '<', '>', '|' or '=' followed by b1, i1/u1, i2/u2/f2, i4/u4/f4, i8/u8/f8).
Result<NpyHeader> ParseNpyHeader(std::span<const char> bytes, uint64_t member_size, const std::string& where,
                                 std::span<const std::string_view> dtypes = {});

// Decodes one member's stored bytes. Feed it every stored byte in order through Run (in pieces of
// any size), then call Finish. Memory: zlib's inflate state (about 44 KiB) and nothing else.
class MemberDecoder {
 public:
  MemberDecoder(const ZipMember& member, std::string where);
  ~MemberDecoder();
  MemberDecoder(const MemberDecoder&) = delete;
  MemberDecoder& operator=(const MemberDecoder&) = delete;

  // Consumes stored bytes from the front of `*in` and writes up to `cap` decoded bytes to `out`;
  // returns how many it wrote. When it returns less than `cap`, everything fed so far has been
  // decoded; call it again (with more input, or with none) while it fills `out`. Errors: corrupt
  // deflate data, a deflate stream that ends before the stored bytes do, more bytes than the
  // directory declares.
  Result<size_t> Run(std::span<const char>* in, char* out, size_t cap);
  // After every stored byte was fed and Run returned less than its cap: checks that the deflate
  // stream ended, the size and the CRC-32.
  Status Finish();
  uint64_t produced() const { return produced_; }

 private:
  struct Zlib;
  const ZipMember member_;
  std::string where_;
  std::unique_ptr<Zlib> zlib_;  // deflated members only
  uint64_t consumed_ = 0;       // stored bytes fed
  uint64_t produced_ = 0;       // bytes written
  uint32_t crc_ = 0;
  bool stream_end_ = false;
};

}  // namespace cgcn::npz
