#include "testutil/testutil.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include "cgcn/split.h"

// GCC 12 at -O2 reports a bogus -Wrestrict inside Boost's gzip_compressor (inlined
// std::char_traits::copy in indirect_streambuf); it is not in our code.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wrestrict (and warns about the unknown group)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <boost/iostreams/device/file.hpp>
#include <boost/iostreams/filter/gzip.hpp>
#include <boost/iostreams/filtering_stream.hpp>

namespace cgcn::testutil {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error("testutil: " + what); }

void MakeParentDirs(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) Fail(parent.string() + ": cannot create directory: " + ec.message());
}

std::string FormatFloat(float v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) Fail("cannot format a float");
  return std::string(buf, end);
}

}  // namespace

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  std::string templ = base + "/" + std::string(prefix) + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) Fail(templ + ": mkdtemp failed: " + std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);  // best effort: a destructor must not throw
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

std::string TempDir::Join(std::string_view relative) const { return path_ + "/" + std::string(relative); }

TmpfsMount::TmpfsMount(const std::string& dir, const std::string& size, bool read_only) : dir_(dir) {
  std::filesystem::create_directories(dir);
  const std::string opts = "size=" + size + ",mode=0755";
  const unsigned long flags = MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, opts.c_str()) == 0) {
    mounted_ = true;
  } else {
    error_ = errno;
  }
}

TmpfsMount::~TmpfsMount() {
  if (mounted_ && ::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
}

void WriteFile(const std::string& path, std::string_view bytes) {
  MakeParentDirs(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) Fail(path + ": cannot open for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) Fail(path + ": write failed");
}

void WriteGzFile(const std::string& path, std::string_view text) {
  namespace io = boost::iostreams;
  MakeParentDirs(path);
  try {
    io::filtering_ostream out;
    out.push(io::gzip_compressor());
    out.push(io::file_sink(path, std::ios::out | std::ios::binary | std::ios::trunc));
    out.exceptions(std::ios::badbit | std::ios::failbit);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.reset();  // flushes the compressor and closes the file
  } catch (const std::exception& e) {
    Fail(path + ": gzip write failed: " + e.what());
  }
}
#pragma GCC diagnostic pop

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path + ": cannot open for reading");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) Fail(path + ": cannot get size: " + ec.message());
  return size;
}

void FlipByte(const std::string& path, uint64_t offset, uint8_t mask) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) Fail(path + ": cannot open for update");
  if (offset >= FileSize(path)) Fail(path + ": FlipByte offset " + std::to_string(offset) + " past the end");
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  c = static_cast<char>(static_cast<uint8_t>(c) ^ mask);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(c);
  f.close();
  if (!f) Fail(path + ": FlipByte write failed");
}

void TruncateFile(const std::string& path, uint64_t size) {
  std::error_code ec;
  fs::resize_file(path, size, ec);
  if (ec) Fail(path + ": cannot resize to " + std::to_string(size) + ": " + ec.message());
}

RawDatasetSpec TinyRawDataset() {
  RawDatasetSpec spec;
  spec.num_nodes = 6;
  spec.edges = {{0, 1}, {1, 2}, {0, 3}, {1, 3}, {3, 4}, {2, 5}, {4, 5}};
  for (uint32_t i = 0; i < spec.num_nodes; ++i) {
    float x = static_cast<float>(i);
    spec.features.push_back({x, 0.5f - x, 0.25f * x * x});
  }
  spec.labels = {0, 1, 0, 1, 1, 0};
  spec.split_name = "s";
  spec.train = {0, 1};
  spec.valid = {2};
  spec.test = {4, 5};
  return spec;
}

std::vector<std::pair<std::string, std::string>> RawDatasetFiles(const RawDatasetSpec& spec) {
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("raw/num-node-list", std::to_string(spec.num_nodes) + "\n");
  if (spec.write_num_edges) files.emplace_back("raw/num-edge-list", std::to_string(spec.edges.size()) + "\n");
  std::string text;
  for (const auto& [src, dst] : spec.edges) text += std::to_string(src) + "," + std::to_string(dst) + "\n";
  files.emplace_back("raw/edge", text);
  text.clear();
  for (const auto& row : spec.features) {
    for (size_t j = 0; j < row.size(); ++j) {
      if (j > 0) text += ',';
      text += FormatFloat(row[j]);
    }
    text += '\n';
  }
  files.emplace_back("raw/node-feat", text);
  text.clear();
  for (uint32_t label : spec.labels) text += (label == kNoLabel ? std::string("nan") : std::to_string(label)) + "\n";
  files.emplace_back("raw/node-label", text);
  const std::pair<const char*, const std::vector<uint32_t>*> splits[] = {
      {"train", &spec.train}, {"valid", &spec.valid}, {"test", &spec.test}};
  for (const auto& [name, ids] : splits) {
    text.clear();
    for (uint32_t id : *ids) text += std::to_string(id) + "\n";
    files.emplace_back("split/" + spec.split_name + "/" + name, text);
  }
  return files;
}

void WriteRawDataset(const std::string& dir, const RawDatasetSpec& spec, Compression compression) {
  for (const auto& [relative, text] : RawDatasetFiles(spec)) {
    if (compression == Compression::kGzip) {
      WriteGzFile(dir + "/" + relative + ".csv.gz", text);
    } else {
      WriteFile(dir + "/" + relative + ".csv", text);
    }
  }
}

void WriteTinyRawDataset(const std::string& dir, Compression compression) {
  WriteRawDataset(dir, TinyRawDataset(), compression);
}

}  // namespace cgcn::testutil
