// Damaged and stale shard directories are refused by every reader, never accepted and
// never crashed on: cgcn-dump --verify (Dump) and training (Train) alike.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <sstream>

#include "cgcn/dump.h"
#include "cgcn/shard_directory.h"
#include "cgcn/shard_format.h"
#include "cgcn/train.h"
#include "testutil/shards.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

Status VerifyDir(const std::string& dir) {
  DumpOptions o;
  o.dir = dir;
  o.verify = true;
  std::ostringstream ignored;
  return Dump(o, ignored);
}

Status TrainOneEpoch(const std::string& dir) {
  CGCN_ASSIGN_OR_RETURN(ShardDirectory d, ShardDirectory::Open(dir));
  TrainOptions o;
  o.epochs = 1;
  o.hidden = 4;
  o.clusters_per_batch = 2;
  Gcn model(GcnConfig{d.manifest().feat_dim, 4, d.manifest().num_classes, 2, 0.5f}, 1);
  return Train(d, o, model).status();
}

// Every byte of a shard flipped in turn, then the shard cut at many lengths.
// Both codecs: every section zstd-compressed (min ratio 0), then every section raw (min ratio
// 1e9), so a flipped byte is caught by the checksum before it reaches either decoder.
class CorruptionByCodec : public testing::TestWithParam<double> {};

TEST_P(CorruptionByCodec, EveryFlippedByteAndTruncationOfAShardIsRefusedByDumpAndTrain) {
  testutil::TempDir tmp;
  const std::string out = tmp.Join("shards");
  testutil::BuildShards(testutil::TinyRawDataset(), tmp.path(), out, 2, 0, GetParam());
  const std::string victim = out + "/" + ShardFileName(1);
  const std::string good = testutil::ReadFile(victim);
  {  // the shard really uses the codec under test, and cgcn-dump --shard says which
    const Result<ShardHeader> h = ParseShardHeader(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(good.data()), good.size()), victim);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    DumpOptions o;
    o.dir = out;
    o.shard = 1;
    std::ostringstream text;
    ASSERT_TRUE(Dump(o, text).ok());
    for (const SectionEntry& e : h->sections) {
      if (e.raw_size == 0) continue;  // empty sections are zstd frames whatever the ratio
      const uint32_t want = GetParam() == 0 ? kCodecZstd : kCodecRaw;
      EXPECT_EQ(e.codec, want) << SectionName(e.kind);
      EXPECT_NE(text.str().find(std::string("  ") + SectionName(e.kind)), std::string::npos);
    }
    EXPECT_NE(text.str().find(GetParam() == 0 ? " zstd " : " raw "), std::string::npos) << text.str();
  }
  ASSERT_TRUE(VerifyDir(out).ok());
  ASSERT_TRUE(TrainOneEpoch(out).ok());
  uint64_t caught_dump = 0, caught_train = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    testutil::WriteFile(victim, bad);
    const Status a = VerifyDir(out), b = TrainOneEpoch(out);
    ASSERT_EQ(a.code(), StatusCode::kCorruption) << "byte " << i << ": " << a.ToString();
    ASSERT_EQ(b.code(), StatusCode::kCorruption) << "byte " << i << ": " << b.ToString();
    ASSERT_NE(a.message().find("shard-000001.cgs"), std::string::npos) << a.message();
    ASSERT_NE(b.message().find("shard-000001.cgs"), std::string::npos) << b.message();
    caught_dump += !a.ok();
    caught_train += !b.ok();
  }
  EXPECT_EQ(caught_dump, good.size());
  EXPECT_EQ(caught_train, good.size());
  for (size_t len = 0; len < good.size(); len += 7) {
    testutil::WriteFile(victim, good.substr(0, len));
    EXPECT_FALSE(VerifyDir(out).ok()) << "length " << len;
    EXPECT_FALSE(TrainOneEpoch(out).ok()) << "length " << len;
  }
  std::cout << "[          ] " << (GetParam() == 0 ? "zstd" : "raw") << " sections: " << good.size()
            << " bytes flipped one at a time: " << caught_dump << " refused by verify, " << caught_train
            << " by training\n";
}

INSTANTIATE_TEST_SUITE_P(Corruption, CorruptionByCodec, testing::Values(0.0, 1e9),
                         [](const testing::TestParamInfo<double>& i) {
                           return i.param == 0 ? std::string("Zstd") : std::string("Raw");
                         });

TEST(Corruption, ShardFromAnotherDirectoryIsStale) {
  testutil::TempDir tmp;
  testutil::BuildShards(testutil::TinyRawDataset(), tmp.Join("a"), tmp.Join("a/shards"), 2);
  auto other = testutil::TinyRawDataset();
  other.labels[0] = 1;  // same sizes, different content
  testutil::BuildShards(other, tmp.Join("b"), tmp.Join("b/shards"), 2);
  // Same size (labels compress alike) but a different header checksum: a swapped-in file.
  fs::copy_file(tmp.Join("b/shards/" + ShardFileName(0)), tmp.Join("a/shards/" + ShardFileName(0)),
                fs::copy_options::overwrite_existing);
  const Status s = TrainOneEpoch(tmp.Join("a/shards"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("shard-000000.cgs"), std::string::npos) << s.message();
}

TEST(Corruption, StaleAgainstChangedRawInputSaysWhichFileDiffers) {
  testutil::TempDir tmp;
  const std::string out = tmp.Join("shards");
  testutil::BuildShards(testutil::TinyRawDataset(), tmp.path(), out, 2);
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_TRUE(d.ok());
  // BuildShards runs Preprocess, which records the input's digests as cgcn-preprocess does.
  EXPECT_TRUE(d->CheckInput(tmp.Join("raw-data")).ok());
  // Change one label: same length, different content.
  std::string labels = testutil::ReadFile(tmp.Join("raw-data/raw/node-label.csv"));
  labels[0] = labels[0] == '0' ? '1' : '0';
  testutil::WriteFile(tmp.Join("raw-data/raw/node-label.csv"), labels);
  testutil::WriteFile(tmp.Join("raw-data/raw/edge.csv"),
                      testutil::ReadFile(tmp.Join("raw-data/raw/edge.csv")) + "0,5\n");
  const Status s = d->CheckInput(tmp.Join("raw-data"));
  ASSERT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("is stale"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("raw/node-label.csv: same size, content differs"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("raw/edge.csv: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(" bytes"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cgcn
