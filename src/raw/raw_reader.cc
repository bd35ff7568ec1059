#include "cgcn/raw_reader.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cgcn/checksum.h"
#include "util/fd.h"
#include "util/text_source.h"

namespace cgcn {

namespace {

namespace fs = std::filesystem;

// METIS's idx_t is 32-bit signed; ids must stay below 2^31 - 1 with room to spare.
constexpr uint64_t kMaxNodes = (uint64_t{1} << 31) - 2;
constexpr uint64_t kMaxLabel = 65535;
constexpr uint64_t kProgressEvery = uint64_t{1} << 16;

// ---------------------------------------------------------------------------------
// Messages

std::string Where(const TextSource& src) { return src.path() + ":" + std::to_string(src.line_number()); }

Status Bad(const TextSource& src, const std::string& what) { return Status::InvalidInput(Where(src) + ": " + what); }

// A field as it appears in a message: quoted, non-printable bytes escaped, long ones cut.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 40;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += '\'';
  if (s.size() > kMaxShown) out += "...";
  return out;
}

size_t CountFields(std::string_view line) { return static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1; }

std::string FieldsFound(size_t n) { return "found " + std::to_string(n) + (n == 1 ? " field" : " fields"); }

// Splits on ','; only used on error paths.
std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (;;) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

// ---------------------------------------------------------------------------------
// Number parsing (std::from_chars: no locale, no allocation)

// Parses a whole field as a decimal unsigned integer. On failure returns why, in the
// form "expected WHAT, found ...".
std::optional<std::string> ParseUintField(std::string_view field, std::string_view what, uint64_t* value) {
  const char* begin = field.data();
  const char* end = begin + field.size();
  auto [ptr, ec] = std::from_chars(begin, end, *value);
  if (ec == std::errc() && ptr == end) return std::nullopt;
  std::string expected = "expected " + std::string(what);
  if (field.empty()) return expected + ", found an empty field";
  if (field[0] == '-') {
    uint64_t magnitude = 0;
    auto [p2, ec2] = std::from_chars(begin + 1, end, magnitude);
    if (ec2 != std::errc::invalid_argument && p2 == end) {
      return expected + " (non-negative), found negative " + Quote(field);
    }
  }
  if (ec == std::errc::result_out_of_range) return expected + ", found " + Quote(field) + ", which is too large";
  if (ec == std::errc()) return expected + ", found trailing characters in " + Quote(field);
  return expected + ", found " + Quote(field);
}

// Whether a number std::from_chars read whole (an optional '-', digits with an optional '.', an
// optional exponent) is below 1 in magnitude: for one beyond the range of a double, whether it
// underflows rather than overflows.
bool MagnitudeBelowOne(std::string_view s) {
  auto digit = [&](size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  size_t i = s.empty() || s[0] != '-' ? 0 : 1;
  std::optional<int64_t> lead;  // decimal exponent of the first non-zero digit, before the exponent part
  const size_t int_begin = i;
  while (digit(i)) ++i;
  for (size_t k = int_begin; k < i && !lead; ++k)
    if (s[k] != '0') lead = static_cast<int64_t>(i - k) - 1;
  if (i < s.size() && s[i] == '.') {
    const size_t frac_begin = ++i;
    while (digit(i)) ++i;
    for (size_t k = frac_begin; k < i && !lead; ++k)
      if (s[k] != '0') lead = -static_cast<int64_t>(k - frac_begin) - 1;
  }
  if (!lead) return true;  // zero
  int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    const bool negative = i < s.size() && s[i] == '-';
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    for (; digit(i); ++i) exponent = std::min<int64_t>(exponent * 10 + (s[i] - '0'), int64_t{1} << 40);
    if (negative) exponent = -exponent;
  }
  return *lead + exponent < 0;
}

// Parses a whole field as a finite float. Values too small for a float become the
// nearest float (possibly 0), as strtof would; too large ones, NaN and inf are errors.
std::optional<std::string> ParseFloatField(std::string_view field, float* value) {
  const char* begin = field.data();
  const char* end = begin + field.size();
  auto [ptr, ec] = std::from_chars(begin, end, *value);
  if (ec == std::errc::result_out_of_range && ptr == end) {
    double wide = 0;
    auto [p2, ec2] = std::from_chars(begin, end, wide);
    if (ec2 == std::errc() && p2 == end && std::fabs(wide) <= FLT_MAX) {
      *value = static_cast<float>(wide);
      return std::nullopt;
    }
    // Beyond a double as well: below its smallest value ("1e-400") the nearest float is 0.
    if (ec2 == std::errc::result_out_of_range && p2 == end && MagnitudeBelowOne(field)) {
      *value = field[0] == '-' ? -0.0f : 0.0f;
      return std::nullopt;
    }
    return "expected a number that fits a 32-bit float, found " + Quote(field);
  }
  if (ec == std::errc() && ptr == end) {
    if (std::isfinite(*value)) return std::nullopt;
    return "expected a finite number, found " + Quote(field);
  }
  if (field.empty()) return std::string("expected a number, found an empty field");
  if (ec == std::errc()) return "expected a number, found trailing characters in " + Quote(field);
  return "expected a number, found " + Quote(field);
}

// The fast path for feature values: bag-of-words files are mostly short integers,
// which are exact in a float, so they skip from_chars. Returns the end of the parsed
// number, or nullptr if the field must take the general path.
inline const char* ParseSmallInt(const char* p, const char* end, float* value) {
  uint32_t v = 0;
  const char* start = p;
  while (p != end && static_cast<unsigned>(*p - '0') < 10 && p - start < 7) {
    v = v * 10 + static_cast<uint32_t>(*p - '0');
    ++p;
  }
  if (p == start || (p != end && *p != ',')) return nullptr;
  *value = static_cast<float>(v);
  return p;
}

// ---------------------------------------------------------------------------------
// Files

struct InputFile {
  std::string path;      // as opened
  std::string relative;  // relative to DIR, the name that goes into the fingerprint
};

Result<InputFile> Resolve(const std::string& dir, const std::string& relative_base) {
  CGCN_ASSIGN_OR_RETURN(std::string path, ResolveCsvPath(dir + "/" + relative_base));
  return InputFile{path, path.substr(dir.size() + 1)};
}

// Reads files in a fixed order and hashes (relative path, size, stored bytes) of each:
// the fingerprint is XXH3-64 over the concatenation, per file, of its path relative to
// DIR as found ("raw/edge.csv.gz", "split/public/train.csv"), a NUL byte, its stored
// size as 8 little-endian bytes, and its bytes as stored (compressed if gzipped).
// Order: num-node-list, num-edge-list (if present), edge, node-feat, node-label,
// split/NAME/train, valid, test.
class InputReader {
 public:
  explicit InputReader(size_t block_bytes) : block_bytes_(block_bytes) {}
  Result<TextSource> Open(const InputFile& file) {
    TextSource::Options options;
    options.block_bytes = block_bytes_;
    options.stored_bytes_hash = &fingerprint_;
    CGCN_ASSIGN_OR_RETURN(TextSource src, TextSource::Open(file.path, options));
    // Path bytes, a NUL, the size as 8 little-endian bytes; the file's bytes follow as
    // the source reads them.
    fingerprint_.Update(file.relative.data(), file.relative.size());
    const char nul = '\0';
    fingerprint_.Update(&nul, 1);
    unsigned char size_le[8];
    for (int i = 0; i < 8; ++i) size_le[i] = static_cast<unsigned char>(src.stored_size() >> (8 * i));
    fingerprint_.Update(size_le, sizeof size_le);
    input_bytes_ += src.stored_size();
    return src;
  }
  uint64_t fingerprint() const { return fingerprint_.Digest(); }
  uint64_t input_bytes() const { return input_bytes_; }

 private:
  size_t block_bytes_;
  StreamingChecksum fingerprint_;
  uint64_t input_bytes_ = 0;
};

// Appends to a new binary scratch file through a fixed buffer. Errors (ENOSPC...) name the file.
class BinaryWriter {
 public:
  explicit BinaryWriter(size_t buffer_bytes) : buffer_bytes_(std::max<size_t>(buffer_bytes, 1)) {}
  BinaryWriter(const BinaryWriter&) = delete;
  BinaryWriter& operator=(const BinaryWriter&) = delete;
  Status Create(const std::string& path) {
    path_ = path;
    CGCN_ASSIGN_OR_RETURN(fd_, CreateFileForWrite(path, CreateMode::kTruncate, 0600));
    buf_ = std::make_unique_for_overwrite<char[]>(buffer_bytes_);
    return Status::Ok();
  }
  Status Append(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      if (used_ == buffer_bytes_) CGCN_RETURN_IF_ERROR(Flush());
      const size_t take = std::min(n, buffer_bytes_ - used_);
      std::memcpy(buf_.get() + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
    }
    return Status::Ok();
  }
  // Flushes and closes; the file is scratch, so it is not fsynced.
  Status Finish() {
    CGCN_RETURN_IF_ERROR(Flush());
    return fd_.Close(path_);
  }

 private:
  Status Flush() {
    CGCN_RETURN_IF_ERROR(WriteAll(fd_.get(), path_, buf_.get(), used_, written_));
    written_ += used_;
    used_ = 0;
    return Status::Ok();
  }
  size_t buffer_bytes_;
  std::string path_;
  UniqueFd fd_;
  std::unique_ptr<char[]> buf_;
  size_t used_ = 0;
  uint64_t written_ = 0;
};

class Progress {
 public:
  Progress(const ProgressFn& fn, std::string_view phase, uint64_t total) : fn_(fn), phase_(phase), total_(total) {}
  void Line(uint64_t done) {
    if (fn_ && done % kProgressEvery == 0) fn_(phase_, done, total_);
  }
  void Done(uint64_t done) {
    if (fn_) fn_(phase_, done, total_);
  }

 private:
  const ProgressFn& fn_;
  std::string_view phase_;
  uint64_t total_;
};

// Next line that is not empty; false at the end of the file (check src.status()).
// An empty line is an error, except that TextSource already treats one terminator at
// the very end of the file as the end of the last line.
bool NextNonEmpty(TextSource& src, std::string_view* line, std::string_view expected, Status* error,
                  uint64_t* text_bytes = nullptr) {
  if (!src.Next(line)) {
    *error = src.status();
    return false;
  }
  if (text_bytes != nullptr) *text_bytes += line->size() + 1;  // + its terminator
  if (line->empty()) {
    *error = Bad(src, "empty line, expected " + std::string(expected));
    return false;
  }
  return true;
}

// For files that must not be empty: the error for "no lines at all".
Status EmptyFile(const TextSource& src, std::string_view expected) {
  return Status::InvalidInput(src.path() + ":1: empty file, expected " + std::string(expected));
}

// A file of exactly one line holding one unsigned integer (the num-*-list files).
Result<uint64_t> ReadSingleCount(InputReader& reader, const InputFile& file, std::string_view what) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  std::string expected = "one line holding " + std::string(what);
  std::string_view line;
  Status error;
  if (!NextNonEmpty(src, &line, expected, &error)) {
    if (!error.ok()) return error;
    return EmptyFile(src, expected);
  }
  if (size_t n = CountFields(line); n != 1)
    return Bad(src, "expected 1 field (" + std::string(what) + "), " + FieldsFound(n));
  uint64_t value = 0;
  if (auto why = ParseUintField(line, what, &value)) return Bad(src, *why);
  if (src.Next(&line)) return Bad(src, "expected " + expected + ", found a second line");
  CGCN_RETURN_IF_ERROR(src.status());
  return value;
}

// ---------------------------------------------------------------------------------
// The stages

Status ReadEdges(InputReader& reader, const InputFile& file, uint64_t num_nodes, std::optional<uint64_t> declared_edges,
                 const std::string& num_edge_path, const ProgressFn& progress, BinaryWriter& out, uint64_t* num_lines,
                 uint64_t* text_bytes) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  const std::string expected = "2 comma-separated node ids";
  Progress ticker(progress, "read edges", declared_edges.value_or(0));
  const std::string range = " (num-node-list says " + std::to_string(num_nodes) + " nodes)";

  std::string_view line;
  Status error;
  uint64_t count = 0;
  while (NextNonEmpty(src, &line, expected, &error, text_bytes)) {
    if (declared_edges && count == *declared_edges) {
      return Bad(src, "expected " + std::to_string(*declared_edges) + " edge lines as " + num_edge_path +
                          ":1 says, found more");
    }
    const char* begin = line.data();
    const char* end = begin + line.size();
    uint64_t a = 0, b = 0;
    auto r1 = std::from_chars(begin, end, a);
    bool ok = r1.ec == std::errc() && r1.ptr != end && *r1.ptr == ',';
    if (ok) {
      auto r2 = std::from_chars(r1.ptr + 1, end, b);
      ok = r2.ec == std::errc() && r2.ptr == end;
    }
    if (!ok) {
      std::vector<std::string_view> fields = SplitFields(line);
      if (fields.size() != 2) return Bad(src, "expected " + expected + ", " + FieldsFound(fields.size()));
      if (auto why = ParseUintField(fields[0], "a source node id", &a)) return Bad(src, *why);
      if (auto why = ParseUintField(fields[1], "a destination node id", &b)) return Bad(src, *why);
    }
    if (a >= num_nodes || b >= num_nodes) {
      return Bad(src, "expected node ids < " + std::to_string(num_nodes) + range + ", found " +
                          std::to_string(a >= num_nodes ? a : b));
    }
    const uint32_t pair[2] = {static_cast<uint32_t>(a), static_cast<uint32_t>(b)};
    CGCN_RETURN_IF_ERROR(out.Append(pair, sizeof pair));
    ticker.Line(++count);
  }
  CGCN_RETURN_IF_ERROR(error);
  if (count == 0) return EmptyFile(src, expected + " per line");
  if (declared_edges && count != *declared_edges) {
    return Status::InvalidInput(src.path() + ":" + std::to_string(count + 1) + ": expected " +
                                std::to_string(*declared_edges) + " edge lines as " + num_edge_path +
                                ":1 says, found only " + std::to_string(count));
  }
  *num_lines = count;
  ticker.Done(count);
  return Status::Ok();
}

// Diagnoses a feature row the fast path rejected. `feat_dim` is 0 for the first row.
Status BadFeatureRow(const TextSource& src, std::string_view line, uint64_t feat_dim) {
  std::vector<std::string_view> fields = SplitFields(line);
  if (feat_dim != 0 && fields.size() != feat_dim) {
    return Bad(src, "expected " + std::to_string(feat_dim) + " comma-separated features (as on line 1), " +
                        FieldsFound(fields.size()));
  }
  for (size_t j = 0; j < fields.size(); ++j) {
    float v = 0;
    if (auto why = ParseFloatField(fields[j], &v)) {
      return Bad(src, "feature " + std::to_string(j + 1) + ": " + *why);
    }
  }
  return Status::Internal(Where(src) + ": feature row rejected without a reason");
}

// Parses one row of exactly `feat_dim` features into `out`; false if anything is off.
inline bool ParseFeatureRow(std::string_view line, uint64_t feat_dim, float* out) {
  const char* p = line.data();
  const char* end = p + line.size();
  for (uint64_t j = 0; j < feat_dim; ++j) {
    const char* q = ParseSmallInt(p, end, &out[j]);
    if (q == nullptr) {
      auto [r, ec] = std::from_chars(p, end, out[j]);
      if (ec != std::errc() || !std::isfinite(out[j])) {
        // Underflow and the rest are rare; let the careful parser decide.
        const char* field_end = static_cast<const char*>(std::memchr(p, ',', static_cast<size_t>(end - p)));
        if (field_end == nullptr) field_end = end;
        if (ParseFloatField(std::string_view(p, static_cast<size_t>(field_end - p)), &out[j])) return false;
        r = field_end;
      }
      q = r;
    }
    if (j + 1 < feat_dim) {
      if (q == end || *q != ',') return false;
      p = q + 1;
    } else if (q != end) {
      return false;
    }
  }
  return true;
}

Status ReadFeatures(InputReader& reader, const InputFile& file, uint64_t num_nodes, const ProgressFn& progress,
                    BinaryWriter& out, uint32_t* feat_dim_out, uint64_t* text_bytes) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  const std::string expected = std::to_string(num_nodes) + " rows of comma-separated features";
  Progress ticker(progress, "read features", num_nodes);
  std::vector<float> row;

  std::string_view line;
  Status error;
  uint64_t rows = 0;
  uint64_t feat_dim = 0;
  while (NextNonEmpty(src, &line, expected, &error, text_bytes)) {
    if (rows == num_nodes) {
      return Bad(src, "expected " + std::to_string(num_nodes) + " feature rows (num-node-list), found more");
    }
    if (rows == 0) {
      feat_dim = CountFields(line);
      if (feat_dim > UINT32_MAX) return Bad(src, "expected at most 2^32-1 features per row, " + FieldsFound(feat_dim));
      row.resize(feat_dim);  // the line holds feat_dim fields, so this is bounded by the line length
    }
    if (!ParseFeatureRow(line, feat_dim, row.data())) return BadFeatureRow(src, line, rows == 0 ? 0 : feat_dim);
    CGCN_RETURN_IF_ERROR(out.Append(row.data(), row.size() * sizeof(float)));
    ticker.Line(++rows);
  }
  CGCN_RETURN_IF_ERROR(error);
  if (rows == 0) return EmptyFile(src, expected);
  if (rows != num_nodes) {
    return Status::InvalidInput(src.path() + ":" + std::to_string(rows + 1) + ": expected " +
                                std::to_string(num_nodes) + " feature rows (num-node-list), found only " +
                                std::to_string(rows));
  }
  *feat_dim_out = static_cast<uint32_t>(feat_dim);
  ticker.Done(rows);
  return Status::Ok();
}

// One unsigned integer per line; diagnoses a wrong field count before the number.
std::optional<std::string> ParseSingleField(std::string_view line, std::string_view what, uint64_t* value) {
  auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), *value);
  if (ec == std::errc() && ptr == line.data() + line.size()) return std::nullopt;
  if (size_t n = CountFields(line); n != 1) return "expected 1 field (" + std::string(what) + "), " + FieldsFound(n);
  return ParseUintField(line, what, value);
}

Status ReadLabels(InputReader& reader, const InputFile& file, uint64_t num_nodes, const ProgressFn& progress,
                  BinaryWriter& out, uint32_t* num_classes, uint64_t* text_bytes) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  const std::string expected = std::to_string(num_nodes) + " lines of one class id each";
  Progress ticker(progress, "read labels", num_nodes);

  std::string_view line;
  Status error;
  uint64_t rows = 0;
  uint64_t max_label = 0;
  while (NextNonEmpty(src, &line, expected, &error, text_bytes)) {
    if (rows == num_nodes) {
      return Bad(src, "expected " + std::to_string(num_nodes) + " labels (num-node-list), found more");
    }
    uint64_t label = 0;
    if (auto why = ParseSingleField(line, "a class id", &label)) return Bad(src, *why);
    if (label > kMaxLabel) {
      return Bad(src, "expected a class id in [0, " + std::to_string(kMaxLabel) + "], found " + std::to_string(label));
    }
    max_label = std::max(max_label, label);
    const auto value = static_cast<uint32_t>(label);
    CGCN_RETURN_IF_ERROR(out.Append(&value, sizeof value));
    ticker.Line(++rows);
  }
  CGCN_RETURN_IF_ERROR(error);
  if (rows == 0) return EmptyFile(src, expected);
  if (rows != num_nodes) {
    return Status::InvalidInput(src.path() + ":" + std::to_string(rows + 1) + ": expected " +
                                std::to_string(num_nodes) + " labels (num-node-list), found only " +
                                std::to_string(rows));
  }
  *num_classes = static_cast<uint32_t>(max_label + 1);
  ticker.Done(rows);
  return Status::Ok();
}

Status ReadSplitFile(InputReader& reader, const InputFile& file, uint8_t bit, uint64_t num_nodes,
                     const ProgressFn& progress, std::vector<uint8_t>& split, uint64_t* count, uint64_t* text_bytes) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  const std::string expected = "one node id per line";
  Progress ticker(progress, "read split", 0);
  std::string_view line;
  Status error;
  uint64_t rows = 0;
  while (NextNonEmpty(src, &line, expected, &error, text_bytes)) {
    uint64_t id = 0;
    if (auto why = ParseSingleField(line, "a node id", &id)) return Bad(src, *why);
    if (id >= num_nodes) {
      return Bad(src,
                 "expected a node id < " + std::to_string(num_nodes) + " (num-node-list), found " + std::to_string(id));
    }
    uint8_t& member = split[id];
    if (member == bit) {
      return Bad(src, "node id " + std::to_string(id) + " is repeated (expected each node at most once per split)");
    }
    if (member != 0) {
      return Bad(src, "node id " + std::to_string(id) + " is already in the " + SplitName(member) +
                          " split (expected each node in at most one split)");
    }
    member = bit;
    ticker.Line(++rows);
  }
  CGCN_RETURN_IF_ERROR(error);
  if (rows == 0) return EmptyFile(src, expected);
  *count = rows;
  ticker.Done(rows);
  return Status::Ok();
}

// The split to use: options.split_name, or the only subdirectory of DIR/split.
Result<std::string> ChooseSplit(const std::string& dir, const std::string& requested) {
  const std::string split_dir = dir + "/split";
  std::error_code ec;
  if (!fs::is_directory(split_dir, ec)) return Status::IoError(split_dir + ": no such directory");
  std::vector<std::string> names;
  for (fs::directory_iterator it(split_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_directory(ec2)) names.push_back(it->path().filename().string());
  }
  if (ec) return Status::IoError(split_dir + ": cannot list: " + ec.message());
  std::sort(names.begin(), names.end());
  std::string listed;
  for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;

  if (!requested.empty()) {
    if (std::find(names.begin(), names.end(), requested) != names.end()) return requested;
    return Status::InvalidArgument(split_dir + "/" + requested + ": no such split (available: " +
                                   (names.empty() ? std::string("none") : listed) + ")");
  }
  if (names.empty()) return Status::InvalidInput(split_dir + ": expected a split subdirectory, found none");
  if (names.size() > 1) {
    return Status::InvalidArgument(split_dir + ": expected one split subdirectory or a split name, found " +
                                   std::to_string(names.size()) + ": " + listed);
  }
  return names[0];
}

// The input files of a dataset, resolved (gz or plain) in reading order.
struct InputFiles {
  std::string dir;
  std::string split_name;
  InputFile num_nodes;
  std::optional<InputFile> num_edges;
  InputFile edges, features, labels, train, valid, test;
  std::vector<const InputFile*> InOrder() const {
    std::vector<const InputFile*> v = {&num_nodes};
    if (num_edges) v.push_back(&*num_edges);
    for (const InputFile* f : {&edges, &features, &labels, &train, &valid, &test}) v.push_back(f);
    return v;
  }
};

// Resolves every file before any is read, so a missing one fails fast.
Result<InputFiles> ResolveInputFiles(const RawReadOptions& options) {
  InputFiles f;
  f.dir = options.dir;
  while (f.dir.size() > 1 && f.dir.back() == '/') f.dir.pop_back();
  std::error_code ec;
  if (f.dir.empty() || !fs::is_directory(f.dir, ec))
    return Status::IoError((f.dir.empty() ? "''" : f.dir) + ": no such directory");
  CGCN_ASSIGN_OR_RETURN(f.split_name, ChooseSplit(f.dir, options.split_name));
  CGCN_ASSIGN_OR_RETURN(f.num_nodes, Resolve(f.dir, "raw/num-node-list"));
  if (auto r = Resolve(f.dir, "raw/num-edge-list"); r.ok()) f.num_edges = std::move(r).value();
  CGCN_ASSIGN_OR_RETURN(f.edges, Resolve(f.dir, "raw/edge"));
  CGCN_ASSIGN_OR_RETURN(f.features, Resolve(f.dir, "raw/node-feat"));
  CGCN_ASSIGN_OR_RETURN(f.labels, Resolve(f.dir, "raw/node-label"));
  const std::string split_base = "split/" + f.split_name + "/";
  CGCN_ASSIGN_OR_RETURN(f.train, Resolve(f.dir, split_base + "train"));
  CGCN_ASSIGN_OR_RETURN(f.valid, Resolve(f.dir, split_base + "valid"));
  CGCN_ASSIGN_OR_RETURN(f.test, Resolve(f.dir, split_base + "test"));
  return f;
}

}  // namespace

Result<std::vector<InputFileDigest>> DigestRawInput(const RawReadOptions& options) {
  CGCN_ASSIGN_OR_RETURN(InputFiles files, ResolveInputFiles(options));
  std::vector<InputFileDigest> out;
  // Read with a fixed buffer rather than mapped: mapped pages would count in the resident
  // set, and the features file can be far larger than the memory budget.
  std::vector<char> buf(size_t{1} << 20);
  for (const InputFile* f : files.InOrder()) {
    CGCN_ASSIGN_OR_RETURN(const UniqueFd fd, OpenRegularFileForRead(f->path));
    StreamingChecksum sum;
    uint64_t size = 0;
    for (;;) {
      CGCN_ASSIGN_OR_RETURN(const size_t r, ReadSome(fd.get(), f->path, buf.data(), buf.size(), size));
      if (r == 0) break;
      sum.Update(buf.data(), r);
      size += r;
    }
    out.push_back({f->relative, size, sum.Digest()});
  }
  return out;
}

Result<RawInput> ReadRawInput(const RawReadOptions& options, const std::string& scratch_dir,
                              const ProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  CGCN_ASSIGN_OR_RETURN(InputFiles files, ResolveInputFiles(options));
  RawInput input;
  input.split_name = files.split_name;
  input.edges_path = scratch_dir + "/edges.u32";
  input.features_path = scratch_dir + "/features.f32";
  input.labels_path = scratch_dir + "/labels.u32";
  // The scratch files go away on every failure path.
  struct Cleanup {
    const RawInput& input;
    bool armed = true;
    ~Cleanup() {
      if (!armed) return;
      for (const std::string* p : {&input.edges_path, &input.features_path, &input.labels_path}) ::unlink(p->c_str());
    }
  } cleanup{input};
  const InputFile& num_node_file = files.num_nodes;
  const std::optional<InputFile>& num_edge_file = files.num_edges;

  // The files are read (and fingerprinted) in exactly this order.
  InputReader reader(options.text_block_bytes);
  CGCN_ASSIGN_OR_RETURN(uint64_t num_nodes, ReadSingleCount(reader, num_node_file, "a node count"));
  if (num_nodes == 0) return Status::InvalidInput(num_node_file.path + ":1: expected a node count >= 1, found 0");
  if (num_nodes > kMaxNodes) {
    return Status::Unsupported(num_node_file.path + ":1: expected a node count <= " + std::to_string(kMaxNodes) +
                               " (METIS's 32-bit ids), found " + std::to_string(num_nodes));
  }
  input.num_nodes = static_cast<uint32_t>(num_nodes);

  std::optional<uint64_t> declared_edges;
  if (num_edge_file) {
    CGCN_ASSIGN_OR_RETURN(declared_edges, ReadSingleCount(reader, *num_edge_file, "an edge count"));
  }
  // Runs one parse phase, recording its text bytes, stored bytes and time.
  auto phase = [&](const char* name, const std::function<Status(uint64_t*)>& body) -> Status {
    RawPhaseStats st;
    st.name = name;
    const uint64_t stored_before = reader.input_bytes();
    const auto t0 = Clock::now();
    CGCN_RETURN_IF_ERROR(body(&st.text_bytes));
    st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    st.stored_bytes = reader.input_bytes() - stored_before;
    input.phases.push_back(std::move(st));
    return Status::Ok();
  };
  CGCN_RETURN_IF_ERROR(phase("edges", [&](uint64_t* text) {
    BinaryWriter out(options.scratch_buffer_bytes);
    CGCN_RETURN_IF_ERROR(out.Create(input.edges_path));
    CGCN_RETURN_IF_ERROR(ReadEdges(reader, files.edges, num_nodes, declared_edges,
                                   num_edge_file ? num_edge_file->path : std::string(), progress, out,
                                   &input.num_edge_lines, text));
    return out.Finish();
  }));
  CGCN_RETURN_IF_ERROR(phase("features", [&](uint64_t* text) {
    BinaryWriter out(options.scratch_buffer_bytes);
    CGCN_RETURN_IF_ERROR(out.Create(input.features_path));
    CGCN_RETURN_IF_ERROR(ReadFeatures(reader, files.features, num_nodes, progress, out, &input.feat_dim, text));
    return out.Finish();
  }));
  CGCN_RETURN_IF_ERROR(phase("labels", [&](uint64_t* text) {
    BinaryWriter out(options.scratch_buffer_bytes);
    CGCN_RETURN_IF_ERROR(out.Create(input.labels_path));
    CGCN_RETURN_IF_ERROR(ReadLabels(reader, files.labels, num_nodes, progress, out, &input.num_classes, text));
    return out.Finish();
  }));
  input.split.assign(num_nodes, 0);
  CGCN_RETURN_IF_ERROR(phase("split", [&](uint64_t* text) {
    CGCN_RETURN_IF_ERROR(
        ReadSplitFile(reader, files.train, kSplitTrain, num_nodes, progress, input.split, &input.num_train, text));
    CGCN_RETURN_IF_ERROR(
        ReadSplitFile(reader, files.valid, kSplitValid, num_nodes, progress, input.split, &input.num_valid, text));
    return ReadSplitFile(reader, files.test, kSplitTest, num_nodes, progress, input.split, &input.num_test, text);
  }));

  input.fingerprint = reader.fingerprint();
  input.input_bytes = reader.input_bytes();
  cleanup.armed = false;
  return input;
}

Status RawInput::ForEachEdgeChunk(
    const std::function<void(std::span<const uint32_t> src, std::span<const uint32_t> dst)>& fn,
    uint64_t chunk_edges) const {
  CGCN_ASSIGN_OR_RETURN(const UniqueFd fd, OpenRegularFileForRead(edges_path));
  chunk_edges = std::max<uint64_t>(1, std::min(chunk_edges, num_edge_lines));
  std::vector<uint32_t> pairs(2 * chunk_edges), src(chunk_edges), dst(chunk_edges);
  for (uint64_t done = 0; done < num_edge_lines;) {
    const uint64_t n = std::min(chunk_edges, num_edge_lines - done);
    CGCN_RETURN_IF_ERROR(PreadExact(fd.get(), edges_path, pairs.data(), n * 8, done * 8));
    for (uint64_t i = 0; i < n; ++i) {
      src[i] = pairs[2 * i];
      dst[i] = pairs[2 * i + 1];
    }
    fn(std::span<const uint32_t>(src.data(), n), std::span<const uint32_t>(dst.data(), n));
    done += n;
  }
  return Status::Ok();
}

struct RawNodeRows::Files {
  UniqueFd features, labels;
};

Result<RawNodeRows> RawNodeRows::Open(const RawInput& input) {
  RawNodeRows rows;
  rows.features_path_ = input.features_path;
  rows.labels_path_ = input.labels_path;
  rows.num_nodes_ = input.num_nodes;
  rows.feat_dim_ = input.feat_dim;
  rows.files_ = std::make_unique<Files>();
  CGCN_ASSIGN_OR_RETURN(rows.files_->features, OpenRegularFileForRead(input.features_path));
  CGCN_ASSIGN_OR_RETURN(rows.files_->labels, OpenRegularFileForRead(input.labels_path));
  return rows;
}

RawNodeRows::RawNodeRows() = default;
RawNodeRows::RawNodeRows(RawNodeRows&&) noexcept = default;
RawNodeRows::~RawNodeRows() = default;

Status RawNodeRows::Gather(std::span<const uint32_t> ids, float* features, uint32_t* labels) const {
  const uint64_t row_bytes = uint64_t{feat_dim_} * sizeof(float);
  for (size_t i = 0; i < ids.size();) {
    size_t j = i + 1;  // [i, j) is a run of consecutive ids
    while (j < ids.size() && ids[j] == ids[j - 1] + 1) ++j;
    if (ids[j - 1] >= num_nodes_) return Status::Internal("node id " + std::to_string(ids[j - 1]) + " out of range");
    CGCN_RETURN_IF_ERROR(PreadExact(files_->features.get(), features_path_, features + i * feat_dim_,
                                    (j - i) * row_bytes, ids[i] * row_bytes));
    CGCN_RETURN_IF_ERROR(PreadExact(files_->labels.get(), labels_path_, labels + i, (j - i) * sizeof(uint32_t),
                                    uint64_t{ids[i]} * sizeof(uint32_t)));
    i = j;
  }
  return Status::Ok();
}

Result<RawGraph> ReadRawGraph(const RawReadOptions& options, const ProgressFn& progress) {
  std::error_code ec;
  std::string pattern = (fs::temp_directory_path(ec) / "cgcn-raw-XXXXXX").string();
  if (ec || ::mkdtemp(pattern.data()) == nullptr)
    return Status::IoError(pattern +
                           ": cannot create a temporary directory: " + (ec ? ec.message() : std::strerror(errno)));
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code e;
      fs::remove_all(path, e);
    }
  } remove_dir{pattern};
  CGCN_ASSIGN_OR_RETURN(RawInput input, ReadRawInput(options, pattern, progress));
  RawGraph graph;
  graph.num_nodes = input.num_nodes;
  graph.feat_dim = input.feat_dim;
  graph.num_classes = input.num_classes;
  graph.edge_src.reserve(input.num_edge_lines);
  graph.edge_dst.reserve(input.num_edge_lines);
  CGCN_RETURN_IF_ERROR(input.ForEachEdgeChunk([&](std::span<const uint32_t> s, std::span<const uint32_t> d) {
    graph.edge_src.insert(graph.edge_src.end(), s.begin(), s.end());
    graph.edge_dst.insert(graph.edge_dst.end(), d.begin(), d.end());
  }));
  graph.features.resize(uint64_t{input.num_nodes} * input.feat_dim);
  graph.labels.resize(input.num_nodes);
  {
    CGCN_ASSIGN_OR_RETURN(RawNodeRows rows, RawNodeRows::Open(input));
    std::vector<uint32_t> all(input.num_nodes);
    for (uint32_t v = 0; v < input.num_nodes; ++v) all[v] = v;
    CGCN_RETURN_IF_ERROR(rows.Gather(all, graph.features.data(), graph.labels.data()));
  }
  graph.split = std::move(input.split);
  graph.split_name = std::move(input.split_name);
  graph.num_train = input.num_train;
  graph.num_valid = input.num_valid;
  graph.num_test = input.num_test;
  graph.fingerprint = input.fingerprint;
  graph.input_bytes = input.input_bytes;
  return graph;
}

}  // namespace cgcn
