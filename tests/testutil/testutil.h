// Small helpers shared by the tests: temporary directories, writing (gzipped) files,
// damaging files, and writing raw datasets in the OGB node-property-prediction layout.
//
// The helpers are for test code: on failure they throw std::runtime_error with a
// message naming the path, which GoogleTest reports as a failure of the running test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cgcn::testutil {

// A fresh, uniquely named directory under $TMPDIR (or /tmp), removed recursively
// (with everything in it) when the object is destroyed. Move-only.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "cgcn-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + relative.
  std::string Join(std::string_view relative) const;

 private:
  std::string path_;  // empty after a move
};

// A tmpfs of `size` ("256k") mounted on `dir` (created if missing), read-only if asked, and
// unmounted (lazily if busy) on destruction. Mounting needs root (CAP_SYS_ADMIN): on failure
// mounted() is false and error() is the errno, and the test decides whether to skip.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& size, bool read_only = false);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool mounted() const { return mounted_; }
  int error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  int error_ = 0;
};

// Writes `bytes` to `path` (replacing it), creating missing parent directories.
void WriteFile(const std::string& path, std::string_view bytes);
// Same, gzip-compressed with Boost's gzip_compressor (zero timestamp, so deterministic).
void WriteGzFile(const std::string& path, std::string_view text);
// The whole file as stored.
std::string ReadFile(const std::string& path);
uint64_t FileSize(const std::string& path);
// XORs the byte at `offset` with `mask` (default: all bits). The offset must be < size.
void FlipByte(const std::string& path, uint64_t offset, uint8_t mask = 0xFF);
// Shrinks (or zero-extends) the file to `size` bytes.
void TruncateFile(const std::string& path, uint64_t size);

enum class Compression { kPlain, kGzip };

// A raw dataset to write. Values are written so that parsing them back gives exactly
// these numbers (floats in shortest round-trip form).
struct RawDatasetSpec {
  uint32_t num_nodes = 0;
  std::vector<std::pair<uint32_t, uint32_t>> edges;  // written in this order, one per line
  std::vector<std::vector<float>> features;          // [num_nodes][feat_dim]
  std::vector<uint32_t> labels;                      // [num_nodes]; kNoLabel is written "nan"
  std::string split_name = "s";
  std::vector<uint32_t> train, valid, test;  // node ids, written in this order
  bool write_num_edges = true;               // also write raw/num-edge-list.csv
};

// The tiny graph used across the tests: 6 nodes, 7 edges, 3 features, 2 classes,
// split "s" = train {0, 1}, valid {2}, test {4, 5}; node 3 is in no split.
//
//   0 --- 1 --- 2
//   |   /       |
//   3 --- 4 --- 5
//
// edges (in file order): 0-1, 1-2, 0-3, 1-3, 3-4, 2-5, 4-5
// features of node i: {i, 0.5 - i, 0.25 * i * i}; labels: 0 1 0 1 1 0
RawDatasetSpec TinyRawDataset();

// Writes DIR/raw/{num-node-list,num-edge-list,edge,node-feat,node-label}.csv[.gz] and
// DIR/split/NAME/{train,valid,test}.csv[.gz]; every file ends with a newline.
void WriteRawDataset(const std::string& dir, const RawDatasetSpec& spec, Compression compression = Compression::kGzip);
// WriteRawDataset(dir, TinyRawDataset(), compression).
void WriteTinyRawDataset(const std::string& dir, Compression compression = Compression::kGzip);

// The text of each file WriteRawDataset would write, keyed by the path relative to
// DIR without the ".csv[.gz]" suffix ("raw/edge", "split/s/train", ...).
std::vector<std::pair<std::string, std::string>> RawDatasetFiles(const RawDatasetSpec& spec);

}  // namespace cgcn::testutil
