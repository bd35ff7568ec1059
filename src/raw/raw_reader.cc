#include "cgcn/raw_reader.h"

#include <stdlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cfloat>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cgcn/checksum.h"
#include "raw/npz.h"
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
    BeginFile(file, src.stored_size());  // the file's bytes follow as the source reads them
    return src;
  }
  // Hashes the path bytes, a NUL and the size as 8 little-endian bytes; the caller then feeds
  // the file's stored bytes, in order, to the returned checksum (the .npz files are read so).
  StreamingChecksum& BeginFile(const InputFile& file, uint64_t stored_size) {
    fingerprint_.Update(file.relative.data(), file.relative.size());
    const char nul = '\0';
    fingerprint_.Update(&nul, 1);
    unsigned char size_le[8];
    for (int i = 0; i < 8; ++i) size_le[i] = static_cast<unsigned char>(stored_size >> (8 * i));
    fingerprint_.Update(size_le, sizeof size_le);
    input_bytes_ += stored_size;
    return fingerprint_;
  }
  size_t block_bytes() const { return block_bytes_; }
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

// Which nodes are unlabeled (a bit per node, allocated at the first one) and the largest class id.
struct LabelSummary {
  uint64_t max_label = 0;
  uint64_t num_labeled = 0, num_unlabeled = 0;
  std::vector<uint64_t> unlabeled_bits;
  std::string source;  // the label file's path, for the split files' messages
  void Labeled(uint64_t label) {
    max_label = num_labeled == 0 ? label : std::max(max_label, label);
    ++num_labeled;
  }
  void Unlabeled(uint64_t node, uint64_t num_nodes) {
    if (unlabeled_bits.empty()) unlabeled_bits.assign((num_nodes + 63) / 64, 0);
    unlabeled_bits[node / 64] |= uint64_t{1} << (node % 64);
    ++num_unlabeled;
  }
  bool IsUnlabeled(uint64_t node) const {
    return !unlabeled_bits.empty() && (unlabeled_bits[node / 64] >> (node % 64) & 1) != 0;
  }
};

bool IsCsvUnlabeled(std::string_view field) {
  if (field.empty() || field == "-1") return true;
  if (field.size() != 3) return false;
  auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); };
  return lower(field[0]) == 'n' && lower(field[1]) == 'a' && lower(field[2]) == 'n';
}

// Whether every field of `line` marks an unlabeled node (empty, "nan" or "-1"); *fields gets
// the field count.
bool AllFieldsUnlabeled(std::string_view line, size_t* fields) {
  *fields = 0;
  bool all = true;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    const std::string_view f = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
    ++*fields;
    all = all && IsCsvUnlabeled(f);
    if (comma == std::string_view::npos) return all;
    start = comma + 1;
  }
}

// Parses a multi-label row of `tasks` fields, each exactly "0" or "1", into words[LabelWords]
// (zeroed first). On failure returns why.
std::optional<std::string> ParseLabelRow(std::string_view line, uint32_t tasks, uint32_t* words) {
  std::fill(words, words + LabelWords(tasks), 0u);
  size_t start = 0;
  for (uint32_t t = 0; t < tasks; ++t) {
    const size_t comma = line.find(',', start);
    const std::string_view f = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (f == "1") {
      words[t / 32] |= uint32_t{1} << (t % 32);
    } else if (f != "0") {
      return "field " + std::to_string(t + 1) + " (task " + std::to_string(t) + "): expected 0 or 1, found " +
             (f.empty() ? std::string("an empty field") : Quote(f)) +
             " (a multi-label row is all 0/1 values, or all empty or nan for an unlabeled node)";
    }
    start = comma + 1;
  }
  return std::nullopt;
}

// Reads node-label.csv: multi-class (1 field a line) or multi-label (L >= 2 fields of 0/1), as
// its first labeled line decides. Writes labels.u32 to `out` and, multi-label, label-bits.u32 to
// `bits_path` (created at the first labeled line). *tasks gets 0 (multi-class) or L.
Status ReadLabels(InputReader& reader, const InputFile& file, uint64_t num_nodes, const ProgressFn& progress,
                  BinaryWriter& out, const std::string& bits_path, size_t buffer_bytes, uint32_t* tasks,
                  LabelSummary* summary, uint64_t* text_bytes) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, reader.Open(file));
  const std::string expected = std::to_string(num_nodes) + " lines of one class id, or of L 0/1 values, each";
  Progress ticker(progress, "read labels", num_nodes);
  summary->source = src.path();
  *tasks = 0;
  uint32_t fields_seen = 0;  // 0 until the first labeled line: then 1 (multi-class) or L
  uint64_t first_line = 0;   // that line's number
  uint64_t leading_unlabeled = 0;
  std::optional<BinaryWriter> bits;
  std::vector<uint32_t> words;
  auto decided = [&] {
    return " (line " + std::to_string(first_line) + ", the first labeled one, has " + std::to_string(fields_seen) +
           (fields_seen == 1 ? " field: a multi-class file)" : " fields: a multi-label file)");
  };

  // Empty lines are empty fields: unlabeled nodes.
  std::string_view line;
  uint64_t rows = 0;
  while (src.Next(&line)) {
    *text_bytes += line.size() + 1;
    if (rows == num_nodes) {
      return Bad(src, "expected " + std::to_string(num_nodes) + " labels (num-node-list), found more");
    }
    size_t fields = 0;
    uint32_t value = kNoLabel;
    if (AllFieldsUnlabeled(line, &fields)) {
      if (fields != 1 && fields_seen != 0 && fields != fields_seen)
        return Bad(src, "expected " + std::to_string(fields_seen) + " fields, " + FieldsFound(fields) + decided());
      summary->Unlabeled(rows, num_nodes);
      if (fields_seen == 0) ++leading_unlabeled;
      if (bits) {
        std::fill(words.begin(), words.end(), 0u);
        CGCN_RETURN_IF_ERROR(bits->Append(words.data(), 4 * words.size()));
      }
    } else {
      if (fields_seen == 0) {
        if (fields > kMaxLabel + 1)
          return Bad(src,
                     "expected at most " + std::to_string(kMaxLabel + 1) + " label columns, " + FieldsFound(fields));
        fields_seen = static_cast<uint32_t>(fields);
        first_line = src.line_number();
        if (fields_seen > 1) {  // multi-label: the leading unlabeled rows get zero words too
          *tasks = fields_seen;
          words.assign(LabelWords(fields_seen), 0u);
          bits.emplace(buffer_bytes);
          CGCN_RETURN_IF_ERROR(bits->Create(bits_path));
          for (uint64_t r = 0; r < leading_unlabeled; ++r)
            CGCN_RETURN_IF_ERROR(bits->Append(words.data(), 4 * words.size()));
        }
      }
      if (fields_seen == 1) {
        uint64_t label = 0;
        if (fields != 1) return Bad(src, "expected 1 field (a class id), " + FieldsFound(fields) + decided());
        if (auto why = ParseSingleField(line, "a class id", &label)) return Bad(src, *why);
        if (label > kMaxLabel) {
          return Bad(src,
                     "expected a class id in [0, " + std::to_string(kMaxLabel) + "], found " + std::to_string(label));
        }
        summary->Labeled(label);
        value = static_cast<uint32_t>(label);
      } else {
        if (fields != fields_seen)
          return Bad(
              src, "expected " + std::to_string(fields_seen) + " fields of 0 or 1, " + FieldsFound(fields) + decided());
        if (auto why = ParseLabelRow(line, fields_seen, words.data())) return Bad(src, *why);
        summary->Labeled(0);
        value = 0;
        CGCN_RETURN_IF_ERROR(bits->Append(words.data(), 4 * words.size()));
      }
    }
    CGCN_RETURN_IF_ERROR(out.Append(&value, sizeof value));
    ticker.Line(++rows);
  }
  CGCN_RETURN_IF_ERROR(src.status());
  if (rows == 0) return EmptyFile(src, expected);
  if (rows != num_nodes) {
    return Status::InvalidInput(src.path() + ":" + std::to_string(rows + 1) + ": expected " +
                                std::to_string(num_nodes) + " labels (num-node-list), found only " +
                                std::to_string(rows));
  }
  if (summary->num_labeled == 0) {
    return Status::InvalidInput(src.path() + ": expected at least one labeled node, found " + std::to_string(rows) +
                                " unlabeled ones");
  }
  if (bits) CGCN_RETURN_IF_ERROR(bits->Finish());
  ticker.Done(rows);
  return Status::Ok();
}

Status ReadSplitFile(InputReader& reader, const InputFile& file, uint8_t bit, uint64_t num_nodes,
                     const LabelSummary& labels, const ProgressFn& progress, std::vector<uint8_t>& split,
                     uint64_t* count, uint64_t* text_bytes) {
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
    if (labels.IsUnlabeled(id)) {
      return Bad(src, "node id " + std::to_string(id) + " has no label in " + labels.source +
                          " (expected only labeled nodes in a split)");
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
  // An empty valid file is a split without validation nodes (training then selects no model and
  // never stops early); train and test must list nodes.
  if (rows == 0 && bit != kSplitValid) return EmptyFile(src, expected);
  *count = rows;
  ticker.Done(rows);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------
// The .npz layout (raw/data.npz, raw/node-label.npz): see cgcn/raw_reader.h.

// One .npy member: where it is, its header, and for the one-element count arrays their value.
struct NpzArray {
  std::string where;  // "PATH member NAME.npy"
  npz::ZipMember member;
  npz::NpyHeader header;
  size_t item = 0;  // bytes per element
};

std::string ShapeText(const std::vector<uint64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The first min(want, size) bytes of a member, decoded from stored blocks read with pread.
Result<std::vector<char>> ReadMemberPrefix(int fd, const std::string& path, const npz::ZipMember& m,
                                           const std::string& where, uint64_t want) {
  want = std::min(want, m.size);
  std::vector<char> out(static_cast<size_t>(want));
  npz::MemberDecoder dec(m, where);
  std::vector<char> in(64 << 10);
  uint64_t got = 0, fed = 0;
  std::span<const char> pending;
  while (got < want) {
    if (pending.empty() && fed < m.stored_size) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), m.stored_size - fed));
      CGCN_RETURN_IF_ERROR(PreadExact(fd, path, in.data(), n, m.data_offset + fed));
      fed += n;
      pending = std::span<const char>(in.data(), n);
    }
    CGCN_ASSIGN_OR_RETURN(const size_t n, dec.Run(&pending, out.data() + got, static_cast<size_t>(want - got)));
    got += n;
    if (n == 0 && pending.empty() && fed == m.stored_size) break;  // the member ends early
  }
  if (got < want) {
    CGCN_RETURN_IF_ERROR(dec.Finish());  // says why (a truncated deflate stream)
    return Status::Internal(where + ": decoded " + std::to_string(got) + " of " + std::to_string(want) + " bytes");
  }
  return out;
}

// Finds member NAME.npy, reads and checks its header, and its dtype against `dtypes`.
Result<NpzArray> InspectArray(int fd, const std::string& path, const std::vector<npz::ZipMember>& members,
                              const std::string& name, std::initializer_list<std::string_view> dtypes) {
  const std::string member_name = name + ".npy";
  const npz::ZipMember* found = nullptr;
  std::string listed;
  for (const npz::ZipMember& m : members) {
    if (m.name == member_name) found = &m;
    listed += (listed.empty() ? "" : ", ") + Quote(m.name);
  }
  if (found == nullptr) {
    return Status::InvalidInput(path + ": expected a member " + member_name + ", found " +
                                (listed.empty() ? std::string("no members") : "only " + listed));
  }
  NpzArray a;
  a.where = path + " member " + member_name;
  a.member = *found;
  CGCN_ASSIGN_OR_RETURN(std::vector<char> first, ReadMemberPrefix(fd, path, a.member, a.where, npz::kNpyPreambleBytes));
  CGCN_ASSIGN_OR_RETURN(const uint64_t header_bytes, npz::NpyHeaderBytes(first, a.where));
  if (header_bytes > a.member.size) {
    return Status::InvalidInput(a.where + " byte " + std::to_string(a.member.size) + ": expected an .npy header of " +
                                std::to_string(header_bytes) + " bytes, found a member of only " +
                                std::to_string(a.member.size) + " bytes (truncated)");
  }
  CGCN_ASSIGN_OR_RETURN(std::vector<char> header, ReadMemberPrefix(fd, path, a.member, a.where, header_bytes));
  const std::vector<std::string_view> allowed(dtypes);
  CGCN_ASSIGN_OR_RETURN(a.header, npz::ParseNpyHeader(header, a.member.size, a.where, allowed));
  a.item = static_cast<size_t>(a.header.descr[2] - '0');
  return a;
}

Status BadShape(const NpzArray& a, const std::string& expected) {
  return Status::InvalidInput(a.where + " byte " + std::to_string(a.header.shape_at) + ": expected shape " + expected +
                              ", found " + ShapeText(a.header.shape));
}

// The value of a one-element integer array (num_nodes_list, num_edges_list).
Result<uint64_t> ReadCount(int fd, const std::string& path, const NpzArray& a, const std::string& what) {
  if (a.header.shape != std::vector<uint64_t>{1}) return BadShape(a, "(1,) (one graph)");
  CGCN_ASSIGN_OR_RETURN(std::vector<char> bytes,
                        ReadMemberPrefix(fd, path, a.member, a.where, a.header.data_offset + a.item));
  int64_t v = 0;
  if (a.item == 8) {
    std::memcpy(&v, bytes.data() + a.header.data_offset, 8);
  } else {
    int32_t v32 = 0;
    std::memcpy(&v32, bytes.data() + a.header.data_offset, 4);
    v = v32;
  }
  if (v < 0) {
    return Status::InvalidInput(a.where + " byte " + std::to_string(a.header.data_offset) + ": expected " + what +
                                " >= 0, found " + std::to_string(v));
  }
  return static_cast<uint64_t>(v);
}

// Receives a member's array data (the bytes after its .npy header) in order, in pieces of any
// size, as whole elements.
class ElementSink {
 public:
  explicit ElementSink(const NpzArray& a) : a_(a) {}
  virtual ~ElementSink() = default;
  Status Data(const char* p, size_t n) {
    if (carry_n_ > 0) {
      const size_t take = std::min(n, a_.item - carry_n_);
      std::memcpy(carry_ + carry_n_, p, take);
      carry_n_ += take;
      p += take;
      n -= take;
      if (carry_n_ < a_.item) return Status::Ok();
      CGCN_RETURN_IF_ERROR(Elements(carry_, 1, next_));
      ++next_;
      carry_n_ = 0;
    }
    const size_t whole = n / a_.item;
    if (whole > 0) {
      CGCN_RETURN_IF_ERROR(Elements(p, whole, next_));
      next_ += whole;
    }
    carry_n_ = n - whole * a_.item;
    std::memcpy(carry_, p + whole * a_.item, carry_n_);
    return Status::Ok();
  }
  virtual Status Finish() = 0;
  uint64_t elements_done() const { return next_; }

 protected:
  // `count` elements starting with element number `first` (in the member's storage order).
  virtual Status Elements(const char* p, uint64_t count, uint64_t first) = 0;
  // "PATH member NAME byte B (CONTEXT)": the message prefix for element `index`.
  std::string At(uint64_t index, const std::string& context) const {
    return a_.where + " byte " + std::to_string(a_.header.data_offset + index * a_.item) + " (" + context + ")";
  }
  const NpzArray& a_;

 private:
  char carry_[8];
  size_t carry_n_ = 0;
  uint64_t next_ = 0;
};

int64_t LoadInt(const char* p, size_t item) {
  if (item == 8) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// IEEE 754 binary16 -> binary32 (exact).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: mant * 2^-24, exact in a float
    const float v = static_cast<float>(mant) * 0x1p-24f;
    bits = sign | std::bit_cast<uint32_t>(v);
  }
  return std::bit_cast<float>(bits);
}

// One element of a float dtype ('<f2', '<f4', '<f8') as a double (every value is exact).
double LoadFloat(const char* p, size_t item) {
  if (item == 2) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return HalfToFloat(h);
  }
  if (item == 4) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  double d;
  std::memcpy(&d, p, 8);
  return d;
}

std::string ShowNumber(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// edge_index [2, E] -> edges.u32 (src, dst) pairs. Fortran order interleaves each edge's two ids;
// C order holds every source, then every destination: the sources go to a scratch file first,
// which the destinations are then paired with.
class EdgeSink final : public ElementSink {
 public:
  EdgeSink(const NpzArray& a, uint64_t num_nodes, uint64_t num_edges, BinaryWriter& out, const std::string& src_path,
           size_t buffer_bytes, const ProgressFn& progress)
      : ElementSink(a),
        num_nodes_(num_nodes),
        num_edges_(num_edges),
        out_(out),
        src_path_(src_path),
        src_out_(buffer_bytes),
        buffer_bytes_(std::max<size_t>(buffer_bytes / 4, 1)),
        ticker_(progress, "read edges", num_edges) {}
  Status Start() {
    if (!a_.header.fortran_order) CGCN_RETURN_IF_ERROR(src_out_.Create(src_path_));
    return Status::Ok();
  }
  Status Finish() override {
    if (elements_done() != 2 * num_edges_) {
      return Status::Internal(a_.where + ": " + std::to_string(elements_done()) + " ids streamed, expected " +
                              std::to_string(2 * num_edges_));
    }
    src_in_ = UniqueFd();
    ::unlink(src_path_.c_str());
    ticker_.Done(num_edges_);
    return Status::Ok();
  }

 protected:
  Status Elements(const char* p, uint64_t count, uint64_t first) override {
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t k = first + i;
      const bool fortran = a_.header.fortran_order;
      const uint64_t edge = fortran ? k / 2 : k % num_edges_;
      const bool is_dst = fortran ? (k & 1) != 0 : k >= num_edges_;
      const int64_t v = LoadInt(p + i * a_.item, a_.item);
      if (v < 0 || static_cast<uint64_t>(v) >= num_nodes_) {
        const std::string ctx = "edge " + std::to_string(edge) + ", " + (is_dst ? "destination" : "source");
        if (v < 0) return Status::InvalidInput(At(k, ctx) + ": expected a node id >= 0, found " + std::to_string(v));
        return Status::InvalidInput(At(k, ctx) + ": expected node ids < " + std::to_string(num_nodes_) +
                                    " (num_nodes_list says " + std::to_string(num_nodes_) + " nodes), found " +
                                    std::to_string(v));
      }
      const auto id = static_cast<uint32_t>(v);
      if (fortran) {
        if (!is_dst) {
          pending_src_ = id;
          continue;
        }
        const uint32_t pair[2] = {pending_src_, id};
        CGCN_RETURN_IF_ERROR(out_.Append(pair, sizeof pair));
      } else if (!is_dst) {
        CGCN_RETURN_IF_ERROR(src_out_.Append(&id, sizeof id));
        if (k + 1 == num_edges_) {
          CGCN_RETURN_IF_ERROR(src_out_.Finish());
          CGCN_ASSIGN_OR_RETURN(src_in_, OpenRegularFileForRead(src_path_));
          src_buf_.resize(buffer_bytes_);
        }
        continue;
      } else {
        if (src_pos_ == src_end_) {  // the next block of sources
          const uint64_t n = std::min<uint64_t>(src_buf_.size(), num_edges_ - edge);
          CGCN_RETURN_IF_ERROR(PreadExact(src_in_.get(), src_path_, src_buf_.data(), n * 4, edge * 4));
          src_pos_ = 0;
          src_end_ = n;
        }
        const uint32_t pair[2] = {src_buf_[src_pos_++], id};
        CGCN_RETURN_IF_ERROR(out_.Append(pair, sizeof pair));
      }
      if ((edge & 0xffff) == 0) ticker_.Done(edge);
    }
    return Status::Ok();
  }

 private:
  uint64_t num_nodes_, num_edges_;
  BinaryWriter& out_;
  std::string src_path_;
  BinaryWriter src_out_;
  size_t buffer_bytes_;
  UniqueFd src_in_;
  std::vector<uint32_t> src_buf_;
  uint64_t src_pos_ = 0, src_end_ = 0;
  uint32_t pending_src_ = 0;
  Progress ticker_;
};

// node_feat [N, F] (C order) -> features.f32 rows.
class FeatureSink final : public ElementSink {
 public:
  FeatureSink(const NpzArray& a, uint64_t feat_dim, BinaryWriter& out, const ProgressFn& progress)
      : ElementSink(a), feat_dim_(feat_dim), out_(out), ticker_(progress, "read features", a.header.shape[0]) {}
  Status Finish() override {
    ticker_.Done(a_.header.shape[0]);
    return Status::Ok();
  }

 protected:
  Status Elements(const char* p, uint64_t count, uint64_t first) override {
    if (a_.item == 4) {  // the common case: checked in place, written as is
      uint32_t non_finite = 0;
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t bits;
        std::memcpy(&bits, p + i * 4, 4);
        non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      if (non_finite == 0) {
        CGCN_RETURN_IF_ERROR(out_.Append(p, count * 4));
        Tick(first + count);
        return Status::Ok();
      }
    }
    for (uint64_t i = 0; i < count; ++i) {
      const double v = LoadFloat(p + i * a_.item, a_.item);
      const uint64_t k = first + i;
      if (!std::isfinite(v) || std::fabs(v) > FLT_MAX) {
        const std::string ctx =
            "node " + std::to_string(k / feat_dim_) + ", feature " + std::to_string(k % feat_dim_ + 1);
        return Status::InvalidInput(At(k, ctx) + ": " +
                                    (std::isfinite(v) ? "expected a number that fits a 32-bit float, found "
                                                      : "expected a finite number, found ") +
                                    ShowNumber(v));
      }
      const auto f = static_cast<float>(v);
      CGCN_RETURN_IF_ERROR(out_.Append(&f, sizeof f));
    }
    Tick(first + count);
    return Status::Ok();
  }

 private:
  void Tick(uint64_t done) {
    const uint64_t rows = done / feat_dim_;
    if (rows / kProgressEvery != last_tick_) {
      last_tick_ = rows / kProgressEvery;
      ticker_.Done(rows);
    }
  }
  uint64_t feat_dim_;
  BinaryWriter& out_;
  Progress ticker_;
  uint64_t last_tick_ = 0;
};

// node_label [N] or [N, 1] -> labels.u32; NaN (or -1) is an unlabeled node.
// node_label [N, L], L >= 2 -> labels.u32 (0 or kNoLabel) and label-bits.u32: each row all 0/1
// (a multi-label row) or all NaN/-1 (an unlabeled node).
class LabelSink final : public ElementSink {
 public:
  // tasks 0: [N] or [N, 1] class ids; else [N, tasks] 0/1 rows written to *bits.
  LabelSink(const NpzArray& a, uint64_t num_nodes, BinaryWriter& out, LabelSummary* summary, const ProgressFn& progress,
            uint32_t tasks = 0, BinaryWriter* bits = nullptr)
      : ElementSink(a),
        num_nodes_(num_nodes),
        out_(out),
        summary_(summary),
        ticker_(progress, "read labels", num_nodes),
        tasks_(tasks),
        bits_(bits),
        row_(LabelWords(tasks), 0u) {}
  Status Finish() override {
    if (summary_->num_labeled == 0) {
      return Status::InvalidInput(a_.where + ": expected at least one labeled node, found " +
                                  std::to_string(num_nodes_) + " unlabeled ones");
    }
    ticker_.Done(num_nodes_);
    return Status::Ok();
  }

 protected:
  Status Elements(const char* p, uint64_t count, uint64_t first) override {
    const bool is_float = a_.header.descr[1] == 'f';
    if (tasks_ != 0) return RowElements(p, count, first, is_float);
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t node = first + i;
      uint32_t value = kNoLabel;
      const double v =
          is_float ? LoadFloat(p + i * a_.item, a_.item) : static_cast<double>(LoadInt(p + i * a_.item, a_.item));
      if (std::isnan(v) || v == -1) {
        summary_->Unlabeled(node, num_nodes_);
      } else {
        const std::string ctx = "node " + std::to_string(node);
        if (v != std::floor(v)) {
          return Status::InvalidInput(
              At(node, ctx) + ": expected an integral class id (or NaN for an unlabeled node), found " + ShowNumber(v));
        }
        if (v < 0 || v > static_cast<double>(kMaxLabel)) {
          return Status::InvalidInput(At(node, ctx) + ": expected a class id in [0, " + std::to_string(kMaxLabel) +
                                      "] (or NaN or -1 for an unlabeled node), found " + ShowNumber(v));
        }
        value = static_cast<uint32_t>(v);
        summary_->Labeled(value);
      }
      CGCN_RETURN_IF_ERROR(out_.Append(&value, sizeof value));
      if ((node & 0xffff) == 0) ticker_.Done(node);
    }
    return Status::Ok();
  }

 private:
  // Multi-label: element e is task e % L of node e / L; a row is written at its last element.
  Status RowElements(const char* p, uint64_t count, uint64_t first, bool is_float) {
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t e = first + i, node = e / tasks_;
      const auto t = static_cast<uint32_t>(e % tasks_);
      if (t == 0) {
        std::fill(row_.begin(), row_.end(), 0u);
        row_unlabeled_ = 0;
      }
      const double v =
          is_float ? LoadFloat(p + i * a_.item, a_.item) : static_cast<double>(LoadInt(p + i * a_.item, a_.item));
      if (std::isnan(v) || v == -1) {
        ++row_unlabeled_;
      } else if (v == 1) {
        row_[t / 32] |= uint32_t{1} << (t % 32);
      } else if (v != 0) {
        return Status::InvalidInput(At(e, "node " + std::to_string(node) + " task " + std::to_string(t)) +
                                    ": expected 0 or 1 (or NaN or -1 in every task of an unlabeled node), found " +
                                    ShowNumber(v));
      }
      if (t + 1 < tasks_) continue;
      uint32_t value = 0;
      if (row_unlabeled_ == tasks_) {
        value = kNoLabel;
        summary_->Unlabeled(node, num_nodes_);
      } else if (row_unlabeled_ != 0) {
        return Status::InvalidInput(At(e, "node " + std::to_string(node)) + ": " + std::to_string(row_unlabeled_) +
                                    " of " + std::to_string(tasks_) +
                                    " tasks are NaN or -1 (expected all of a node's tasks 0 or 1, or all NaN or -1)");
      } else {
        summary_->Labeled(0);
      }
      CGCN_RETURN_IF_ERROR(out_.Append(&value, sizeof value));
      CGCN_RETURN_IF_ERROR(bits_->Append(row_.data(), 4 * row_.size()));
      if ((node & 0xffff) == 0) ticker_.Done(node);
    }
    return Status::Ok();
  }

  uint64_t num_nodes_;
  BinaryWriter& out_;
  LabelSummary* summary_;
  Progress ticker_;
  uint32_t tasks_ = 0;
  BinaryWriter* bits_ = nullptr;
  std::vector<uint32_t> row_;
  uint32_t row_unlabeled_ = 0;
};

// A one-element array streamed again: its value must be the one read when it was inspected.
class CountSink final : public ElementSink {
 public:
  CountSink(const NpzArray& a, uint64_t expected) : ElementSink(a), expected_(expected) {}
  Status Finish() override { return Status::Ok(); }

 protected:
  Status Elements(const char* p, uint64_t count, uint64_t first) override {
    for (uint64_t i = 0; i < count; ++i) {
      const int64_t v = LoadInt(p + i * a_.item, a_.item);
      if (v < 0 || static_cast<uint64_t>(v) != expected_) {
        return Status::IoError(At(first + i, "value") + ": read " + std::to_string(expected_) + " first, then " +
                               std::to_string(v) + " (the file changed while it was read)");
      }
    }
    return Status::Ok();
  }

 private:
  uint64_t expected_;
};

// A member to stream and what receives its data.
struct MemberJob {
  const NpzArray* array;
  ElementSink* sink;
  RawPhaseStats* stats;  // time, stored and decoded bytes; may be null
};

// Reads an .npz file once, front to back, in blocks: every stored byte goes into the fingerprint,
// and the stored bytes of each job's member are decoded and handed to its sink (after the .npy
// header, which was checked when the member was inspected).
Status StreamNpzFile(InputReader& reader, const InputFile& file, int fd, uint64_t file_size,
                     std::vector<MemberJob> jobs) {
  using Clock = std::chrono::steady_clock;
  std::sort(jobs.begin(), jobs.end(), [](const MemberJob& a, const MemberJob& b) {
    return a.array->member.data_offset < b.array->member.data_offset;
  });
  StreamingChecksum& hash = reader.BeginFile(file, file_size);
  const size_t block = std::max<size_t>(reader.block_bytes(), 64);
  std::vector<char> buf(block), out(block);
  struct Live {
    std::unique_ptr<npz::MemberDecoder> dec;
    uint64_t decoded = 0;
    bool done = false;
  };
  std::vector<Live> live(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) {
    live[j].dec = std::make_unique<npz::MemberDecoder>(jobs[j].array->member, jobs[j].array->where);
    if (jobs[j].stats != nullptr) jobs[j].stats->stored_bytes += jobs[j].array->member.stored_size;
  }
  // Decodes what `in` holds (all of it, or nothing but pending output) into job j's sink.
  auto pump = [&](size_t j, std::span<const char> in) -> Status {
    const NpzArray& a = *jobs[j].array;
    do {
      CGCN_ASSIGN_OR_RETURN(const size_t n, live[j].dec->Run(&in, out.data(), out.size()));
      uint64_t skip = 0;
      if (live[j].decoded < a.header.data_offset) skip = std::min<uint64_t>(n, a.header.data_offset - live[j].decoded);
      live[j].decoded += n;
      if (jobs[j].stats != nullptr) jobs[j].stats->text_bytes += n;
      if (n > skip) CGCN_RETURN_IF_ERROR(jobs[j].sink->Data(out.data() + skip, n - skip));
      if (n < out.size() && in.empty()) return Status::Ok();
    } while (true);
  };
  for (uint64_t off = 0; off < file_size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block, file_size - off));
    CGCN_RETURN_IF_ERROR(PreadExact(fd, file.path, buf.data(), n, off));
    hash.Update(buf.data(), n);
    const uint64_t end = off + n;
    for (size_t j = 0; j < jobs.size(); ++j) {
      if (live[j].done) continue;
      const npz::ZipMember& m = jobs[j].array->member;
      const uint64_t m_end = m.data_offset + m.stored_size;
      if (m.data_offset >= end) break;  // sorted: the rest start later
      const auto t0 = Clock::now();
      if (m_end > off) {
        const uint64_t lo = std::max(off, m.data_offset), hi = std::min(end, m_end);
        CGCN_RETURN_IF_ERROR(pump(j, std::span<const char>(buf.data() + (lo - off), static_cast<size_t>(hi - lo))));
      }
      if (m_end <= end) {  // the member's last stored byte was in this block
        CGCN_RETURN_IF_ERROR(pump(j, {}));
        CGCN_RETURN_IF_ERROR(live[j].dec->Finish());
        CGCN_RETURN_IF_ERROR(jobs[j].sink->Finish());
        live[j].done = true;
      }
      if (jobs[j].stats != nullptr) jobs[j].stats->seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    off = end;
  }
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (!live[j].done) return Status::Internal(jobs[j].array->where + ": not streamed to its end");
  }
  return Status::Ok();
}

// An open .npz file and its members.
struct NpzFile {
  UniqueFd fd;
  uint64_t size = 0;
  std::vector<npz::ZipMember> members;
};

Result<NpzFile> OpenNpz(const InputFile& file) {
  NpzFile f;
  CGCN_ASSIGN_OR_RETURN(f.fd, OpenRegularFileForRead(file.path, &f.size));
  CGCN_ASSIGN_OR_RETURN(f.members, npz::ReadZipDirectory(f.fd.get(), file.path, f.size));
  return f;
}

// Reads raw/data.npz and raw/node-label.npz into the scratch files. Every header and shape is
// checked before anything is written; then each file is streamed once.
Status ReadNpzInput(InputReader& reader, const InputFile& data_file, const InputFile& label_file,
                    const RawReadOptions& options, const ProgressFn& progress, RawInput& input,
                    const std::string& src_scratch, LabelSummary* labels) {
  CGCN_ASSIGN_OR_RETURN(NpzFile data, OpenNpz(data_file));
  CGCN_ASSIGN_OR_RETURN(NpzFile label, OpenNpz(label_file));
  const int dfd = data.fd.get();
  const std::string& dpath = data_file.path;
  CGCN_ASSIGN_OR_RETURN(const NpzArray num_nodes_a,
                        InspectArray(dfd, dpath, data.members, "num_nodes_list", {"<i8", "<i4"}));
  CGCN_ASSIGN_OR_RETURN(const NpzArray num_edges_a,
                        InspectArray(dfd, dpath, data.members, "num_edges_list", {"<i8", "<i4"}));
  CGCN_ASSIGN_OR_RETURN(const NpzArray edges_a, InspectArray(dfd, dpath, data.members, "edge_index", {"<i8", "<i4"}));
  CGCN_ASSIGN_OR_RETURN(const NpzArray feat_a,
                        InspectArray(dfd, dpath, data.members, "node_feat", {"<f4", "<f2", "<f8"}));
  CGCN_ASSIGN_OR_RETURN(const NpzArray label_a, InspectArray(label.fd.get(), label_file.path, label.members,
                                                             "node_label", {"<f4", "<f8", "<f2", "<i8", "<i4"}));
  CGCN_ASSIGN_OR_RETURN(const uint64_t num_nodes, ReadCount(dfd, dpath, num_nodes_a, "a node count"));
  CGCN_ASSIGN_OR_RETURN(const uint64_t num_edges, ReadCount(dfd, dpath, num_edges_a, "an edge count"));
  const std::string nodes_at = num_nodes_a.where + " byte " + std::to_string(num_nodes_a.header.data_offset);
  if (num_nodes == 0) return Status::InvalidInput(nodes_at + ": expected a node count >= 1, found 0");
  if (num_nodes > kMaxNodes) {
    return Status::Unsupported(nodes_at + ": expected a node count <= " + std::to_string(kMaxNodes) +
                               " (METIS's 32-bit ids), found " + std::to_string(num_nodes));
  }
  const std::string n = std::to_string(num_nodes);
  const std::string says_n = " (num_nodes_list says " + n + " nodes)";
  const std::vector<uint64_t>& es = edges_a.header.shape;
  if (es.size() != 2 || es[0] != 2 || es[1] != num_edges) {
    return BadShape(edges_a, "(2, " + std::to_string(num_edges) + ") (num_edges_list says " +
                                 std::to_string(num_edges) + " edges)");
  }
  if (num_edges == 0)
    return Status::InvalidInput(edges_a.where + " byte " + std::to_string(edges_a.header.shape_at) +
                                ": expected at least one edge, found shape (2, 0)");
  const std::vector<uint64_t>& fs = feat_a.header.shape;
  if (fs.size() != 2 || fs[0] != num_nodes || fs[1] == 0 || fs[1] > UINT32_MAX) {
    return BadShape(feat_a, "(" + n + ", F) with 1 <= F < 2^32" + says_n);
  }
  if (feat_a.header.fortran_order && fs[1] > 1 && num_nodes > 1) {
    return Status::InvalidInput(feat_a.where + " byte " + std::to_string(feat_a.header.fortran_order_at) +
                                ": expected fortran_order False (rows of features one after " +
                                "another), found True; re-save the array with numpy.ascontiguousarray");
  }
  const std::vector<uint64_t>& ls = label_a.header.shape;
  // (N,) or (N, 1): class ids; (N, L) with L >= 2: a multi-label task.
  if (!(ls.size() == 1 || ls.size() == 2) || ls[0] != num_nodes || (ls.size() == 2 && ls[1] > kMaxLabel + 1)) {
    return BadShape(label_a, "(" + n + ",), (" + n + ", 1) or (" + n + ", L) with L <= 65536" + says_n);
  }
  const uint32_t tasks = ls.size() == 2 && ls[1] >= 2 ? static_cast<uint32_t>(ls[1]) : 0;
  if (tasks != 0 && label_a.header.fortran_order && num_nodes > 1) {
    return Status::InvalidInput(label_a.where + " byte " + std::to_string(label_a.header.fortran_order_at) +
                                ": expected fortran_order False (each node's tasks one after another), found True; "
                                "re-save the array with numpy.ascontiguousarray");
  }
  input.num_nodes = static_cast<uint32_t>(num_nodes);
  input.feat_dim = static_cast<uint32_t>(fs[1]);
  input.num_edge_lines = num_edges;

  // Now stream: data.npz (edges and features), then node-label.npz.
  RawPhaseStats edge_stats{"edges"}, feat_stats{"features"}, label_stats{"labels"};
  BinaryWriter edges_out(options.scratch_buffer_bytes), feat_out(options.scratch_buffer_bytes),
      labels_out(options.scratch_buffer_bytes);
  CGCN_RETURN_IF_ERROR(edges_out.Create(input.edges_path));
  CGCN_RETURN_IF_ERROR(feat_out.Create(input.features_path));
  EdgeSink edge_sink(edges_a, num_nodes, num_edges, edges_out, src_scratch, options.scratch_buffer_bytes, progress);
  CGCN_RETURN_IF_ERROR(edge_sink.Start());
  FeatureSink feat_sink(feat_a, fs[1], feat_out, progress);
  CountSink nodes_sink(num_nodes_a, num_nodes), edges_count_sink(num_edges_a, num_edges);
  CGCN_RETURN_IF_ERROR(StreamNpzFile(reader, data_file, dfd, data.size,
                                     {{&num_nodes_a, &nodes_sink, nullptr},
                                      {&num_edges_a, &edges_count_sink, nullptr},
                                      {&edges_a, &edge_sink, &edge_stats},
                                      {&feat_a, &feat_sink, &feat_stats}}));
  CGCN_RETURN_IF_ERROR(edges_out.Finish());
  CGCN_RETURN_IF_ERROR(feat_out.Finish());
  CGCN_RETURN_IF_ERROR(labels_out.Create(input.labels_path));
  labels->source = label_a.where;
  BinaryWriter bits_out(options.scratch_buffer_bytes);
  if (tasks != 0) CGCN_RETURN_IF_ERROR(bits_out.Create(input.label_bits_path));
  LabelSink label_sink(label_a, num_nodes, labels_out, labels, progress, tasks, &bits_out);
  CGCN_RETURN_IF_ERROR(
      StreamNpzFile(reader, label_file, label.fd.get(), label.size, {{&label_a, &label_sink, &label_stats}}));
  CGCN_RETURN_IF_ERROR(labels_out.Finish());
  if (tasks != 0) CGCN_RETURN_IF_ERROR(bits_out.Finish());
  input.label_tasks = tasks;
  // In the order the CSV layout reads them.
  input.phases.push_back(std::move(edge_stats));
  input.phases.push_back(std::move(feat_stats));
  input.phases.push_back(std::move(label_stats));
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

// The input files of a dataset, resolved (gz or plain) in reading order: the CSV layout, or the
// .npz one (raw/data.npz and raw/node-label.npz), then the split files.
struct InputFiles {
  std::string dir;
  std::string split_name;
  bool npz = false;
  InputFile num_nodes;  // CSV layout
  std::optional<InputFile> num_edges;
  InputFile edges, labels;
  std::optional<InputFile> features;  // absent: a featureless graph
  InputFile data_npz, label_npz;      // .npz layout
  InputFile train, valid, test;
  std::vector<const InputFile*> InOrder() const {
    std::vector<const InputFile*> v;
    if (npz) {
      v = {&data_npz, &label_npz};
    } else {
      v = {&num_nodes};
      if (num_edges) v.push_back(&*num_edges);
      v.push_back(&edges);
      if (features) v.push_back(&*features);
      v.push_back(&labels);
    }
    for (const InputFile* f : {&train, &valid, &test}) v.push_back(f);
    return v;
  }
};

// Resolves every file before any is read, so a missing one fails fast. The two layouts may not
// be mixed: an .npz file next to any raw CSV file is refused, naming both.
Result<InputFiles> ResolveInputFiles(const RawReadOptions& options) {
  InputFiles f;
  f.dir = options.dir;
  while (f.dir.size() > 1 && f.dir.back() == '/') f.dir.pop_back();
  std::error_code ec;
  if (f.dir.empty() || !fs::is_directory(f.dir, ec))
    return Status::IoError((f.dir.empty() ? "''" : f.dir) + ": no such directory");
  CGCN_ASSIGN_OR_RETURN(f.split_name, ChooseSplit(f.dir, options.split_name));
  std::optional<std::string> npz_found;
  for (const char* name : {"raw/data.npz", "raw/node-label.npz"}) {
    if (fs::exists(f.dir + "/" + name, ec)) {
      npz_found = name;
      break;
    }
  }
  if (npz_found) {
    for (const char* base : {"raw/num-node-list", "raw/num-edge-list", "raw/edge", "raw/node-feat", "raw/node-label"}) {
      if (Result<std::string> csv = ResolveCsvPath(f.dir + "/" + base); csv.ok()) {
        return Status::InvalidInput(f.dir + "/" + *npz_found + " and " + *csv +
                                    " are both present: expected one raw layout, the .npz files (raw/data.npz, "
                                    "raw/node-label.npz) or the CSV files; remove one");
      }
    }
    f.npz = true;
    for (auto [file, name] : {std::pair{&f.data_npz, "raw/data.npz"}, std::pair{&f.label_npz, "raw/node-label.npz"}}) {
      file->relative = name;
      file->path = f.dir + "/" + name;
      if (!fs::exists(file->path, ec)) {
        return Status::IoError(file->path + ": no such file (expected with " + f.dir + "/" + *npz_found +
                               ", the .npz layout)");
      }
    }
  } else {
    CGCN_ASSIGN_OR_RETURN(f.num_nodes, Resolve(f.dir, "raw/num-node-list"));
    if (auto r = Resolve(f.dir, "raw/num-edge-list"); r.ok()) f.num_edges = std::move(r).value();
    CGCN_ASSIGN_OR_RETURN(f.edges, Resolve(f.dir, "raw/edge"));
    if (auto r = Resolve(f.dir, "raw/node-feat"); r.ok()) f.features = std::move(r).value();
    CGCN_ASSIGN_OR_RETURN(f.labels, Resolve(f.dir, "raw/node-label"));
  }
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
  input.label_bits_path = scratch_dir + "/label-bits.u32";
  const std::string src_scratch = scratch_dir + "/edges.src.u32";  // the .npz layout's C-order sources
  // The scratch files go away on every failure path.
  struct Cleanup {
    const RawInput& input;
    const std::string& src_scratch;
    bool armed = true;
    ~Cleanup() {
      if (!armed) return;
      for (const std::string* p :
           {&input.edges_path, &input.features_path, &input.labels_path, &input.label_bits_path, &src_scratch})
        ::unlink(p->c_str());
    }
  } cleanup{input, src_scratch};

  // The files are read (and fingerprinted) in exactly this order.
  InputReader reader(options.text_block_bytes);
  LabelSummary labels;
  uint64_t num_nodes = 0;
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
  if (files.npz) {
    CGCN_RETURN_IF_ERROR(
        ReadNpzInput(reader, files.data_npz, files.label_npz, options, progress, input, src_scratch, &labels));
    num_nodes = input.num_nodes;
  } else {
    const InputFile& num_node_file = files.num_nodes;
    const std::optional<InputFile>& num_edge_file = files.num_edges;
    CGCN_ASSIGN_OR_RETURN(num_nodes, ReadSingleCount(reader, num_node_file, "a node count"));
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
    CGCN_RETURN_IF_ERROR(phase("edges", [&](uint64_t* text) {
      BinaryWriter out(options.scratch_buffer_bytes);
      CGCN_RETURN_IF_ERROR(out.Create(input.edges_path));
      CGCN_RETURN_IF_ERROR(ReadEdges(reader, files.edges, num_nodes, declared_edges,
                                     num_edge_file ? num_edge_file->path : std::string(), progress, out,
                                     &input.num_edge_lines, text));
      return out.Finish();
    }));
    if (files.features) {
      CGCN_RETURN_IF_ERROR(phase("features", [&](uint64_t* text) {
        BinaryWriter out(options.scratch_buffer_bytes);
        CGCN_RETURN_IF_ERROR(out.Create(input.features_path));
        CGCN_RETURN_IF_ERROR(ReadFeatures(reader, *files.features, num_nodes, progress, out, &input.feat_dim, text));
        return out.Finish();
      }));
    }  // else featureless: feat_dim stays 0 and features.f32 is not written (cgcn/fastrp.h may write it)
    CGCN_RETURN_IF_ERROR(phase("labels", [&](uint64_t* text) {
      BinaryWriter out(options.scratch_buffer_bytes);
      CGCN_RETURN_IF_ERROR(out.Create(input.labels_path));
      CGCN_RETURN_IF_ERROR(ReadLabels(reader, files.labels, num_nodes, progress, out, input.label_bits_path,
                                      options.scratch_buffer_bytes, &input.label_tasks, &labels, text));
      return out.Finish();
    }));
  }
  input.num_classes = input.label_tasks != 0 ? input.label_tasks : static_cast<uint32_t>(labels.max_label + 1);
  if (input.label_tasks == 0) input.label_bits_path.clear();
  input.num_unlabeled = labels.num_unlabeled;
  input.split.assign(num_nodes, 0);
  CGCN_RETURN_IF_ERROR(phase("split", [&](uint64_t* text) {
    CGCN_RETURN_IF_ERROR(ReadSplitFile(reader, files.train, kSplitTrain, num_nodes, labels, progress, input.split,
                                       &input.num_train, text));
    CGCN_RETURN_IF_ERROR(ReadSplitFile(reader, files.valid, kSplitValid, num_nodes, labels, progress, input.split,
                                       &input.num_valid, text));
    return ReadSplitFile(reader, files.test, kSplitTest, num_nodes, labels, progress, input.split, &input.num_test,
                         text);
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
  UniqueFd features, labels, label_bits;
};

Result<RawNodeRows> RawNodeRows::Open(const RawInput& input) {
  RawNodeRows rows;
  rows.features_path_ = input.features_path;
  rows.labels_path_ = input.labels_path;
  rows.num_nodes_ = input.num_nodes;
  rows.feat_dim_ = input.feat_dim;
  rows.label_bits_path_ = input.label_bits_path;
  rows.label_words_ = LabelWords(input.label_tasks);
  rows.files_ = std::make_unique<Files>();
  if (input.feat_dim != 0) {
    CGCN_ASSIGN_OR_RETURN(rows.files_->features, OpenRegularFileForRead(input.features_path));
  }
  CGCN_ASSIGN_OR_RETURN(rows.files_->labels, OpenRegularFileForRead(input.labels_path));
  if (rows.label_words_ != 0) {
    CGCN_ASSIGN_OR_RETURN(rows.files_->label_bits, OpenRegularFileForRead(input.label_bits_path));
  }
  return rows;
}

RawNodeRows::RawNodeRows() = default;
RawNodeRows::RawNodeRows(RawNodeRows&&) noexcept = default;
RawNodeRows::~RawNodeRows() = default;

Status RawNodeRows::Gather(std::span<const uint32_t> ids, float* features, uint32_t* labels,
                           uint32_t* label_bits) const {
  const uint64_t row_bytes = uint64_t{feat_dim_} * sizeof(float);
  for (size_t i = 0; i < ids.size();) {
    size_t j = i + 1;  // [i, j) is a run of consecutive ids
    while (j < ids.size() && ids[j] == ids[j - 1] + 1) ++j;
    if (ids[j - 1] >= num_nodes_) return Status::Internal("node id " + std::to_string(ids[j - 1]) + " out of range");
    if (feat_dim_ != 0)
      CGCN_RETURN_IF_ERROR(PreadExact(files_->features.get(), features_path_, features + i * feat_dim_,
                                      (j - i) * row_bytes, ids[i] * row_bytes));
    CGCN_RETURN_IF_ERROR(PreadExact(files_->labels.get(), labels_path_, labels + i, (j - i) * sizeof(uint32_t),
                                    uint64_t{ids[i]} * sizeof(uint32_t)));
    if (label_words_ != 0) {
      const uint64_t wb = uint64_t{label_words_} * sizeof(uint32_t);
      CGCN_RETURN_IF_ERROR(PreadExact(files_->label_bits.get(), label_bits_path_, label_bits + i * label_words_,
                                      (j - i) * wb, ids[i] * wb));
    }
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
  graph.label_tasks = input.label_tasks;
  graph.num_unlabeled = input.num_unlabeled;
  graph.edge_src.reserve(input.num_edge_lines);
  graph.edge_dst.reserve(input.num_edge_lines);
  CGCN_RETURN_IF_ERROR(input.ForEachEdgeChunk([&](std::span<const uint32_t> s, std::span<const uint32_t> d) {
    graph.edge_src.insert(graph.edge_src.end(), s.begin(), s.end());
    graph.edge_dst.insert(graph.edge_dst.end(), d.begin(), d.end());
  }));
  graph.features.resize(uint64_t{input.num_nodes} * input.feat_dim);
  graph.labels.resize(input.num_nodes);
  graph.label_bits.resize(uint64_t{input.num_nodes} * LabelWords(input.label_tasks));
  {
    CGCN_ASSIGN_OR_RETURN(RawNodeRows rows, RawNodeRows::Open(input));
    std::vector<uint32_t> all(input.num_nodes);
    for (uint32_t v = 0; v < input.num_nodes; ++v) all[v] = v;
    CGCN_RETURN_IF_ERROR(rows.Gather(all, graph.features.data(), graph.labels.data(), graph.label_bits.data()));
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
