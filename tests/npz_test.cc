// The .npz raw layout (raw/data.npz, raw/node-label.npz) and unlabeled nodes: the same shards as
// the CSV layout, every bad header, member and archive refused with a message naming the file,
// the member and the byte, and nothing left behind.
#include "raw/npz.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "cgcn/checksum.h"
#include "cgcn/manifest.h"
#include "cgcn/preprocess.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_format.h"
#include "cgcn/split.h"
#include "testutil/npz_writer.h"
#include "testutil/shards.h"
#include "testutil/testutil.h"
#include "util/fd.h"
#include "util/file_util.h"

namespace cgcn {
namespace {

namespace fs = std::filesystem;
using testutil::NpzOptions;
using testutil::RawDatasetSpec;
using testutil::TempDir;
using testutil::ZipEntry;

std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A random dataset in which the nodes of no split are unlabeled (as in ogbn-papers100M).
RawDatasetSpec DatasetWithUnlabeled(uint32_t n, uint32_t edges, uint32_t feat_dim, uint64_t seed) {
  RawDatasetSpec s = testutil::RandomRawDataset(n, edges, feat_dim, 5, seed);
  std::vector<uint8_t> in_split(n, 0);
  for (const auto* ids : {&s.train, &s.valid, &s.test})
    for (uint32_t v : *ids) in_split[v] = 1;
  for (uint32_t v = 0; v < n; ++v)
    if (!in_split[v]) s.labels[v] = kNoLabel;
  // Values every dtype holds exactly (f2 included): multiples of 1/8 below 8.
  for (auto& row : s.features)
    for (float& x : row) x = std::round(std::min(x, 7.0f) * 8) / 8;
  return s;
}

// Small blocks, so that every member is many blocks long and values cross block edges.
RawReadOptions SmallBlocks(const std::string& dir) {
  RawReadOptions o;
  o.dir = dir;
  o.text_block_bytes = 4099;
  o.scratch_buffer_bytes = 1031;
  return o;
}

// The CSV and the .npz form of one graph, preprocessed the same way, give byte-identical shards
// and the same manifest apart from the input files.
struct Variant {
  const char* name;
  NpzOptions options;
};

class NpzSameShardsTest : public ::testing::TestWithParam<Variant> {};

TEST_P(NpzSameShardsTest, CsvAndNpzGiveTheSameShards) {
  TempDir tmp;
  const RawDatasetSpec spec = DatasetWithUnlabeled(700, 3000, 9, 7);
  testutil::WriteRawDataset(tmp.Join("csv"), spec, testutil::Compression::kGzip);
  testutil::WriteNpzDataset(tmp.Join("npz"), spec, GetParam().options);
  // The file and its feature member are several blocks long: they stream.
  ASSERT_GT(testutil::FileSize(tmp.Join("npz/raw/data.npz")), 2 * 4099u);
  ASSERT_GT(testutil::NpzDataMembers(spec, GetParam().options)[1].bytes.size(), 3 * 4099u);

  Result<RawGraph> a = ReadRawGraph(SmallBlocks(tmp.Join("csv")));
  Result<RawGraph> b = ReadRawGraph(SmallBlocks(tmp.Join("npz")));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->num_nodes, spec.num_nodes);
  EXPECT_EQ(b->edge_src, a->edge_src);
  EXPECT_EQ(b->edge_dst, a->edge_dst);
  EXPECT_EQ(b->features, a->features);
  EXPECT_EQ(b->labels, spec.labels);
  EXPECT_EQ(b->labels, a->labels);
  EXPECT_EQ(b->split, a->split);
  EXPECT_EQ(b->num_classes, a->num_classes);
  EXPECT_EQ(b->num_unlabeled, a->num_unlabeled);
  EXPECT_GT(b->num_unlabeled, 0u);
  EXPECT_EQ(b->num_unlabeled, static_cast<uint64_t>(std::count(spec.labels.begin(), spec.labels.end(), kNoLabel)));

  for (const char* form : {"csv", "npz"}) {
    PreprocessOptions po;
    po.read = SmallBlocks(tmp.Join(form));
    po.write.out_dir = tmp.Join(std::string("out-") + form);
    po.parts = 6;
    Result<PreprocessReport> r = Preprocess(po);
    ASSERT_TRUE(r.ok()) << form << ": " << r.status().ToString();
  }
  const std::vector<std::string> names = DirNames(tmp.Join("out-csv"));
  ASSERT_EQ(DirNames(tmp.Join("out-npz")), names);
  for (const std::string& name : names) {
    if (name == "MANIFEST") continue;
    EXPECT_EQ(testutil::ReadFile(tmp.Join("out-npz/" + name)), testutil::ReadFile(tmp.Join("out-csv/" + name)))
        << name << " differs";
  }
  auto manifest = [&](const char* form) {
    const std::string bytes = testutil::ReadFile(tmp.Join(std::string("out-") + form + "/MANIFEST"));
    Result<Manifest> m = DecodeManifest(std::as_bytes(std::span(bytes.data(), bytes.size())), "MANIFEST");
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : Manifest{};
  };
  Manifest mc = manifest("csv"), mn = manifest("npz");
  ASSERT_EQ(mn.input_files.size(), 5u);
  EXPECT_EQ(mn.input_files[0].relative, "raw/data.npz");
  EXPECT_EQ(mn.input_files[1].relative, "raw/node-label.npz");
  EXPECT_EQ(mn.input_files[0].size, testutil::FileSize(tmp.Join("npz/raw/data.npz")));
  const std::string data = testutil::ReadFile(tmp.Join("npz/raw/data.npz"));
  EXPECT_EQ(mn.input_files[0].checksum, Checksum64(data.data(), data.size()));
  EXPECT_NE(mn.input_fingerprint, mc.input_fingerprint);
  for (Manifest* m : {&mc, &mn}) {
    m->input_files.clear();
    m->input_fingerprint = 0;
    m->input_bytes = 0;
  }
  EXPECT_EQ(EncodeManifest(mn), EncodeManifest(mc));
}

NpzOptions With(auto f) {
  NpzOptions o;
  f(o);
  return o;
}

INSTANTIATE_TEST_SUITE_P(Variants, NpzSameShardsTest,
                         ::testing::Values(Variant{"stored", {}},
                                           Variant{"deflated", With([](NpzOptions& o) { o.deflate = true; })},
                                           Variant{"zip64", With([](NpzOptions& o) { o.zip64 = true; })},
                                           Variant{"deflated_zip64_v2", With([](NpzOptions& o) {
                                                     o.deflate = o.zip64 = true;
                                                     o.npy_major = 2;
                                                   })},
                                           Variant{"fortran_edges_i4", With([](NpzOptions& o) {
                                                     o.fortran_edges = true;
                                                     o.edge_dtype = "<i4";
                                                     o.npy_major = 3;
                                                   })},
                                           Variant{"f2_features_f4_labels", With([](NpzOptions& o) {
                                                     o.feat_dtype = "<f2";
                                                     o.label_dtype = "<f4";
                                                     o.label_column = false;
                                                   })},
                                           Variant{"f8_features_i8_labels", With([](NpzOptions& o) {
                                                     o.deflate = true;
                                                     o.feat_dtype = "<f8";
                                                     o.label_dtype = "<i8";
                                                   })}),
                         [](const ::testing::TestParamInfo<Variant>& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------------
// Bad input: each message names the file, the member and the byte; nothing is left behind.

class NpzBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = testutil::TinyRawDataset();
    spec_.labels[3] = kNoLabel;  // node 3 is in no split
    data_ = testutil::NpzDataMembers(spec_, options_);
    labels_ = testutil::NpzLabelMembers(spec_, options_);
  }
  std::string Dir() const { return tmp_.Join("data"); }
  std::string DataPath() const { return Dir() + "/raw/data.npz"; }
  std::string LabelPath() const { return Dir() + "/raw/node-label.npz"; }
  void Write() {
    testutil::WriteNpzDataset(Dir(), spec_, options_);  // the splits
    testutil::WriteFile(DataPath(), testutil::ZipBytes(data_));
    testutil::WriteFile(LabelPath(), testutil::ZipBytes(labels_));
  }
  ZipEntry& Member(const std::string& name) {
    for (auto* list : {&data_, &labels_})
      for (ZipEntry& e : *list)
        if (e.name == name) return e;
    throw std::runtime_error("no member " + name);
  }
  Result<RawInput> Read() {
    fs::create_directories(tmp_.Join("scratch"));
    return ReadRawInput(SmallBlocks(Dir()), tmp_.Join("scratch"));
  }
  void ExpectOk() {
    Result<RawInput> in = Read();
    EXPECT_TRUE(in.ok()) << in.status().ToString();
  }
  // Fails with a message holding every part, and leaves the scratch directory empty.
  void ExpectError(std::initializer_list<std::string> parts, StatusCode code = StatusCode::kInvalidInput) {
    Result<RawInput> in = Read();
    ASSERT_FALSE(in.ok()) << "expected an error mentioning " << *parts.begin();
    EXPECT_EQ(in.status().code(), code) << in.status().ToString();
    for (const std::string& part : parts) {
      EXPECT_NE(in.status().message().find(part), std::string::npos)
          << "message lacks '" << part << "': " << in.status().message();
    }
    EXPECT_EQ(DirNames(tmp_.Join("scratch")), std::vector<std::string>{});
  }

  TempDir tmp_;
  RawDatasetSpec spec_;
  NpzOptions options_;
  std::vector<ZipEntry> data_, labels_;
};

TEST_F(NpzBadInputTest, TinyDatasetReads) {
  Write();
  Result<RawInput> in = Read();
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->num_nodes, 6u);
  EXPECT_EQ(in->num_edge_lines, 7u);
  EXPECT_EQ(in->feat_dim, 3u);
  EXPECT_EQ(in->num_classes, 2u);
  EXPECT_EQ(in->num_unlabeled, 1u);
  EXPECT_EQ(DirNames(tmp_.Join("scratch")), (std::vector<std::string>{"edges.u32", "features.f32", "labels.u32"}));
  const std::string labels = testutil::ReadFile(in->labels_path);
  std::vector<uint32_t> got(6);
  std::memcpy(got.data(), labels.data(), 24);
  EXPECT_EQ(got, (std::vector<uint32_t>{0, 1, 0, kNoLabel, 1, 0}));
}

TEST_F(NpzBadInputTest, BadMagic) {
  Member("edge_index.npy").bytes[1] = 'X';
  Write();
  ExpectError({DataPath() + " member edge_index.npy byte 0: expected the .npy magic \\x93NUMPY, found '\\x93XUMPY'"});
}

TEST_F(NpzBadInputTest, BadVersion) {
  Member("node_feat.npy").bytes[6] = 4;
  Write();
  ExpectError({DataPath() + " member node_feat.npy byte 6: expected .npy format version 1.0, 2.0 or 3.0, found 4.0"});
}

TEST_F(NpzBadInputTest, BadDtype) {
  std::string& b = Member("edge_index.npy").bytes;
  const size_t at = b.find("'<i8'");
  b.replace(at, 5, "'>f4'");
  Write();
  ExpectError({DataPath() + " member edge_index.npy byte " + std::to_string(at) +
               ": expected dtype '<i8' or '<i4', found '>f4'"});
}

TEST_F(NpzBadInputTest, UnknownDtype) {
  std::string& b = Member("node_feat.npy").bytes;
  b.replace(b.find("'<f4'"), 5, "'<c8'");
  Write();
  ExpectError({"member node_feat.npy byte 20: expected dtype '<f4', '<f2' or '<f8', found '<c8'"});
}

TEST_F(NpzBadInputTest, WrongEdgeShape) {
  Member("edge_index.npy").bytes = testutil::NpyBytes("<i8", {7, 2}, std::string(7 * 2 * 8, '\0'));
  Write();
  ExpectError({"member edge_index.npy byte", "expected shape (2, 7) (num_edges_list says 7 edges), found (7, 2)"});
}

TEST_F(NpzBadInputTest, FeatureRowsDisagreeWithNodeCount) {
  Member("node_feat.npy").bytes = testutil::NpyBytes("<f4", {5, 3}, std::string(5 * 3 * 4, '\0'));
  Write();
  ExpectError({"member node_feat.npy byte", "expected shape (6, F)", "(num_nodes_list says 6 nodes), found (5, 3)"});
}

TEST_F(NpzBadInputTest, LabelShape) {
  Member("node_label.npy").bytes = testutil::NpyBytes("<f8", {6, 2, 1}, std::string(6 * 2 * 8, '\0'));
  Write();
  ExpectError({LabelPath() + " member node_label.npy byte", "expected shape (6,), (6, 1) or (6, L) with L <= 65536",
               "found (6, 2, 1)"});
}

// node_label (N, L), L >= 2: a multi-label task; node 3's row all NaN (unlabeled).
std::string MultiLabelRows(double bad = 0, uint64_t bad_at = 0) {
  const double nan = std::nan("");
  std::vector<double> v = {1, 0, 1, 0, 0, 0, 0, 1, 0, nan, nan, nan, 1, 1, 1, 0, 0, 1};
  if (bad_at != 0) v[bad_at] = bad;
  return testutil::NpyBytes("<f8", {6, 3}, testutil::RawBytes(v));
}

TEST_F(NpzBadInputTest, MultiLabelRowsRead) {
  Member("node_label.npy").bytes = MultiLabelRows();
  Write();
  Result<RawInput> in = Read();
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->label_tasks, 3u);
  EXPECT_EQ(in->num_classes, 3u);
  EXPECT_EQ(in->num_unlabeled, 1u);
  std::vector<uint32_t> labels(6), bits(6);
  std::memcpy(labels.data(), testutil::ReadFile(in->labels_path).data(), 24);
  const std::string b = testutil::ReadFile(in->label_bits_path);
  ASSERT_EQ(b.size(), 24u);
  std::memcpy(bits.data(), b.data(), 24);
  EXPECT_EQ(labels, (std::vector<uint32_t>{0, 0, 0, kNoLabel, 0, 0}));
  EXPECT_EQ(bits, (std::vector<uint32_t>{0b101, 0, 0b010, 0, 0b111, 0b100}));
}

TEST_F(NpzBadInputTest, MultiLabelBadValuesNamed) {
  Member("node_label.npy").bytes = MultiLabelRows(2, 4);  // node 1, task 1
  Write();
  ExpectError({LabelPath() + " member node_label.npy byte 160 (node 1 task 1): expected 0 or 1 (or NaN or -1 in "
                             "every task of an unlabeled node), found 2"});
  Member("node_label.npy").bytes = MultiLabelRows(std::nan(""), 7);  // node 2, task 1 of 3
  Write();
  ExpectError({LabelPath() + " member node_label.npy byte 192 (node 2): 1 of 3 tasks are NaN or -1 (expected all of "
                             "a node's tasks 0 or 1, or all NaN or -1)"});
}

TEST_F(NpzBadInputTest, FortranOrderFeaturesRefused) {
  std::string& b = Member("node_feat.npy").bytes;
  b.replace(b.find("False"), 5, "True ");
  Write();
  ExpectError({"member node_feat.npy byte", "expected fortran_order False", "found True"});
}

TEST_F(NpzBadInputTest, FortranOrderSingleColumnLabelsAccepted) {
  std::string& b = Member("node_label.npy").bytes;
  b.replace(b.find("False"), 5, "True ");
  Write();
  ExpectOk();
}

TEST_F(NpzBadInputTest, DataShorterThanShape) {
  std::string& b = Member("edge_index.npy").bytes;
  b.resize(b.size() - 8);
  Write();
  ExpectError(
      {"member edge_index.npy byte 128: expected 112 bytes of data for shape (2, 7) of '<i8', found 104 (truncated)"});
}

TEST_F(NpzBadInputTest, TruncatedArchive) {
  Write();
  testutil::TruncateFile(DataPath(), testutil::FileSize(DataPath()) - 30);
  ExpectError({DataPath() + " byte", "end-of-central-directory", "truncated"});
}

TEST_F(NpzBadInputTest, TruncatedDeflateStream) {
  options_.deflate = true;
  SetUp();
  Write();
  // Cut the deflated edge_index member in the middle, keeping the directory consistent.
  ZipEntry& e = Member("edge_index.npy");
  std::string stored = testutil::Deflate(e.bytes);
  std::vector<ZipEntry> entries = data_;
  std::string zip = testutil::ZipBytes(entries);
  const size_t at = zip.find(stored);
  ASSERT_NE(at, std::string::npos);
  // Rebuild by hand: the same archive with the member's stored bytes halved (sizes patched).
  const size_t half = stored.size() / 2;
  std::string cut = zip.substr(0, at) + stored.substr(0, half) + zip.substr(at + stored.size());
  const int64_t shift = static_cast<int64_t>(stored.size() - half);
  // Local header compressed size at at-30+18; central directory entries' offsets follow the cut.
  auto put32 = [&](size_t pos, uint32_t v) { std::memcpy(cut.data() + pos, &v, 4); };
  auto get32 = [&](size_t pos) {
    uint32_t v;
    std::memcpy(&v, cut.data() + pos, 4);
    return v;
  };
  const size_t local = at - 30 - e.name.size();
  put32(local + 18, static_cast<uint32_t>(half));
  for (size_t p = cut.find("PK\x01\x02"); p != std::string::npos; p = cut.find("PK\x01\x02", p + 4)) {
    if (get32(p + 42) == local) put32(p + 20, static_cast<uint32_t>(half));
    if (get32(p + 42) > local) put32(p + 42, static_cast<uint32_t>(get32(p + 42) - shift));
  }
  const size_t end = cut.size() - 22;
  put32(end + 16, static_cast<uint32_t>(get32(end + 16) - shift));
  testutil::WriteFile(DataPath(), cut);
  ExpectError({DataPath() + " member edge_index.npy byte", "truncated deflate stream"});
}

TEST_F(NpzBadInputTest, CrcMismatch) {
  Write();
  // Flip the low bit of a feature value inside the stored node_feat member: still finite, the
  // CRC no longer matches.
  std::string zip = testutil::ReadFile(DataPath());
  const std::string& member = Member("node_feat.npy").bytes;
  const size_t at = zip.find(member);
  ASSERT_NE(at, std::string::npos);
  testutil::FlipByte(DataPath(), at + member.size() - 4, 0x01);
  ExpectError({DataPath() + " member node_feat.npy: CRC-32 mismatch: the zip directory says 0x"});
}

TEST_F(NpzBadInputTest, CorruptDeflateData) {
  options_.deflate = true;
  SetUp();
  Write();
  std::string zip = testutil::ReadFile(DataPath());
  const std::string stored = testutil::Deflate(Member("node_feat.npy").bytes);
  const size_t at = zip.find(stored);
  ASSERT_NE(at, std::string::npos);
  for (size_t i = 8; i < stored.size(); i += 3) testutil::FlipByte(DataPath(), at + i, 0x5a);
  ExpectError({DataPath() + " member node_feat.npy"});
}

TEST_F(NpzBadInputTest, MissingMember) {
  data_.pop_back();  // num_edges_list.npy
  Write();
  ExpectError({DataPath() + ": expected a member num_edges_list.npy, found only 'edge_index.npy', 'node_feat.npy', "
                            "'num_nodes_list.npy'"});
}

TEST_F(NpzBadInputTest, MissingLabelFile) {
  Write();
  fs::remove(LabelPath());
  ExpectError({LabelPath() + ": no such file"}, StatusCode::kIoError);
}

TEST_F(NpzBadInputTest, CsvAndNpzBothPresent) {
  Write();
  testutil::WriteFile(Dir() + "/raw/edge.csv", "0,1\n");
  ExpectError({DataPath() + " and " + Dir() + "/raw/edge.csv are both present"});
}

TEST_F(NpzBadInputTest, NotAZipFile) {
  Write();
  testutil::WriteFile(DataPath(), std::string(100, 'x'));
  ExpectError({DataPath() + " byte 100: expected a zip end-of-central-directory record"});
}

TEST_F(NpzBadInputTest, UnsupportedCompressionMethod) {
  Write();
  std::string zip = testutil::ReadFile(DataPath());
  const size_t cd = zip.find("PK\x01\x02");
  zip[cd + 10] = 12;  // bzip2
  testutil::WriteFile(DataPath(), zip);
  ExpectError({DataPath() + " byte " + std::to_string(cd + 10) +
               ": central directory entry 'edge_index.npy': expected compression method 0 (stored) or 8 (deflated), "
               "found 12"});
}

TEST_F(NpzBadInputTest, DuplicateMemberName) {
  data_.push_back(data_[0]);
  Write();
  ExpectError({DataPath() + " byte", "central directory entry 'edge_index.npy': the name is already used"});
}

TEST_F(NpzBadInputTest, HeaderDictErrors) {
  struct Case {
    std::string dict, message;
  };
  const Case cases[] = {
      {"{'descr': '<i8', 'shape': (2, 7), }",
       "expected the header dict to hold 'descr', 'fortran_order' and 'shape', found no 'fortran_order'"},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (2, 7), 'x': 1}",
       "expected the keys 'descr', 'fortran_order' and 'shape', found 'x'"},
      {"{'descr': '<i8', 'fortran_order': Nope, 'shape': (2, 7), }", "expected True or False for 'fortran_order'"},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (2 7), }", "expected ',' or ')' in 'shape'"},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (-2, 7), }", "expected a non-negative integer dimension"},
      {"{'descr': [('a', '<i8')], 'fortran_order': False, 'shape': (2, 7), }", "structured dtype"},
      {"{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (2, 7), }", "key 'descr' appears twice"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dict);
    Member("edge_index.npy").bytes = testutil::NpyBytesWithDict(c.dict, std::string(2 * 7 * 8, '\0'));
    Write();
    ExpectError({DataPath() + " member edge_index.npy byte", c.message});
  }
}

TEST_F(NpzBadInputTest, EdgeIdOutOfRange) {
  std::string& b = Member("edge_index.npy").bytes;
  const int64_t big = 6;
  std::memcpy(b.data() + 128 + 9 * 8, &big, 8);  // destination of edge 2
  Write();
  ExpectError({DataPath() + " member edge_index.npy byte 200 (edge 2, destination): expected node ids < 6 "
                            "(num_nodes_list says 6 nodes), found 6"});
}

TEST_F(NpzBadInputTest, NegativeEdgeIdFortranOrder) {
  options_.fortran_edges = true;
  SetUp();
  std::string& b = Member("edge_index.npy").bytes;
  const int64_t neg = -3;
  std::memcpy(b.data() + 128 + 4 * 8, &neg, 8);  // source of edge 2
  Write();
  ExpectError({"member edge_index.npy byte 160 (edge 2, source): expected a node id >= 0, found -3"});
}

TEST_F(NpzBadInputTest, FeatureNotFinite) {
  std::string& b = Member("node_feat.npy").bytes;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(b.data() + 128 + 4 * 4, &nan, 4);  // node 1, feature 2
  Write();
  ExpectError({"member node_feat.npy byte 144 (node 1, feature 2): expected a finite number, found nan"});
}

TEST_F(NpzBadInputTest, DoubleFeatureTooLargeForFloat) {
  options_.feat_dtype = "<f8";
  SetUp();
  std::string& b = Member("node_feat.npy").bytes;
  const double big = 1e300;
  std::memcpy(b.data() + 128, &big, 8);
  Write();
  ExpectError(
      {"member node_feat.npy byte 128 (node 0, feature 1): expected a number that fits a 32-bit float, found 1"});
}

TEST_F(NpzBadInputTest, LabelNotIntegral) {
  std::string& b = Member("node_label.npy").bytes;
  const double v = 2.5;
  std::memcpy(b.data() + 128 + 2 * 8, &v, 8);
  Write();
  ExpectError({LabelPath() + " member node_label.npy byte 144 (node 2): expected an integral class id (or NaN for an "
                             "unlabeled node), found 2.5"});
}

TEST_F(NpzBadInputTest, LabelNegative) {
  std::string& b = Member("node_label.npy").bytes;
  const double v = -2;
  std::memcpy(b.data() + 128, &v, 8);
  Write();
  ExpectError({"member node_label.npy byte 128 (node 0): expected a class id in [0, 65535]", "found -2"});
}

TEST_F(NpzBadInputTest, UnlabeledNodeInSplit) {
  spec_.labels[4] = kNoLabel;  // node 4 is in the test split
  SetUp();
  spec_.labels[4] = kNoLabel;
  labels_ = testutil::NpzLabelMembers(spec_, options_);
  Write();
  ExpectError({Dir() + "/split/s/test.csv.gz:1: node id 4 has no label in " + LabelPath() +
               " member node_label.npy (expected only labeled nodes in a split)"});
}

TEST_F(NpzBadInputTest, EveryNodeUnlabeled) {
  for (uint32_t& l : spec_.labels) l = kNoLabel;
  labels_ = testutil::NpzLabelMembers(spec_, options_);
  Write();
  ExpectError({LabelPath() + " member node_label.npy: expected at least one labeled node, found 6 unlabeled ones"});
}

TEST_F(NpzBadInputTest, FingerprintCoversIgnoredMembers) {
  data_.push_back(ZipEntry{"node_year.npy", testutil::NpyBytes("<i8", {6}, std::string(48, '\0'))});
  Write();
  Result<RawInput> a = Read();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  data_.back().bytes[130] = 1;
  Write();
  Result<RawInput> b = Read();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE(a->fingerprint, b->fingerprint);
  Result<std::vector<InputFileDigest>> d = DigestRawInput(SmallBlocks(Dir()));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->size(), 5u);
  EXPECT_EQ((*d)[0].relative, "raw/data.npz");
  EXPECT_EQ((*d)[1].relative, "raw/node-label.npz");
  EXPECT_EQ((*d)[2].relative, "split/s/train.csv.gz");
}

// ---------------------------------------------------------------------------------
// Unlabeled nodes in the CSV layout: an empty field, nan (any case) or -1.

TEST(CsvUnlabeledTest, EmptyNanAndMinusOneAreUnlabeled) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), testutil::Compression::kPlain);
  // Node 3 is in no split.
  for (const char* form : {"", "nan", "NaN", "NAN", "-1"}) {
    SCOPED_TRACE(form);
    testutil::WriteFile(tmp.Join("raw/node-label.csv"), std::string("0\n1\n0\n") + form + "\n1\n0\n");
    Result<RawGraph> g = ReadRawGraph(RawReadOptions{tmp.path(), ""});
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->labels, (std::vector<uint32_t>{0, 1, 0, kNoLabel, 1, 0}));
    EXPECT_EQ(g->num_unlabeled, 1u);
    EXPECT_EQ(g->num_classes, 2u);
  }
  // The last node unlabeled by an empty field: the empty last line counts.
  testutil::WriteFile(tmp.Join("raw/node-label.csv"), "0\n1\n0\n1\n1\n\n");
  testutil::WriteFile(tmp.Join("split/s/test.csv"), "4\n");
  Result<RawGraph> g = ReadRawGraph(RawReadOptions{tmp.path(), ""});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->labels.back(), kNoLabel);
}

TEST(CsvUnlabeledTest, UnlabeledNodeInSplitIsAnError) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), testutil::Compression::kPlain);
  testutil::WriteFile(tmp.Join("raw/node-label.csv"), "0\n1\nnan\n1\n1\n0\n");  // node 2 is in valid
  Result<RawGraph> g = ReadRawGraph(RawReadOptions{tmp.path(), ""});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(), tmp.Join("split/s/valid.csv") + ":1: node id 2 has no label in " +
                                      tmp.Join("raw/node-label.csv") + " (expected only labeled nodes in a split)");
}

TEST(CsvUnlabeledTest, NanWithSuffixIsNotUnlabeled) {
  TempDir tmp;
  testutil::WriteTinyRawDataset(tmp.path(), testutil::Compression::kPlain);
  testutil::WriteFile(tmp.Join("raw/node-label.csv"), "0\n1\n0\nnan0\n1\n0\n");
  Result<RawGraph> g = ReadRawGraph(RawReadOptions{tmp.path(), ""});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("node-label.csv:4: expected a class id, found 'nan0'"), std::string::npos)
      << g.status().message();
}

// ---------------------------------------------------------------------------------
// Shards with unlabeled nodes.

TEST(UnlabeledShardTest, EncodeRefusesAnUnlabeledNodeInASplit) {
  ClusterData c;
  c.cluster_id = 0;
  c.num_nodes = 2;
  c.feat_dim = 1;
  c.num_classes = 3;
  c.node_ids = {0, 1};
  c.adj_offsets = {0, 0, 0};
  c.features = {1, 2};
  c.labels = {2, kNoLabel};
  c.split = {kSplitTrain, 0};
  Result<std::vector<std::byte>> ok = EncodeShard(c, 1, 0);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  // Decoding gives kNoLabel back.
  c.split = {kSplitTrain, kSplitTest};
  Result<std::vector<std::byte>> bad = EncodeShard(c, 1, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("row 1: label 4294967295 with split byte 4"), std::string::npos)
      << bad.status().message();
}

// ---------------------------------------------------------------------------------
// The zip reader on its own: a member bigger than the block streams through a bounded buffer.

TEST(NpzDecoderTest, LargeDeflatedMemberStreamsInSmallPieces) {
  TempDir tmp;
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  testutil::WriteFile(tmp.Join("a.zip"), testutil::ZipBytes({ZipEntry{"big", big, true, true}}, true));
  uint64_t size = 0;
  Result<UniqueFd> fd = OpenRegularFileForRead(tmp.Join("a.zip"), &size);
  ASSERT_TRUE(fd.ok());
  Result<std::vector<npz::ZipMember>> members = npz::ReadZipDirectory(fd->get(), tmp.Join("a.zip"), size);
  ASSERT_TRUE(members.ok()) << members.status().ToString();
  ASSERT_EQ(members->size(), 1u);
  const npz::ZipMember& m = (*members)[0];
  EXPECT_EQ(m.size, big.size());
  npz::MemberDecoder dec(m, "big");
  std::vector<char> in(1000), out(777);
  std::string got;
  for (uint64_t off = 0; off < m.stored_size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), m.stored_size - off));
    ASSERT_TRUE(PreadExact(fd->get(), "a.zip", in.data(), n, m.data_offset + off).ok());
    off += n;
    std::span<const char> s(in.data(), n);
    for (;;) {
      Result<size_t> r = dec.Run(&s, out.data(), out.size());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      got.append(out.data(), *r);
      if (*r < out.size() && s.empty()) break;
    }
  }
  EXPECT_TRUE(dec.Finish().ok());
  EXPECT_TRUE(got == big);
}

}  // namespace
}  // namespace cgcn
