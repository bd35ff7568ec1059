#include <gtest/gtest.h>
#include <sys/mman.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "cgcn/batch_stream.h"
#include "cgcn/checksum.h"
#include "cgcn/mapped_file.h"
#include "testutil/shards.h"

namespace cgcn {
namespace {

struct Seen {
  uint64_t index;
  std::vector<uint32_t> clusters;
  uint32_t nodes;
  uint64_t digest;  // of structure, weights and features
};

std::vector<Seen> RunEpochOf(BatchStream& stream, uint32_t epoch, EpochStats* st = nullptr) {
  std::vector<Seen> seen;
  EXPECT_TRUE(stream
                  .RunEpoch(
                      epoch,
                      [&](const Batch& b) {
                        StreamingChecksum h;
                        h.Update(b.offsets.data(), 4 * (b.num_nodes + 1));
                        h.Update(b.columns.data(), 4 * b.offsets[b.num_nodes]);
                        h.Update(b.weights.data(), 4 * b.offsets[b.num_nodes]);
                        h.Update(b.features.data(), 4 * uint64_t{b.num_nodes} * b.feat_dim);
                        seen.push_back({b.index, b.clusters, b.num_nodes, h.Digest()});
                        return Status::Ok();
                      },
                      st)
                  .ok());
  return seen;
}

std::vector<Seen> RunOnce(const ShardDirectory& d, uint32_t q, uint32_t prefetch, uint32_t epoch,
                          EpochStats* st = nullptr) {
  BatchStream stream(d, StreamOptions{q, prefetch, 42, FeatureNorm::Row()});
  return RunEpochOf(stream, epoch, st);
}

void ExpectSameBatches(const std::vector<Seen>& got, const std::vector<Seen>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].clusters, want[i].clusters) << what << " batch " << i;
    EXPECT_EQ(got[i].digest, want[i].digest) << what << " batch " << i;
  }
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    built_ =
        testutil::BuildShards(testutil::RandomRawDataset(500, 2500, 6, 3, 9), tmp_.path(), tmp_.Join("shards"), 10);
    auto d = ShardDirectory::Open(tmp_.Join("shards"));
    ASSERT_TRUE(d.ok());
    dir_ = std::make_unique<ShardDirectory>(std::move(d).value());
  }
  testutil::TempDir tmp_;
  testutil::BuiltShards built_;
  std::unique_ptr<ShardDirectory> dir_;
};

TEST_F(PipelineTest, EveryClusterOncePerEpochInOrder) {
  EpochStats st;
  const auto seen = RunOnce(*dir_, 3, 2, 1, &st);
  ASSERT_EQ(seen.size(), 4u);  // 10 clusters, q = 3
  std::multiset<uint32_t> all;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].index, i);
    all.insert(seen[i].clusters.begin(), seen[i].clusters.end());
  }
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(std::set<uint32_t>(all.begin(), all.end()).size(), 10u);
  EXPECT_EQ(st.batches, 4u);
  EXPECT_EQ(st.batch_nodes, 500u);
  EXPECT_GT(st.decompressed_bytes, 500u * 6 * 4);
  const auto groups = EpochBatches(10, 3, 42, 1);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].clusters, groups[i]);
  EXPECT_NE(EpochBatches(10, 3, 42, 2), groups);  // reshuffled every epoch
}

// Pages of `path` in the page cache (mincore on a fresh mapping, which does not fault them in).
size_t ResidentPages(const std::string& path) {
  auto f = MappedFile::Open(path);
  if (!f.ok() || f->bytes().empty()) return 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((f->bytes().size() + page - 1) / page);
  if (mincore(const_cast<std::byte*>(f->bytes().data()), f->bytes().size(), in.data()) != 0) return in.size();
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

TEST_F(PipelineTest, EpochCountsWhatItReadFromDisk) {
  ::sync();  // the shards were just written: only clean pages can be evicted
  uint64_t bytes = 0;
  size_t resident = 0;
  for (uint32_t c = 0; c < dir_->num_clusters(); ++c) {
    DropPageCache(dir_->ShardPath(c));
    resident += ResidentPages(dir_->ShardPath(c));
    bytes += std::filesystem::file_size(dir_->ShardPath(c));
  }
  if (resident > 0)
    GTEST_SKIP() << "this file system keeps evicted pages in memory (tmpfs?): nothing to read from disk";
  EpochStats cold, warm;
  RunOnce(*dir_, 3, 2, 1, &cold);
  RunOnce(*dir_, 3, 2, 1, &warm);
  EXPECT_EQ(warm.disk_read_bytes, 0u);  // every shard now in the page cache
  EXPECT_EQ(warm.major_faults, 0u);
  EXPECT_GT(cold.read_ahead_s, 0.0);  // every batch's files were read ahead
  if (ReadDiskCounters().read_bytes == 0) GTEST_SKIP() << "no per-task I/O accounting (/proc/self/io) in this kernel";
  EXPECT_GE(cold.disk_read_bytes, bytes);  // every shard file came from the disk
}

TEST_F(PipelineTest, SameBatchesWhateverPrefetchAndThreads) {
  const auto ref = RunOnce(*dir_, 4, 1, 3);
  for (int threads : {1, 2}) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
    for (uint32_t prefetch : {1u, 2u, 5u}) {
      const auto got = RunOnce(*dir_, 4, prefetch, 3);
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].clusters, ref[i].clusters);
        EXPECT_EQ(got[i].digest, ref[i].digest) << "threads " << threads << " prefetch " << prefetch << " batch " << i;
      }
    }
  }
}

TEST_F(PipelineTest, CorruptShardCancelsTheEpochWithItsName) {
  const std::string victim = tmp_.Join("shards/" + ShardFileName(7));
  testutil::FlipByte(victim, testutil::FileSize(victim) / 2);
  BatchStream stream(*dir_, StreamOptions{2, 3, 1, FeatureNorm::Row()});
  int consumed = 0;
  const Status s = stream.RunEpoch(
      1,
      [&](const Batch&) {
        ++consumed;
        return Status::Ok();
      },
      nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("shard-000007.cgs"), std::string::npos) << s.message();
  EXPECT_LT(consumed, 5);
}

TEST_F(PipelineTest, ConsumerErrorStopsThePipeline) {
  BatchStream stream(*dir_, StreamOptions{1, 2, 1, FeatureNorm::Row()});
  int consumed = 0;
  const Status s = stream.RunEpoch(
      1, [&](const Batch&) { return ++consumed == 3 ? Status::Internal("stop here") : Status::Ok(); }, nullptr);
  EXPECT_EQ(s.message(), "stop here");
  EXPECT_EQ(consumed, 3);
}

// The decoded-cluster cache: later epochs take every cluster from memory and see the very
// batches an uncached stream assembles; the shards are not read again.
TEST_F(PipelineTest, CachedClustersGiveTheSameBatchesWithoutDecoding) {
  uint64_t all = 0, raw = 0;
  for (const ShardInfo& s : dir_->manifest().shards) {
    all += BatchStream::CachedBytes(s, dir_->manifest().num_parts);
    raw += s.raw_bytes;
  }
  StreamOptions so{3, 2, 42, FeatureNorm::Row()};
  so.cache_bytes = all;
  BatchStream stream(*dir_, so);
  for (uint32_t epoch = 1; epoch <= 3; ++epoch) {
    EpochStats st;
    ExpectSameBatches(RunEpochOf(stream, epoch, &st), RunOnce(*dir_, 3, 2, epoch), "epoch " + std::to_string(epoch));
    EXPECT_EQ(st.cache_hits, epoch == 1 ? 0u : 10u) << "epoch " << epoch;
    EXPECT_LE(st.cache_bytes, all);  // the cached copies, each array padded to 64 bytes
    EXPECT_GE(st.cache_bytes, raw);
    if (epoch == 1) {
      EXPECT_GT(st.decompressed_bytes, 0u);
    } else {
      EXPECT_EQ(st.decompressed_bytes, 0u);
      EXPECT_EQ(st.decode_cpu_s, 0.0);
    }
  }
  // Cached clusters are not read again: a shard corrupted on disk after its first decode goes
  // unnoticed by the cache, and is caught again once the cache is dropped.
  const std::vector<Seen> want4 = RunOnce(*dir_, 3, 2, 4);
  const std::string victim = tmp_.Join("shards/" + ShardFileName(4));
  testutil::FlipByte(victim, testutil::FileSize(victim) / 2);
  EpochStats st;
  ExpectSameBatches(RunEpochOf(stream, 4, &st), want4, "epoch 4, from the cache");
  EXPECT_EQ(st.cache_hits, 10u);
  stream.DropCache();
  EXPECT_EQ(stream.cache_used_bytes(), 0u);
  const Status s = stream.RunEpoch(
      5, [](const Batch&) { return Status::Ok(); }, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("shard-000004.cgs"), std::string::npos) << s.message();
}

// A cache smaller than the graph holds whole clusters within its limit, and the batches stay the
// same whichever clusters it holds.
TEST_F(PipelineTest, CacheStaysWithinItsLimit) {
  std::vector<uint64_t> bytes;
  for (const ShardInfo& s : dir_->manifest().shards)
    bytes.push_back(BatchStream::CachedBytes(s, dir_->manifest().num_parts));
  const uint64_t limit = bytes[0] + bytes[1] + bytes[2] + bytes[3] / 2;  // room for about 3 of 10
  StreamOptions so{2, 3, 42, FeatureNorm::Row()};
  so.cache_bytes = limit;
  for (int threads : {1, 2}) {
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
    BatchStream stream(*dir_, so);
    EpochStats first, second;
    ExpectSameBatches(RunEpochOf(stream, 1, &first), RunOnce(*dir_, 2, 3, 1), "epoch 1");
    const uint64_t used = stream.cache_used_bytes();
    EXPECT_LE(used, limit);
    EXPECT_GT(used, 0u);
    ExpectSameBatches(RunEpochOf(stream, 2, &second), RunOnce(*dir_, 2, 3, 2), "epoch 2");
    EXPECT_EQ(stream.cache_used_bytes(), used);  // nothing entered or left
    EXPECT_GE(second.cache_hits, 1u);
    EXPECT_LE(second.cache_hits, 4u);
    uint64_t total = 0;
    for (const ShardInfo& s : dir_->manifest().shards) total += s.raw_bytes;
    const uint64_t from_cache = total - second.decompressed_bytes;  // the cached clusters' arrays
    EXPECT_LE(from_cache, used) << "threads " << threads;
    EXPECT_LE(used, from_cache + second.cache_hits * 10 * 64) << "threads " << threads;  // and their padding
  }
}

}  // namespace
}  // namespace cgcn
