#include "cgcn/raw_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/checksum.h"
#include "testutil/testutil.h"
#include "util/text_source.h"

namespace cgcn {
namespace {

using testutil::Compression;
using testutil::TempDir;

// ---------------------------------------------------------------------------------
// TextSource

std::vector<std::string> ReadAllLines(const std::string& path, size_t block_bytes = size_t{1} << 20) {
  TextSource::Options options;
  options.block_bytes = block_bytes;
  Result<TextSource> src = TextSource::Open(path, options);
  EXPECT_TRUE(src.ok()) << src.status().ToString();
  std::vector<std::string> lines;
  if (!src.ok()) return lines;
  std::string_view line;
  while (src->Next(&line)) {
    lines.emplace_back(line);
    EXPECT_EQ(src->line_number(), lines.size());
  }
  EXPECT_TRUE(src->status().ok()) << src->status().ToString();
  return lines;
}

using Lines = std::vector<std::string>;

TEST(TextSourceTest, SplitsLinesWithAndWithoutFinalNewline) {
  TempDir tmp;
  testutil::WriteFile(tmp.Join("a.csv"), "1,2\n3,4\n");
  testutil::WriteFile(tmp.Join("b.csv"), "1,2\n3,4");
  EXPECT_EQ(ReadAllLines(tmp.Join("a.csv")), (Lines{"1,2", "3,4"}));
  EXPECT_EQ(ReadAllLines(tmp.Join("b.csv")), (Lines{"1,2", "3,4"}));
}

TEST(TextSourceTest, StripsCarriageReturns) {
  TempDir tmp;
  testutil::WriteFile(tmp.Join("a.csv"), "1,2\r\n3,4\r\n5\r");
  EXPECT_EQ(ReadAllLines(tmp.Join("a.csv")), (Lines{"1,2", "3,4", "5"}));
}

TEST(TextSourceTest, HandsOutEmptyLinesExceptOneFinalNewline) {
  TempDir tmp;
  testutil::WriteFile(tmp.Join("a.csv"), "a\n\nb\n\n");
  EXPECT_EQ(ReadAllLines(tmp.Join("a.csv")), (Lines{"a", "", "b", ""}));
  testutil::WriteFile(tmp.Join("empty.csv"), "");
  EXPECT_EQ(ReadAllLines(tmp.Join("empty.csv")), Lines{});
  testutil::WriteFile(tmp.Join("newline.csv"), "\n");
  EXPECT_EQ(ReadAllLines(tmp.Join("newline.csv")), Lines{""});
}

TEST(TextSourceTest, GzipGivesTheSameLinesAsPlain) {
  TempDir tmp;
  std::string text;
  Lines expected;
  for (int i = 0; i < 50000; ++i) {
    expected.push_back(std::to_string(i) + "," + std::to_string(i * 7 % 1000));
    text += expected.back() + "\n";
  }
  testutil::WriteFile(tmp.Join("x.csv"), text);
  testutil::WriteGzFile(tmp.Join("x.csv.gz"), text);
  EXPECT_EQ(ReadAllLines(tmp.Join("x.csv")), expected);
  EXPECT_EQ(ReadAllLines(tmp.Join("x.csv.gz")), expected);
  // Tiny blocks: lines straddle block boundaries and outgrow the buffer.
  EXPECT_EQ(ReadAllLines(tmp.Join("x.csv"), 16), expected);
  EXPECT_EQ(ReadAllLines(tmp.Join("x.csv.gz"), 16), expected);
}

TEST(TextSourceTest, LinesLongerThanTheBlock) {
  TempDir tmp;
  Lines expected = {std::string(1000, 'a'), "b", std::string(5000, 'c'), std::string(17, 'd')};
  std::string text;
  for (const auto& l : expected) text += l + "\r\n";
  text.resize(text.size() - 2);  // no final newline
  testutil::WriteGzFile(tmp.Join("x.csv.gz"), text);
  EXPECT_EQ(ReadAllLines(tmp.Join("x.csv.gz"), 64), expected);
}

TEST(TextSourceTest, HashesTheStoredBytes) {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 100000; ++i) text += std::to_string(i) + "\n";
  testutil::WriteGzFile(tmp.Join("x.csv.gz"), text);
  testutil::WriteFile(tmp.Join("x.csv"), text);
  for (const char* name : {"x.csv.gz", "x.csv"}) {
    std::string stored = testutil::ReadFile(tmp.Join(name));
    StreamingChecksum hash;
    TextSource::Options options;
    options.stored_bytes_hash = &hash;
    Result<TextSource> src = TextSource::Open(tmp.Join(name), options);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    EXPECT_EQ(src->stored_size(), stored.size());
    std::string_view line;
    uint64_t lines = 0;
    while (src->Next(&line)) ++lines;
    ASSERT_TRUE(src->status().ok()) << src->status().ToString();
    EXPECT_EQ(lines, 100000u);
    EXPECT_EQ(hash.Digest(), Checksum64(stored.data(), stored.size())) << name;
  }
}

TEST(TextSourceTest, MissingFileIsIoError) {
  TempDir tmp;
  Result<TextSource> src = TextSource::Open(tmp.Join("nope.csv"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kIoError);
  EXPECT_NE(src.status().message().find("nope.csv"), std::string::npos);
}

Status ReadToEnd(const std::string& path, uint64_t* lines) {
  CGCN_ASSIGN_OR_RETURN(TextSource src, TextSource::Open(path));
  std::string_view line;
  *lines = 0;
  while (src.Next(&line)) ++*lines;
  return src.status();
}

TEST(TextSourceTest, TruncatedGzipIsInvalidInput) {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 200000; ++i) text += std::to_string(i) + "\n";
  const std::string path = tmp.Join("x.csv.gz");
  testutil::WriteGzFile(path, text);
  testutil::TruncateFile(path, testutil::FileSize(path) / 2);
  uint64_t lines = 0;
  Status s = ReadToEnd(path, &lines);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << s.ToString();
  EXPECT_LT(lines, 200000u);
  EXPECT_NE(s.message().find("x.csv.gz:" + std::to_string(lines + 1) + ":"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("gzip"), std::string::npos) << s.message();
}

TEST(TextSourceTest, GzipMissingFooterIsInvalidInput) {
  TempDir tmp;
  const std::string path = tmp.Join("x.csv.gz");
  testutil::WriteGzFile(path, "1\n2\n3\n");
  testutil::TruncateFile(path, testutil::FileSize(path) - 4);  // cut the length field
  uint64_t lines = 0;
  Status s = ReadToEnd(path, &lines);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << s.ToString();
  EXPECT_NE(s.message().find("x.csv.gz:"), std::string::npos) << s.message();
}

TEST(TextSourceTest, CorruptGzipIsInvalidInput) {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 1000; ++i) text += std::to_string(i * 31) + "," + std::to_string(i) + "\n";
  const std::string path = tmp.Join("x.csv.gz");
  testutil::WriteGzFile(path, text);
  testutil::FlipByte(path, testutil::FileSize(path) - 6);  // inside the CRC
  uint64_t lines = 0;
  Status s = ReadToEnd(path, &lines);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << s.ToString();
  EXPECT_NE(s.message().find("x.csv.gz:"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("CRC"), std::string::npos) << s.message();
}

TEST(TextSourceTest, ResolveCsvPathPrefersGzip) {
  TempDir tmp;
  const std::string base = tmp.Join("f");
  Result<std::string> none = ResolveCsvPath(base);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kIoError);
  EXPECT_NE(none.status().message().find(base + ".csv.gz"), std::string::npos);
  EXPECT_NE(none.status().message().find(base + ".csv)"), std::string::npos);
  testutil::WriteFile(base + ".csv", "1\n");
  EXPECT_EQ(ResolveCsvPath(base).value(), base + ".csv");
  testutil::WriteGzFile(base + ".csv.gz", "1\n");
  EXPECT_EQ(ResolveCsvPath(base).value(), base + ".csv.gz");
}

// ---------------------------------------------------------------------------------
// ReadRawGraph on the tiny dataset

Result<RawGraph> Read(const std::string& dir, const std::string& split = "") {
  RawReadOptions options;
  options.dir = dir;
  options.split_name = split;
  return ReadRawGraph(options);
}

void ExpectTinyArrays(const RawGraph& g) {
  EXPECT_EQ(g.num_nodes, 6u);
  EXPECT_EQ(g.feat_dim, 3u);
  EXPECT_EQ(g.num_classes, 2u);
  EXPECT_EQ(g.edge_src, (std::vector<uint32_t>{0, 1, 0, 1, 3, 2, 4}));
  EXPECT_EQ(g.edge_dst, (std::vector<uint32_t>{1, 2, 3, 3, 4, 5, 5}));
  EXPECT_EQ(g.features, (std::vector<float>{0, 0.5f, 0,       //
                                            1, -0.5f, 0.25f,  //
                                            2, -1.5f, 1,      //
                                            3, -2.5f, 2.25f,  //
                                            4, -3.5f, 4,      //
                                            5, -4.5f, 6.25f}));
  EXPECT_EQ(g.labels, (std::vector<uint32_t>{0, 1, 0, 1, 1, 0}));
  EXPECT_EQ(g.split, (std::vector<uint8_t>{kSplitTrain, kSplitTrain, kSplitValid, 0, kSplitTest, kSplitTest}));
  EXPECT_EQ(g.split_name, "s");
  EXPECT_EQ(g.num_train, 2u);
  EXPECT_EQ(g.num_valid, 1u);
  EXPECT_EQ(g.num_test, 2u);
}

// The documented fingerprint, computed independently: XXH3-64 over, per file in
// order, relative path, NUL, 8-byte little-endian size, stored bytes.
uint64_t ExpectedFingerprint(const std::string& dir, const std::vector<std::string>& relative_paths,
                             uint64_t* total_bytes) {
  std::string all;
  *total_bytes = 0;
  for (const std::string& rel : relative_paths) {
    std::string bytes = testutil::ReadFile(dir + "/" + rel);
    all += rel;
    all += '\0';
    for (int i = 0; i < 8; ++i) all += static_cast<char>((bytes.size() >> (8 * i)) & 0xff);
    all += bytes;
    *total_bytes += bytes.size();
  }
  return Checksum64(all.data(), all.size());
}

std::vector<std::string> TinyRelativePaths(const std::string& suffix) {
  std::vector<std::string> paths;
  for (const char* p : {"raw/num-node-list", "raw/num-edge-list", "raw/edge", "raw/node-feat", "raw/node-label",
                        "split/s/train", "split/s/valid", "split/s/test"}) {
    paths.push_back(std::string(p) + suffix);
  }
  return paths;
}

TEST(RawReaderTest, ReadsTinyGzippedDataset) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kGzip);
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectTinyArrays(*g);
  uint64_t bytes = 0;
  EXPECT_EQ(g->fingerprint, ExpectedFingerprint(tmp.path(), TinyRelativePaths(".csv.gz"), &bytes));
  EXPECT_EQ(g->input_bytes, bytes);
}

TEST(RawReaderTest, ReadsTinyPlainDataset) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  Result<RawGraph> g = Read(tmp.path(), "s");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectTinyArrays(*g);
  uint64_t bytes = 0;
  EXPECT_EQ(g->fingerprint, ExpectedFingerprint(tmp.path(), TinyRelativePaths(".csv"), &bytes));
  EXPECT_EQ(g->input_bytes, bytes);
}

TEST(RawReaderTest, FingerprintChangesWithAnyByte) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  Result<RawGraph> a = Read(tmp.path());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Read(tmp.path())->fingerprint, a->fingerprint);
  testutil::WriteFile(tmp.Join("raw/node-feat.csv"),
                      "0,0.5,0\n1,-0.5,0.25\n2,-1.5,1\n3,-2.5,2.25\n4,-3.5,4\n5,-4.5,6.5\n");
  Result<RawGraph> b = Read(tmp.path());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE(b->fingerprint, a->fingerprint);
}

TEST(RawReaderTest, KeepsSelfLoopsAndDuplicateEdgesAsRead) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  testutil::WriteFile(tmp.Join("raw/edge.csv"), "0,1\n1,0\n2,2\n0,1\n");
  testutil::WriteFile(tmp.Join("raw/num-edge-list.csv"), "4\n");
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->edge_src, (std::vector<uint32_t>{0, 1, 2, 0}));
  EXPECT_EQ(g->edge_dst, (std::vector<uint32_t>{1, 0, 2, 1}));
}

TEST(RawReaderTest, NumEdgeListIsOptional) {
  TempDir tmp;
  testutil::RawDatasetSpec spec = testutil::TinyRawDataset();
  spec.write_num_edges = false;
  testutil::WriteRawDataset(tmp.path(), spec, Compression::kGzip);
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectTinyArrays(*g);
}

TEST(RawReaderTest, AcceptsCrlfAndMissingFinalNewline) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  testutil::WriteFile(tmp.Join("raw/edge.csv"), "0,1\r\n1,2\r\n0,3\r\n1,3\r\n3,4\r\n2,5\r\n4,5");
  testutil::WriteFile(tmp.Join("raw/node-label.csv"), "0\r\n1\r\n0\r\n1\r\n1\r\n0\r\n");
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectTinyArrays(*g);
}

TEST(RawReaderTest, ParsesGeneralFloats) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  testutil::WriteFile(tmp.Join("raw/node-feat.csv"),
                      "1e-50,-0,12345678\n1.5e3,.25,-7\n0.1,1E2,3.\n0,0,0\n0,0,0\n0,0,0\n");
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  std::vector<float> expected = {0.0f, -0.0f, 12345678.0f, 1500.0f, 0.25f, -7.0f, 0.1f, 100.0f, 3.0f};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(g->features[i], expected[i]) << i;
}

// Values below even a double's range round to 0, as those below a float's do (and as strtof has
// it); "1e-400" used to be refused as not fitting a float while "1e-50" was read as 0. Found with
// the reference rules of tests/fuzz/fuzz_raw_reader.
TEST(RawReaderTest, FloatsBelowDoubleRangeReadAsZero) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kPlain);
  testutil::WriteFile(
      tmp.Join("raw/node-feat.csv"),
      "1e-400,-1e-400,100000e-330\n0.00001e-320,1E-99999999999999999999,0\n0,0,0\n0,0,0\n0,0,0\n0,0,0\n");
  Result<RawGraph> g = Read(tmp.path());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(g->features[i], 0.0f) << i;
  EXPECT_TRUE(std::signbit(g->features[1]));
  // Beyond the range on the other side stays an error, however it is spelled.
  for (const char* big : {"1e400", "0.0001e+330", "1e99999999999999999999"}) {
    testutil::WriteFile(tmp.Join("raw/node-feat.csv"), std::string(big) + ",0,0\n0,0,0\n0,0,0\n0,0,0\n0,0,0\n0,0,0\n");
    g = Read(tmp.path());
    ASSERT_FALSE(g.ok()) << big;
    EXPECT_NE(g.status().message().find("node-feat.csv:1: feature 1: expected a number that fits a 32-bit float"),
              std::string::npos)
        << g.status().message();
  }
}

TEST(RawReaderTest, ReportsProgress) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), Compression::kGzip);
  std::vector<std::string> phases;
  RawReadOptions options;
  options.dir = tmp.path();
  Result<RawGraph> g = ReadRawGraph(options, [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (phase == "read features") {
      EXPECT_EQ(done, 6u);
      EXPECT_EQ(total, 6u);
    }
    if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
  });
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(phases, (std::vector<std::string>{"read edges", "read features", "read labels", "read split"}));
}

// ---------------------------------------------------------------------------------
// Bad input: one test per case. The tiny dataset is written plain so that a test can
// replace one file; each test checks the code, the file, the line and what was expected.

class RawReaderBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override { testutil::WriteTinyRawDataset(tmp_.path(), Compression::kPlain); }

  std::string Path(const std::string& relative) const { return tmp_.Join(relative); }
  void Write(const std::string& relative, std::string_view text) { testutil::WriteFile(Path(relative), text); }
  void Remove(const std::string& relative) { std::filesystem::remove(Path(relative)); }

  // Reads the dataset and checks that it fails with `code` and a message holding every
  // one of `parts`.
  void ExpectError(StatusCode code, std::initializer_list<std::string> parts, const std::string& split = "") {
    Result<RawGraph> g = Read(tmp_.path(), split);
    ASSERT_FALSE(g.ok()) << "expected an error mentioning " << *parts.begin();
    EXPECT_EQ(g.status().code(), code) << g.status().ToString();
    for (const std::string& part : parts) {
      EXPECT_NE(g.status().message().find(part), std::string::npos)
          << "message lacks '" << part << "': " << g.status().message();
    }
  }

  TempDir tmp_;
};

// Missing files.

TEST_F(RawReaderBadInputTest, MissingDirectory) {
  RawReadOptions options;
  options.dir = Path("nowhere");
  Result<RawGraph> g = ReadRawGraph(options);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kIoError);
  EXPECT_NE(g.status().message().find("nowhere"), std::string::npos);
}

TEST_F(RawReaderBadInputTest, MissingNumNodeList) {
  Remove("raw/num-node-list.csv");
  ExpectError(StatusCode::kIoError, {Path("raw/num-node-list.csv.gz"), Path("raw/num-node-list.csv)"), "no such file"});
}

TEST_F(RawReaderBadInputTest, MissingEdgeFile) {
  Remove("raw/edge.csv");
  ExpectError(StatusCode::kIoError, {Path("raw/edge.csv.gz"), Path("raw/edge.csv)"), "no such file"});
}

// Without node-feat the graph is featureless (cgcn-preprocess then computes FastRP features):
// feat_dim 0, no feature rows, everything else as with the file.
TEST_F(RawReaderBadInputTest, MissingFeatureFileMeansFeatureless) {
  Remove("raw/node-feat.csv");
  Result<RawGraph> g = Read(tmp_.path(), "");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->feat_dim, 0u);
  EXPECT_TRUE(g->features.empty());
  EXPECT_EQ(g->num_nodes, 6u);
  EXPECT_EQ(g->labels, (std::vector<uint32_t>{0, 1, 0, 1, 1, 0}));
}

TEST_F(RawReaderBadInputTest, MissingLabelFile) {
  Remove("raw/node-label.csv");
  ExpectError(StatusCode::kIoError, {Path("raw/node-label.csv.gz"), "no such file"});
}

TEST_F(RawReaderBadInputTest, MissingSplitFile) {
  Remove("split/s/valid.csv");
  ExpectError(StatusCode::kIoError, {Path("split/s/valid.csv.gz"), "no such file"});
}

TEST_F(RawReaderBadInputTest, MissingSplitDirectory) {
  std::filesystem::remove_all(Path("split"));
  ExpectError(StatusCode::kIoError, {Path("split"), "no such directory"});
}

// Empty files.

TEST_F(RawReaderBadInputTest, EmptyNumNodeList) {
  Write("raw/num-node-list.csv", "");
  ExpectError(StatusCode::kInvalidInput, {"num-node-list.csv:1:", "empty file", "node count"});
}

TEST_F(RawReaderBadInputTest, EmptyEdgeFile) {
  Write("raw/edge.csv", "");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:1:", "empty file", "node ids"});
}

TEST_F(RawReaderBadInputTest, EmptyFeatureFile) {
  Write("raw/node-feat.csv", "");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:1:", "empty file", "features"});
}

TEST_F(RawReaderBadInputTest, EmptyLabelFile) {
  Write("raw/node-label.csv", "");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:1:", "empty file", "class id"});
}

TEST_F(RawReaderBadInputTest, EmptySplitFile) {
  Write("split/s/test.csv", "");
  ExpectError(StatusCode::kInvalidInput, {"split/s/test.csv:1:", "empty file", "node id"});
}

// Empty lines.

TEST_F(RawReaderBadInputTest, EmptyLineInEdges) {
  Write("raw/edge.csv", "0,1\n1,2\n\n0,3\n1,3\n3,4\n2,5\n4,5\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:3:", "empty line", "node ids"});
}

TEST_F(RawReaderBadInputTest, BlankLineAtEndOfLabels) {
  // An empty line is an unlabeled node: here a seventh label.
  Write("raw/node-label.csv", "0\n1\n0\n1\n1\n0\n\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:7:", "expected 6 labels", "found more"});
}

// Node count.

TEST_F(RawReaderBadInputTest, NodeCountZero) {
  Write("raw/num-node-list.csv", "0\n");
  ExpectError(StatusCode::kInvalidInput, {"num-node-list.csv:1:", "node count >= 1"});
}

TEST_F(RawReaderBadInputTest, NodeCountBeyondMetisLimit) {
  Write("raw/num-node-list.csv", "2147483647\n");
  ExpectError(StatusCode::kUnsupported, {"num-node-list.csv:1:", "node count <= 2147483646"});
}

TEST_F(RawReaderBadInputTest, NodeCountNotANumber) {
  Write("raw/num-node-list.csv", "six\n");
  ExpectError(StatusCode::kInvalidInput, {"num-node-list.csv:1:", "expected a node count", "'six'"});
}

TEST_F(RawReaderBadInputTest, NodeCountWithSecondLine) {
  Write("raw/num-node-list.csv", "6\n6\n");
  ExpectError(StatusCode::kInvalidInput, {"num-node-list.csv:2:", "second line"});
}

// Edges.

TEST_F(RawReaderBadInputTest, EdgeLineWithThreeFields) {
  Write("raw/edge.csv", "0,1\n1,2\n0,3,4\n1,3\n3,4\n2,5\n4,5\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:3:", "expected 2 comma-separated node ids, found 3 fields"});
}

TEST_F(RawReaderBadInputTest, EdgeLineWithOneField) {
  Write("raw/edge.csv", "0,1\n1\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:2:", "expected 2 comma-separated node ids, found 1 field"});
}

TEST_F(RawReaderBadInputTest, EdgeIdNotANumber) {
  Write("raw/edge.csv", "0,1\n1,x\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:2:", "expected a destination node id", "'x'"});
}

TEST_F(RawReaderBadInputTest, EdgeIdWithTrailingGarbage) {
  Write("raw/edge.csv", "0,1\n1,2\n0,3\n1a,3\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:4:", "expected a source node id", "trailing", "'1a'"});
}

TEST_F(RawReaderBadInputTest, EdgeIdWithSpace) {
  Write("raw/edge.csv", "0, 1\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:1:", "expected a destination node id", "' 1'"});
}

TEST_F(RawReaderBadInputTest, NegativeEdgeId) {
  Write("raw/edge.csv", "0,1\n-1,2\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:2:", "non-negative", "'-1'"});
}

TEST_F(RawReaderBadInputTest, EdgeIdOutOfRange) {
  Write("raw/edge.csv", "0,1\n1,2\n0,6\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:3:", "expected node ids < 6", "found 6"});
}

TEST_F(RawReaderBadInputTest, EdgeIdTooLargeForAnyInteger) {
  Write("raw/edge.csv", "0,99999999999999999999999\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:1:", "too large"});
}

TEST_F(RawReaderBadInputTest, NumEdgeListSaysFewerThanEdgeLines) {
  Write("raw/num-edge-list.csv", "5\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:6:", "expected 5 edge lines", "num-edge-list.csv:1", "more"});
}

TEST_F(RawReaderBadInputTest, NumEdgeListSaysMoreThanEdgeLines) {
  Write("raw/num-edge-list.csv", "9\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv:8:", "expected 9 edge lines", "num-edge-list.csv:1", "only 7"});
}

// Features.

TEST_F(RawReaderBadInputTest, FeatureRowWithWrongFieldCount) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25\n2,-1.5\n3,-2.5,2.25\n4,-3.5,4\n5,-4.5,6.25\n");
  ExpectError(StatusCode::kInvalidInput,
              {"node-feat.csv:3:", "expected 3 comma-separated features (as on line 1), found 2 fields"});
}

TEST_F(RawReaderBadInputTest, FeatureRowWithExtraField) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25,7\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:2:", "expected 3 comma-separated features", "found 4 fields"});
}

TEST_F(RawReaderBadInputTest, FeatureNotANumber) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,abc,0.25\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:2:", "feature 2", "expected a number", "'abc'"});
}

TEST_F(RawReaderBadInputTest, FeatureWithTrailingGarbage) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25\n2,-1.5,1x\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:3:", "feature 3", "trailing", "'1x'"});
}

TEST_F(RawReaderBadInputTest, FeatureEmptyField) {
  Write("raw/node-feat.csv", "0,,0\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:1:", "feature 2", "empty field"});
}

TEST_F(RawReaderBadInputTest, FeatureTrailingComma) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25,\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:2:", "found 4 fields"});
}

TEST_F(RawReaderBadInputTest, FeatureNaN) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,nan,0.25\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:2:", "finite", "'nan'"});
}

TEST_F(RawReaderBadInputTest, FeatureInfinity) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25\n2,-1.5,1\n3,-inf,2.25\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:4:", "finite", "'-inf'"});
}

TEST_F(RawReaderBadInputTest, FeatureTooLargeForFloat) {
  Write("raw/node-feat.csv", "0,0.5,1e39\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:1:", "feature 3", "32-bit float", "'1e39'"});
}

TEST_F(RawReaderBadInputTest, TooFewFeatureRows) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25\n2,-1.5,1\n3,-2.5,2.25\n4,-3.5,4\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:6:", "expected 6 feature rows", "only 5"});
}

TEST_F(RawReaderBadInputTest, TooManyFeatureRows) {
  Write("raw/node-feat.csv", "0,0.5,0\n1,-0.5,0.25\n2,-1.5,1\n3,-2.5,2.25\n4,-3.5,4\n5,-4.5,6.25\n6,6,6\n");
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv:7:", "expected 6 feature rows", "more"});
}

// Labels.

TEST_F(RawReaderBadInputTest, LabelWithTwoFields) {
  Write("raw/node-label.csv", "0\n1,1\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:2:", "expected 1 field (a class id), found 2 fields"});
}

TEST_F(RawReaderBadInputTest, LabelNotAnInteger) {
  Write("raw/node-label.csv", "0\n1\n0.5\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:3:", "expected a class id", "'0.5'"});
}

TEST_F(RawReaderBadInputTest, NegativeLabel) {
  // -1 is an unlabeled node; other negative values are errors.
  Write("raw/node-label.csv", "0\n1\n0\n-2\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:4:", "non-negative", "'-2'"});
}

TEST_F(RawReaderBadInputTest, LabelTooLarge) {
  Write("raw/node-label.csv", "0\n65536\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:2:", "class id in [0, 65535]", "65536"});
}

TEST_F(RawReaderBadInputTest, TooFewLabels) {
  Write("raw/node-label.csv", "0\n1\n0\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:4:", "expected 6 labels", "only 3"});
}

TEST_F(RawReaderBadInputTest, TooManyLabels) {
  Write("raw/node-label.csv", "0\n1\n0\n1\n1\n0\n1\n");
  ExpectError(StatusCode::kInvalidInput, {"node-label.csv:7:", "expected 6 labels", "more"});
}

// Splits.

TEST_F(RawReaderBadInputTest, SplitIdOutOfRange) {
  Write("split/s/valid.csv", "2\n3\n17\n");
  ExpectError(StatusCode::kInvalidInput, {"split/s/valid.csv:3:", "node id < 6", "17"});
}

TEST_F(RawReaderBadInputTest, SplitIdNotANumber) {
  Write("split/s/train.csv", "0\nfoo\n");
  ExpectError(StatusCode::kInvalidInput, {"split/s/train.csv:2:", "expected a node id", "'foo'"});
}

TEST_F(RawReaderBadInputTest, SplitLineWithTwoFields) {
  Write("split/s/train.csv", "0,1\n");
  ExpectError(StatusCode::kInvalidInput, {"split/s/train.csv:1:", "expected 1 field (a node id), found 2 fields"});
}

TEST_F(RawReaderBadInputTest, NodeRepeatedWithinSplit) {
  Write("split/s/test.csv", "4\n5\n4\n");
  ExpectError(StatusCode::kInvalidInput, {"split/s/test.csv:3:", "node id 4 is repeated", "at most once"});
}

TEST_F(RawReaderBadInputTest, NodeInTwoSplits) {
  Write("split/s/test.csv", "4\n1\n");
  ExpectError(StatusCode::kInvalidInput,
              {"split/s/test.csv:2:", "node id 1 is already in the train split", "at most one split"});
}

TEST_F(RawReaderBadInputTest, SplitNameAmbiguous) {
  testutil::WriteFile(Path("split/other/train.csv"), "0\n");
  ExpectError(StatusCode::kInvalidArgument, {Path("split"), "found 2: other, s"});
  // Naming one resolves it.
  EXPECT_TRUE(Read(tmp_.path(), "s").ok());
}

TEST_F(RawReaderBadInputTest, SplitNameNotFound) {
  ExpectError(StatusCode::kInvalidArgument, {Path("split/public"), "no such split", "available: s"}, "public");
}

TEST_F(RawReaderBadInputTest, NoSplitSubdirectory) {
  std::filesystem::remove_all(Path("split/s"));
  ExpectError(StatusCode::kInvalidInput, {Path("split"), "expected a split subdirectory"});
}

// Compressed input damaged on disk.

TEST_F(RawReaderBadInputTest, TruncatedGzipFeatureFile) {
  std::string text;
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 2000; ++j) text += std::to_string((i * 7919 + j * 104729) % 1000) + ",";
    text += "1\n";
  }
  Remove("raw/node-feat.csv");
  testutil::WriteGzFile(Path("raw/node-feat.csv.gz"), text);
  testutil::TruncateFile(Path("raw/node-feat.csv.gz"), testutil::FileSize(Path("raw/node-feat.csv.gz")) / 2);
  ExpectError(StatusCode::kInvalidInput, {"node-feat.csv.gz:", "gzip"});
}

TEST_F(RawReaderBadInputTest, BadLineInGzippedFile) {
  Remove("raw/edge.csv");
  testutil::WriteGzFile(Path("raw/edge.csv.gz"), "0,1\n1,2\n0,3,4\n1,3\n3,4\n2,5\n4,5\n");
  ExpectError(StatusCode::kInvalidInput, {"edge.csv.gz:3:", "expected 2 comma-separated node ids, found 3 fields"});
}

// ---------------------------------------------------------------------------------
// Real data

std::string FindCora() {
  for (const char* dir : {CGCN_SOURCE_DIR "/../shared/data/cora", CGCN_SOURCE_DIR "/data/cora"}) {
    std::error_code ec;
    if (std::filesystem::is_directory(std::string(dir) + "/raw", ec)) return dir;
  }
  return "";
}

// ---------------------------------------------------------------------------------
// ReadRawInput: the streamed form, as cgcn-preprocess uses it

std::vector<std::string> ScratchNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(RawInputTest, StreamsTinyDatasetIntoScratchFiles) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("data"), Compression::kGzip);
  std::filesystem::create_directory(tmp.Join("scratch"));
  Result<RawInput> in = ReadRawInput(RawReadOptions{tmp.Join("data"), ""}, tmp.Join("scratch"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(ScratchNames(tmp.Join("scratch")), (std::vector<std::string>{"edges.u32", "features.f32", "labels.u32"}));
  EXPECT_EQ(in->num_nodes, 6u);
  EXPECT_EQ(in->feat_dim, 3u);
  EXPECT_EQ(in->num_classes, 2u);
  EXPECT_EQ(in->num_edge_lines, 7u);
  EXPECT_EQ(testutil::FileSize(in->edges_path), 7u * 8);
  EXPECT_EQ(testutil::FileSize(in->features_path), 6u * 3 * 4);
  EXPECT_EQ(testutil::FileSize(in->labels_path), 6u * 4);
  // Edges in pieces of 3 come back in file order.
  std::vector<uint32_t> src, dst;
  std::vector<size_t> pieces;
  ASSERT_TRUE(in->ForEachEdgeChunk(
                    [&](std::span<const uint32_t> s, std::span<const uint32_t> d) {
                      src.insert(src.end(), s.begin(), s.end());
                      dst.insert(dst.end(), d.begin(), d.end());
                      pieces.push_back(s.size());
                    },
                    3)
                  .ok());
  EXPECT_EQ(src, (std::vector<uint32_t>{0, 1, 0, 1, 3, 2, 4}));
  EXPECT_EQ(dst, (std::vector<uint32_t>{1, 2, 3, 3, 4, 5, 5}));
  EXPECT_EQ(pieces, (std::vector<size_t>{3, 3, 1}));
  // Rows by id (runs and gaps), as the shard writer gathers a cluster.
  Result<RawNodeRows> rows = RawNodeRows::Open(*in);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  const std::vector<uint32_t> ids = {1, 2, 5};
  std::vector<float> f(9);
  std::vector<uint32_t> l(3);
  ASSERT_TRUE(rows->Gather(ids, f.data(), l.data()).ok());
  EXPECT_EQ(f, (std::vector<float>{1, -0.5f, 0.25f, 2, -1.5f, 1, 5, -4.5f, 6.25f}));
  EXPECT_EQ(l, (std::vector<uint32_t>{1, 0, 0}));
  // Phase statistics: one per parse phase, text bytes as parsed (the tiny files are gzipped).
  ASSERT_EQ(in->phases.size(), 4u);
  EXPECT_EQ(in->phases[0].name, "edges");
  for (const auto& [rel, text] : testutil::RawDatasetFiles(testutil::TinyRawDataset()))
    if (rel == "raw/edge") {
      EXPECT_EQ(in->phases[0].text_bytes, text.size());
    }
  EXPECT_EQ(in->phases[1].name, "features");
  EXPECT_EQ(in->phases[1].stored_bytes, testutil::FileSize(tmp.Join("data/raw/node-feat.csv.gz")));
}

TEST(RawInputTest, MalformedInputLeavesNoScratchFiles) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("data"), Compression::kPlain);
  // Labels are read after edges and features have been streamed out.
  testutil::WriteFile(tmp.Join("data/raw/node-label.csv"), "0\n1\nx\n1\n1\n0\n");
  std::filesystem::create_directory(tmp.Join("scratch"));
  Result<RawInput> in = ReadRawInput(RawReadOptions{tmp.Join("data"), ""}, tmp.Join("scratch"));
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.status().message(), tmp.Join("data/raw/node-label.csv") + ":3: expected a class id, found 'x'");
  EXPECT_EQ(ScratchNames(tmp.Join("scratch")), std::vector<std::string>{});
}

TEST(RawInputTest, ReadRawGraphLeavesNothingInTheTempDirectory) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.Join("data"), Compression::kPlain);
  // A private temporary directory: ctest runs other tests in parallel, and their readers'
  // scratch directories in the shared one would look like leftovers of this test.
  const std::string private_tmp = tmp.Join("tmpdir");
  std::filesystem::create_directories(private_tmp);
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  setenv("TMPDIR", private_tmp.c_str(), 1);
  ASSERT_EQ(std::filesystem::temp_directory_path().string(), private_tmp);
  auto ours = [&] {
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::directory_iterator(private_tmp)) v.push_back(e.path().string());
    return v;
  };
  EXPECT_TRUE(ReadRawGraph(RawReadOptions{tmp.Join("data"), ""}).ok());
  EXPECT_EQ(ours(), std::vector<std::string>{});
  testutil::WriteFile(tmp.Join("data/raw/edge.csv"), "0,1\n1,99\n");
  EXPECT_FALSE(ReadRawGraph(RawReadOptions{tmp.Join("data"), ""}).ok());
  EXPECT_EQ(ours(), std::vector<std::string>{});
  if (old) {
    setenv("TMPDIR", saved.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
}

TEST(RawReaderRealDataTest, Cora) {
  const std::string dir = FindCora();
  if (dir.empty()) GTEST_SKIP() << "Cora not found next to the source tree";
  Result<RawGraph> g = Read(dir);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->num_nodes, 2708u);
  EXPECT_EQ(g->feat_dim, 1433u);
  EXPECT_EQ(g->num_classes, 7u);
  EXPECT_EQ(g->edge_src.size(), 5278u);
  EXPECT_EQ(g->edge_dst.size(), 5278u);
  EXPECT_EQ(g->features.size(), 2708u * 1433u);
  EXPECT_EQ(g->labels.size(), 2708u);
  EXPECT_EQ(g->split_name, "public");
  EXPECT_EQ(g->num_train, 140u);
  EXPECT_EQ(g->num_valid, 500u);
  EXPECT_EQ(g->num_test, 1000u);
  // From the dataset's README: class sizes and the public train split = ids 0..139.
  std::vector<uint64_t> class_sizes(7, 0);
  for (uint32_t label : g->labels) ++class_sizes[label];
  EXPECT_EQ(class_sizes, (std::vector<uint64_t>{351, 217, 418, 818, 426, 298, 180}));
  for (uint32_t i = 0; i < 140; ++i) EXPECT_EQ(g->split[i], kSplitTrain) << i;
  for (uint32_t i = 140; i < 640; ++i) EXPECT_EQ(g->split[i], kSplitValid) << i;
  for (uint32_t i = 0; i < g->edge_src.size(); ++i) ASSERT_LT(g->edge_src[i], g->edge_dst[i]) << i;  // src < dst
  for (float v : g->features) ASSERT_TRUE(v == 0.0f || v == 1.0f);
  uint64_t stored = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".gz") stored += entry.file_size();
  }
  EXPECT_EQ(g->input_bytes, stored);
}

}  // namespace
}  // namespace cgcn
