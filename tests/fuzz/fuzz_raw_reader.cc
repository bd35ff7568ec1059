// libFuzzer target: ReadRawGraph (the whole raw reader: file resolution, TextSource, every CSV
// parser, the scratch files, RawNodeRows) on testutil's tiny dataset with one file replaced by
// the input, in the form and with the block sizes the first byte chooses (fuzz_raw.h). The
// dataset lives in the process's scratch directory; each run swaps the one file in and puts the
// original back.
//
// It must never crash, leak or hang, and must agree with the reference rules of fuzz_text.h
// (lines, integer fields, plain decimal floats) applied to the same text:
//   - what the rules accept, it accepts; what they refuse (an empty or extra line, a bad field,
//     an id out of range, a repeated split id, a count that disagrees), it refuses;
//   - an accepted graph holds exactly the values of the input (floats as strtof reads them) and
//     of the untouched files, satisfies raw_reader.h's invariants, and carries the fingerprint
//     and size of the files as stored;
//   - a refusal is kInvalidInput or kUnsupported, its message starting with the path of the
//     replaced file or of a file read after it that depends on it;
//   - text gzipped here reads exactly as the same text plain (same graph, same message but for
//     the file name).
// A stored gzip stream that the reference decoder (fuzz_gzip.h) refuses must be refused too.
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/checksum.h"
#include "cgcn/raw_reader.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_gzip.h"
#include "fuzz/fuzz_raw.h"
#include "fuzz/fuzz_text.h"
#include "fuzz/fuzz_util.h"
#include "testutil/testutil.h"

namespace cgcn::fuzz {
namespace {

struct Dataset {
  std::string dir;
  std::string text[8];  // the files of the tiny dataset, by RawFileIndex
  testutil::RawDatasetSpec spec;
  RawGraph graph;  // as read
};

const Dataset& Base() {
  static const Dataset d = [] {
    Dataset b;
    b.dir = ScratchDir() + "/data";
    b.spec = testutil::TinyRawDataset();
    const auto files = testutil::RawDatasetFiles(b.spec);
    if (files.size() != 8) HarnessFailure("the tiny dataset no longer has 8 files");
    for (unsigned i = 0; i < 8; ++i) {
      if (files[i].first != kRawFiles[i]) HarnessFailure("unexpected tiny dataset file " + files[i].first);
      b.text[i] = files[i].second;
    }
    testutil::WriteRawDataset(b.dir, b.spec, testutil::Compression::kPlain);
    Result<RawGraph> g = ReadRawGraph(RawReadOptions{b.dir, ""});
    if (!g.ok()) HarnessFailure("the tiny dataset does not read: " + g.status().ToString());
    b.graph = std::move(g).value();
    return b;
  }();
  return d;
}

std::string PathOf(unsigned file, bool gz) { return Base().dir + "/" + kRawFiles[file] + (gz ? ".csv.gz" : ".csv"); }

// The dataset with `file` replaced by `stored`, for as long as this object lives.
class Swap {
 public:
  Swap(unsigned file, std::string_view stored, bool gz, bool drop_edge_count)
      : file_(file), drop_edge_count_(drop_edge_count) {
    ::unlink(PathOf(file, false).c_str());
    WriteBytes(PathOf(file, gz), stored);
    if (drop_edge_count) ::unlink(PathOf(kNumEdges, false).c_str());
  }
  ~Swap() {
    ::unlink(PathOf(file_, true).c_str());
    WriteBytes(PathOf(file_, false), Base().text[file_]);
    if (drop_edge_count_) WriteBytes(PathOf(kNumEdges, false), Base().text[kNumEdges]);
  }
  Swap(const Swap&) = delete;
  Swap& operator=(const Swap&) = delete;

 private:
  unsigned file_;
  bool drop_edge_count_;
};

// What the reference rules say about the dataset with the replaced file's text.
enum class Verdict { kAccept, kRefuse, kUnknown };
struct Expectation {
  Verdict verdict = Verdict::kRefuse;
  // The replaced file's values, when the verdict is not kRefuse.
  std::vector<uint32_t> edge_src, edge_dst;
  uint32_t feat_dim = 0;
  std::vector<float> features;
  std::vector<uint32_t> labels;
  std::vector<uint32_t> ids;  // a split file's node ids
};

// The node ids of a split file of the base dataset.
const std::vector<uint32_t>& BaseSplit(unsigned file) {
  const testutil::RawDatasetSpec& s = Base().spec;
  return file == kTrain ? s.train : file == kValid ? s.valid : s.test;
}

Expectation Expect(unsigned file, std::string_view text, bool edge_count_present) {
  const uint64_t n = Base().spec.num_nodes;
  Expectation e;
  const std::vector<std::string> lines = SplitLines(text);
  for (const std::string& line : lines)
    if (line.empty() && file != kLabels) return e;  // an empty line is refused (a final terminator is no line)
  uint64_t v = 0;
  switch (file) {
    case kNumNodes:  // one count; the other files hold 6 nodes
      if (lines.size() == 1 && ParseDigits(lines[0], &v) && v == n) e.verdict = Verdict::kAccept;
      return e;
    case kNumEdges:  // one count, which edge.csv (7 lines) must match
      if (lines.size() == 1 && ParseDigits(lines[0], &v) && v == Base().spec.edges.size()) e.verdict = Verdict::kAccept;
      return e;
    case kEdges: {
      if (lines.empty() || (edge_count_present && lines.size() != Base().spec.edges.size())) return e;
      for (const std::string& line : lines) {
        const std::vector<std::string_view> f = SplitCommas(line);
        uint64_t a = 0, b = 0;
        if (f.size() != 2 || !ParseDigits(f[0], &a) || !ParseDigits(f[1], &b) || a >= n || b >= n) return e;
        e.edge_src.push_back(static_cast<uint32_t>(a));
        e.edge_dst.push_back(static_cast<uint32_t>(b));
      }
      e.verdict = Verdict::kAccept;
      return e;
    }
    case kFeatures: {
      if (lines.size() != n) return e;
      e.feat_dim = static_cast<uint32_t>(SplitCommas(lines[0]).size());
      e.verdict = Verdict::kAccept;
      for (const std::string& line : lines) {
        const std::vector<std::string_view> f = SplitCommas(line);
        if (f.size() != e.feat_dim) return Expectation{};
        for (std::string_view field : f) {
          e.features.push_back(StrToF(field));
          if (!IsPlainDecimal(field)) {  // inf, nan, hex, '+', spaces, garbage: the reader decides
            e.verdict = Verdict::kUnknown;
            continue;
          }
          const double d = std::fabs(StrToD(field));
          if (d > 3.5e38) return Expectation{};            // beyond every float (FLT_MAX is 3.4028e38)
          if (d >= 3.4e38) e.verdict = Verdict::kUnknown;  // at the edge: rounding decides
        }
      }
      return e;
    }
    case kLabels: {  // a class id, or for an unlabeled node an empty line, nan (any case) or -1
      if (lines.size() != n) return e;
      bool any_labeled = false;
      for (const std::string& line : lines) {
        std::string lower = line;
        for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        if (line.empty() || line == "-1" || lower == "nan") {
          // Only node 3 of the tiny dataset is in no split; a split naming an unlabeled node is refused.
          if (e.labels.size() != 3) return e;
          e.labels.push_back(kNoLabel);
          continue;
        }
        if (!ParseDigits(line, &v) || v > 65535) return e;
        e.labels.push_back(static_cast<uint32_t>(v));
        any_labeled = true;
      }
      if (any_labeled) e.verdict = Verdict::kAccept;
      return e;
    }
    default: {  // a split file: ids < 6, none twice, none in the other two splits
      // An empty valid file is a split without validation nodes; train and test must list nodes.
      if (lines.empty()) {
        if (file == kValid) e.verdict = Verdict::kAccept;
        return e;
      }
      std::set<uint64_t> taken;
      for (unsigned other : {kTrain, kValid, kTest})
        if (other != file) taken.insert(BaseSplit(other).begin(), BaseSplit(other).end());
      std::set<uint64_t> seen;
      for (const std::string& line : lines) {
        if (!ParseDigits(line, &v) || v >= n || taken.count(v) || !seen.insert(v).second) return e;
        e.ids.push_back(static_cast<uint32_t>(v));
      }
      e.verdict = Verdict::kAccept;
      return e;
    }
  }
}

template <typename T>
bool Same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Split membership from the three id lists.
std::vector<uint8_t> SplitBits(const std::vector<uint32_t>& train, const std::vector<uint32_t>& valid,
                               const std::vector<uint32_t>& test) {
  std::vector<uint8_t> bits(Base().spec.num_nodes, 0);
  for (uint32_t v : train) bits[v] = kSplitTrain;
  for (uint32_t v : valid) bits[v] = kSplitValid;
  for (uint32_t v : test) bits[v] = kSplitTest;
  return bits;
}

void CheckAccepted(const RawGraph& g, unsigned file, const Expectation& e, std::string_view stored, bool gz,
                   bool edge_count_present) {
  const Dataset& base = Base();
  // raw_reader.h's invariants.
  CGCN_FUZZ_CHECK(g.num_nodes == base.spec.num_nodes && g.feat_dim >= 1);
  CGCN_FUZZ_CHECK(g.edge_src.size() == g.edge_dst.size() && !g.edge_src.empty());
  for (size_t i = 0; i < g.edge_src.size(); ++i)
    CGCN_FUZZ_CHECK(g.edge_src[i] < g.num_nodes && g.edge_dst[i] < g.num_nodes);
  CGCN_FUZZ_CHECK(g.features.size() == uint64_t{g.num_nodes} * g.feat_dim);
  for (float f : g.features) CGCN_FUZZ_CHECK(std::isfinite(f));
  CGCN_FUZZ_CHECK(g.labels.size() == g.num_nodes && g.split.size() == g.num_nodes);
  uint32_t max_label = 0;
  for (uint32_t l : g.labels)
    if (l != kNoLabel) max_label = std::max(max_label, l);
  CGCN_FUZZ_CHECK(g.num_classes == max_label + 1);
  uint64_t counts[5] = {};
  for (uint8_t s : g.split) {
    CGCN_FUZZ_CHECK(s == 0 || s == kSplitTrain || s == kSplitValid || s == kSplitTest);
    ++counts[s == kSplitTest ? 4 : s];
  }
  CGCN_FUZZ_CHECK(counts[1] == g.num_train && counts[2] == g.num_valid && counts[4] == g.num_test);
  CGCN_FUZZ_CHECK(g.split_name == base.spec.split_name);

  // The replaced file's values as the reference reads them; every other file's as before.
  const RawGraph& b = base.graph;
  CGCN_FUZZ_CHECK(file == kEdges ? Same(g.edge_src, e.edge_src) && Same(g.edge_dst, e.edge_dst)
                                 : Same(g.edge_src, b.edge_src) && Same(g.edge_dst, b.edge_dst));
  if (file == kFeatures) {
    CGCN_FUZZ_CHECK(g.feat_dim == e.feat_dim && g.features.size() == e.features.size());
    for (size_t i = 0; i < e.features.size(); ++i) CGCN_FUZZ_CHECK(g.features[i] == e.features[i]);
  } else {
    CGCN_FUZZ_CHECK(g.feat_dim == b.feat_dim && Same(g.features, b.features));
  }
  CGCN_FUZZ_CHECK(Same(g.labels, file == kLabels ? e.labels : b.labels));
  if (file >= kTrain) {
    const auto& s = base.spec;
    CGCN_FUZZ_CHECK(Same(g.split, SplitBits(file == kTrain ? e.ids : s.train, file == kValid ? e.ids : s.valid,
                                            file == kTest ? e.ids : s.test)));
  } else {
    CGCN_FUZZ_CHECK(Same(g.split, b.split));
  }

  // The fingerprint: per file read, its path relative to DIR, a NUL, its size (8 bytes LE),
  // its bytes as stored (raw_reader.cc, InputReader).
  StreamingChecksum fp;
  uint64_t total = 0;
  for (unsigned i = 0; i < 8; ++i) {
    if (i == kNumEdges && !edge_count_present) continue;
    const std::string relative = std::string(kRawFiles[i]) + (i == file && gz ? ".csv.gz" : ".csv");
    const std::string_view bytes = i == file ? stored : std::string_view(base.text[i]);
    fp.Update(relative.c_str(), relative.size() + 1);
    unsigned char size_le[8];
    for (int k = 0; k < 8; ++k) size_le[k] = static_cast<unsigned char>(uint64_t{bytes.size()} >> (8 * k));
    fp.Update(size_le, 8);
    fp.Update(bytes.data(), bytes.size());
    total += bytes.size();
  }
  CGCN_FUZZ_CHECK(g.fingerprint == fp.Digest() && g.input_bytes == total);
}

void CheckRefused(const Status& s, unsigned file) {
  CGCN_FUZZ_CHECK(s.code() == StatusCode::kInvalidInput || s.code() == StatusCode::kUnsupported);
  // The replaced file, or a later one whose checks depend on it (a split file naming a node the
  // replaced labels file left unlabeled, say).
  bool named = false;
  for (unsigned i = 0; i < 8 && !named; ++i) {
    const bool may = i == file || file == kNumNodes || (file == kNumEdges && i == kEdges) ||
                     (file == kLabels && i >= kTrain) || (file == kTrain && i > kTrain) ||
                     (file == kValid && i == kTest);
    named = may && StartsWith(s.message(), PathOf(i, false) + (i == file ? "" : ":"));
  }
  CGCN_FUZZ_CHECK(named);
}

// The same error for BASE.csv.gz and BASE.csv: the gzip message with the file's path made the
// plain one's. (Whole paths: a quoted field may hold "split/s/test.csv.gz", never a path that
// long, since Quote() shows 40 characters.)
bool SameMessage(std::string gz_message, const std::string& plain_message, unsigned file) {
  const std::string gz = PathOf(file, true), plain = PathOf(file, false);
  if (gz.size() <= 40) HarnessFailure(gz + ": too short to tell from a quoted field");
  for (size_t at = gz_message.find(gz); at != std::string::npos; at = gz_message.find(gz, at + plain.size()))
    gz_message.replace(at, gz.size(), plain);
  return gz_message == plain_message;
}

void FuzzOne(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const Dataset& base = Base();
  const unsigned file = data[0] & 7, form = (data[0] >> 3) & 3;
  const bool drop_edge_count = (data[0] & kNoEdgeCountBit) != 0 && file != kNumEdges;
  RawReadOptions options{base.dir, ""};
  options.text_block_bytes = kRawBlocks[data[0] >> 6][0];
  options.scratch_buffer_bytes = kRawBlocks[data[0] >> 6][1];
  const std::string_view content(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool gz = form != kPlainText;
  std::string stored(content);
  if (form == kGzipOneMember) stored = GzipMember(content);
  if (form == kGzipTwoMembers) stored = GzipMembers(content, {content.size() / 2});
  // The text the reader sees, as the reference decoder gets it.
  std::optional<std::string> text = form == kStoredGzip ? GunzipReference(stored) : std::string(content);
  const Expectation e = text ? Expect(file, *text, !drop_edge_count) : Expectation{};  // undecodable gzip: refused

  Result<RawGraph> r = Status::Internal("not read");
  {
    Swap swap(file, stored, gz, drop_edge_count);
    r = ReadRawGraph(options);
  }
  if (r.ok()) {
    CGCN_FUZZ_CHECK(e.verdict != Verdict::kRefuse);
    CheckAccepted(*r, file, e, stored, gz, !drop_edge_count);
  } else {
    CGCN_FUZZ_CHECK(e.verdict != Verdict::kAccept);
    CheckRefused(r.status(), file);
  }

  if (form == kGzipOneMember || form == kGzipTwoMembers) {  // the same text, plain
    Result<RawGraph> plain = Status::Internal("not read");
    {
      Swap swap(file, content, false, drop_edge_count);
      plain = ReadRawGraph(options);
    }
    CGCN_FUZZ_CHECK(plain.ok() == r.ok());
    if (r.ok()) {
      CGCN_FUZZ_CHECK(Same(plain->edge_src, r->edge_src) && Same(plain->edge_dst, r->edge_dst) &&
                      plain->feat_dim == r->feat_dim && Same(plain->features, r->features) &&
                      Same(plain->labels, r->labels) && Same(plain->split, r->split));
    } else {
      CGCN_FUZZ_CHECK(plain.status().code() == r.status().code());
      CGCN_FUZZ_CHECK(SameMessage(r.status().message(), plain.status().message(), file));
    }
  }
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cgcn::fuzz::FuzzOne(data, size);
  return 0;
}
