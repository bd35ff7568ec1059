#include "cgcn/shard_writer.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cgcn/dump.h"
#include "cgcn/shard_directory.h"
#include "cgcn/shard_format.h"
#include "testutil/shards.h"
#include "util/file_util.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::BuildShards;
using testutil::TempDir;

// Reads every shard back and rebuilds the whole graph from them, in original ids.
TEST(ShardWriter, ShardsTogetherHoldExactlyTheInputGraph) {
  TempDir tmp;
  const auto spec = testutil::RandomRawDataset(300, 1200, 4, 3, 11);
  const std::string out = tmp.Join("shards");
  const auto built = BuildShards(spec, tmp.path(), out, 6);
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_clusters(), 6u);
  EXPECT_EQ(d->manifest().num_nodes, 300u);
  EXPECT_EQ(d->manifest().input_fingerprint, built.raw.fingerprint);

  ShardDecoder dec;
  std::vector<ClusterData> cs(6);
  std::vector<std::vector<uint32_t>> ids(6);
  for (uint32_t k = 0; k < 6; ++k) {
    ASSERT_TRUE(d->Load(k, kAllSections, dec, cs[k]).ok());
    ids[k] = cs[k].node_ids;
  }
  std::set<std::pair<uint32_t, uint32_t>> edges;  // directed, original ids
  std::vector<int> seen(300, 0);
  uint64_t train = 0;
  for (uint32_t k = 0; k < 6; ++k) {
    const ClusterData& c = cs[k];
    for (uint32_t i = 0; i < c.num_nodes; ++i) {
      const uint32_t v = c.node_ids[i];
      ++seen[v];
      for (uint32_t f = 0; f < 4; ++f) EXPECT_EQ(c.features[i * 4 + f], spec.features[v][f]);
      EXPECT_EQ(c.labels[i], spec.labels[v]);
      train += c.split[i] == kSplitTrain;
      for (uint32_t e = c.adj_offsets[i]; e < c.adj_offsets[i + 1]; ++e)
        edges.emplace(v, c.node_ids[c.adj_neighbors[e]]);
    }
    for (const InterGroup& g : c.inter_groups)
      for (uint64_t e = g.begin; e < g.begin + g.count; ++e)
        edges.emplace(c.node_ids[c.inter_src[e]], ids[g.cluster][c.inter_dst[e]]);
  }
  for (int s : seen) EXPECT_EQ(s, 1);
  EXPECT_EQ(train, spec.train.size());
  std::set<std::pair<uint32_t, uint32_t>> want;
  for (auto [a, b] : testutil::NaiveEdgeSet(spec)) {
    want.emplace(a, b);
    want.emplace(b, a);
  }
  EXPECT_EQ(edges, want);
  std::ostringstream report;
  EXPECT_TRUE(Dump(DumpOptions{out, std::nullopt, true, false, 20, ""}, report).ok()) << report.str();
}

TEST(ShardWriter, RefusesExistingOutputUnlessOverwriteAndLeavesNoTemporaries) {
  TempDir tmp;
  const auto spec = testutil::TinyRawDataset();
  const std::string out = tmp.Join("shards");
  const auto built = BuildShards(spec, tmp.path(), out, 2);
  ShardWriteOptions wo;
  wo.out_dir = out;
  Result<ShardWriteReport> again = WriteShardDirectory(built.raw, built.graph.view(), built.partition, wo);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already exists"), std::string::npos);
  wo.overwrite = true;
  ASSERT_TRUE(WriteShardDirectory(built.raw, built.graph.view(), built.partition, wo).ok());
  EXPECT_TRUE(ShardDirectory::Open(out).ok());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"raw-data", "shards"}));
}

// The streamed path as cgcn-preprocess runs it: read into the writer's scratch directory, CSR
// built on disk there from the scratch edge file (within `csr_budget`, 0 = one bucket) and
// mapped, METIS, write from the mapped CSR.
Result<ShardWriteReport> StreamedBuild(const std::string& raw_dir, const std::string& out, int32_t parts,
                                       uint64_t budget, ShardMemoryPlan* plan = nullptr, uint64_t csr_budget = 0,
                                       CsrBuildStats* csr_stats = nullptr) {
  ShardWriteOptions wo;
  wo.out_dir = out;
  wo.mem_budget = budget;
  CGCN_ASSIGN_OR_RETURN(ShardDirectoryWriter writer, ShardDirectoryWriter::Create(wo));
  CGCN_ASSIGN_OR_RETURN(RawInput raw, ReadRawInput(RawReadOptions{raw_dir, ""}, writer.scratch_dir()));
  ExternalCsrOptions co;
  co.scratch_dir = writer.scratch_dir();
  co.mem_budget = csr_budget;
  co.io_buffer_bytes = 256;
  CGCN_ASSIGN_OR_RETURN(const MappedCsr g, BuildExternalCsr(
                                               raw.num_nodes,
                                               [&](const EdgeChunkSink& sink) {
                                                 return raw.ForEachEdgeChunk(sink, 97);  // many small chunks
                                               },
                                               co, csr_stats));
  CGCN_ASSIGN_OR_RETURN(Partition p, PartitionGraph(g.view(), PartitionOptions{parts, 0}));
  Result<ShardWriteReport> r = writer.Write(raw, g.view(), p);
  if (r.ok() && plan != nullptr) *plan = r->memory;
  return r;
}

std::map<std::string, std::string> FilesIn(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    files[e.path().filename().string()] = testutil::ReadFile(e.path().string());
  return files;
}

std::vector<std::string> NamesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ShardWriterBudget, SameBytesWhateverTheBudgetAndTheSameAsTheInMemoryPath) {
  TempDir tmp;
  testutil::WriteRawDataset(tmp.Join("raw-data"), testutil::RandomRawDataset(2000, 9000, 16, 5, 21),
                            testutil::Compression::kGzip);
  ShardMemoryPlan unlimited, tight;
  ASSERT_TRUE(StreamedBuild(tmp.Join("raw-data"), tmp.Join("a"), 12, 0, &unlimited).ok());
  EXPECT_EQ(unlimited.clusters_in_flight, static_cast<uint32_t>(std::max(1, tbb::this_task_arena::max_concurrency())));
  // The smallest budget that works: one cluster at a time.
  const uint64_t least = unlimited.graph_bytes + unlimited.largest_cluster;
  Result<ShardWriteReport> r = StreamedBuild(tmp.Join("raw-data"), tmp.Join("b"), 12, least, &tight);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(tight.clusters_in_flight, 1u);
  EXPECT_EQ(tight.graph_bytes, unlimited.graph_bytes);
  // The mapped CSR is page cache: not in the graph-sized arrays, reported apart.
  EXPECT_EQ(unlimited.csr_heap_bytes, 0u);
  EXPECT_GT(unlimited.csr_mapped_bytes, 8u * 2001);
  const auto a = FilesIn(tmp.Join("a")), b = FilesIn(tmp.Join("b"));
  ASSERT_EQ(a.size(), 13u);  // 12 shards + MANIFEST: no scratch files published
  EXPECT_TRUE(a == b) << "shard bytes depend on --mem-budget";
  // A CSR built in many buckets gives the same shards.
  CsrBuildStats buckets;
  ASSERT_TRUE(
      StreamedBuild(tmp.Join("raw-data"), tmp.Join("d"), 12, 0, nullptr, 8 * 2001 + 256 + 4 * 2000, &buckets).ok());
  EXPECT_GT(buckets.buckets, 5u);
  EXPECT_TRUE(FilesIn(tmp.Join("d")) == a) << "shard bytes depend on the CSR's buckets";
  // The in-memory convenience path writes the same bytes too.
  Result<RawGraph> raw = ReadRawGraph(RawReadOptions{tmp.Join("raw-data"), ""});
  ASSERT_TRUE(raw.ok());
  Result<CsrGraph> g = BuildSymmetricCsr(raw->num_nodes, raw->edge_src, raw->edge_dst);
  Result<Partition> p = PartitionGraph(g->view(), PartitionOptions{12, 0});
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("c");
  Result<ShardWriteReport> c = WriteShardDirectory(*raw, g->view(), *p, wo);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(FilesIn(tmp.Join("c")) == a);
  // A CSR on the heap counts in the graph-sized arrays.
  EXPECT_EQ(c->memory.csr_heap_bytes, g->bytes());
  EXPECT_EQ(c->memory.graph_bytes, unlimited.graph_bytes + g->bytes());
  EXPECT_EQ(c->memory.csr_mapped_bytes, 0u);
  // No temporaries next to the outputs.
  EXPECT_EQ(NamesIn(tmp.path()), (std::vector<std::string>{"a", "b", "c", "d", "raw-data"}));
}

TEST(ShardWriterBudget, TooSmallBudgetIsAClearErrorAndLeavesNothing) {
  TempDir tmp;
  testutil::WriteRawDataset(tmp.Join("raw-data"), testutil::RandomRawDataset(500, 2000, 8, 3, 4),
                            testutil::Compression::kPlain);
  ShardMemoryPlan plan;
  ASSERT_TRUE(StreamedBuild(tmp.Join("raw-data"), tmp.Join("ok"), 4, 0, &plan).ok());
  Result<ShardWriteReport> r =
      StreamedBuild(tmp.Join("raw-data"), tmp.Join("small"), 4, plan.graph_bytes + plan.largest_cluster - 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("--mem-budget"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is too small: the graph-sized arrays need"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CSR in memory 0 B"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the mapped CSR's"), std::string::npos) << msg;
  EXPECT_NE(msg.find("are page cache, not counted"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the largest cluster up to"), std::string::npos) << msg;
  // Neither the output nor its temporary (with the scratch files) is left behind.
  EXPECT_EQ(NamesIn(tmp.path()), (std::vector<std::string>{"ok", "raw-data"}));
}

TEST(ShardWriterBudget, ScratchFilesExistWhileWritingAndAreGoneAfterwards) {
  TempDir tmp;
  testutil::WriteRawDataset(tmp.Join("raw-data"), testutil::RandomRawDataset(300, 900, 4, 3, 8),
                            testutil::Compression::kPlain);
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("out");
  {
    Result<ShardDirectoryWriter> w = ShardDirectoryWriter::Create(wo);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    Result<RawInput> raw = ReadRawInput(RawReadOptions{tmp.Join("raw-data"), ""}, w->scratch_dir());
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    EXPECT_EQ(NamesIn(w->scratch_dir()), (std::vector<std::string>{"edges.u32", "features.f32", "labels.u32"}));
    EXPECT_EQ(testutil::FileSize(raw->features_path), uint64_t{300} * 4 * 4);
    EXPECT_EQ(w->temp_dir().rfind(tmp.Join("out.cgcn-tmp."), 0), 0u) << w->temp_dir();
    // Abandoned without Write (a later stage failed): everything goes.
  }
  EXPECT_EQ(NamesIn(tmp.path()), (std::vector<std::string>{"raw-data"}));
}

TEST(ShardWriter, FailureLeavesNothingBehind) {
  TempDir tmp;
  const auto spec = testutil::TinyRawDataset();
  const auto built = BuildShards(spec, tmp.path(), tmp.Join("ok"), 2);
  // The output's parent is a regular file: creating the temporary must fail cleanly.
  testutil::WriteFile(tmp.Join("blocker"), "x");
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("blocker/shards");
  Result<ShardWriteReport> r = WriteShardDirectory(built.raw, built.graph.view(), built.partition, wo);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_FALSE(fs::exists(tmp.Join("blocker/shards")));
}

TEST(ShardWriter, CorruptShardIsReportedByVerifyAndOpenChecksSizes) {
  TempDir tmp;
  const std::string out = tmp.Join("shards");
  BuildShards(testutil::RandomRawDataset(200, 800, 3, 2, 5), tmp.path(), out, 4);
  const std::string victim = out + "/" + ShardFileName(2);
  testutil::FlipByte(victim, testutil::FileSize(victim) - 3);
  std::ostringstream report;
  Status s = Dump(DumpOptions{out, std::nullopt, true, false, 20, ""}, report);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("shard-000002.cgs"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("section '"), std::string::npos) << s.message();

  testutil::TruncateFile(victim, 100);
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("the manifest records"), std::string::npos) << d.status().message();

  fs::remove(out + "/MANIFEST");
  d = ShardDirectory::Open(out);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("MANIFEST"), std::string::npos);
}

// Rewrites shard k of `dir` from `c` (valid checksums) and records it in the manifest `m`, as a
// buggy writer would: only the cross-shard checks can tell.
void RewriteShard(const std::string& dir, uint32_t k, const ClusterData& c, Manifest m) {
  Result<std::vector<std::byte>> bytes = EncodeShard(c, 3);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  const std::string path = dir + "/" + ShardFileName(k);
  ASSERT_TRUE(WriteWholeFile(path, *bytes).ok());
  Result<ShardHeader> h = ParseShardHeader(*bytes, path);
  ASSERT_TRUE(h.ok());
  m.shards[k].file_size = bytes->size();
  m.shards[k].header_checksum = h->header_checksum;
  ASSERT_TRUE(WriteWholeFile(dir + "/" + kManifestFileName, EncodeManifest(m)).ok());
}

// Builds a 5-shard directory (which must verify), lets `edit` change shard 3's contents and the
// manifest's counts, rewrites both, and sets *status to what cgcn-dump --verify then says.
using ShardEdit = std::function<bool(const ShardDirectory&, ClusterData&, Manifest&)>;
void VerifyAfterRewrite(const ShardEdit& edit, Status* status) {
  TempDir tmp;
  const std::string out = tmp.Join("shards");
  BuildShards(testutil::RandomRawDataset(300, 1500, 3, 2, 8), tmp.path(), out, 5);
  std::ostringstream report;
  ASSERT_TRUE(Dump(DumpOptions{out, std::nullopt, true, false, 20, ""}, report).ok()) << report.str();
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_TRUE(d.ok());
  ShardDecoder decoder;
  ClusterData c;
  ASSERT_TRUE(d->Load(3, kAllSections, decoder, c).ok());
  Manifest m = d->manifest();
  ASSERT_TRUE(edit(*d, c, m)) << "no place to make this edit in shard 3";
  ASSERT_NO_FATAL_FAILURE(RewriteShard(out, 3, c, m));
  *status = Dump(DumpOptions{out, std::nullopt, true, false, 20, ""}, report);
}

// The same, for edits that leave the manifest's counts alone: verification must fail with a
// message naming `file` and containing `what`.
void ExpectVerifyFails(const std::function<bool(const ShardDirectory&, ClusterData&)>& edit, const std::string& file,
                       const std::string& what) {
  Status s;
  ASSERT_NO_FATAL_FAILURE(
      VerifyAfterRewrite([&](const ShardDirectory& d, ClusterData& c, Manifest&) { return edit(d, c); }, &s));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find(file), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
}

TEST(ShardWriter, VerifyFindsAnInterClusterEdgeWithoutItsMirror) {
  // One inter-cluster edge of shard 3 moved to the next node of its target cluster: every shard
  // still decodes and is symmetric inside, the counts still match, but the mirror is wrong.
  uint32_t target = 0;
  Status s;
  ASSERT_NO_FATAL_FAILURE(VerifyAfterRewrite(
      [&](const ShardDirectory& d, ClusterData& c, Manifest&) {
        for (const InterGroup& g : c.inter_groups) {
          const uint64_t e = g.begin + g.count - 1;  // the group's last pair: nothing after it to collide with
          if (c.inter_dst[e] + 1 < d.manifest().shards[g.cluster].num_nodes) {
            c.inter_dst[e] += 1;
            target = g.cluster;
            return true;
          }
        }
        return false;
      },
      &s));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("section 'inter'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(ShardFileName(std::min(3u, target))), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(ShardFileName(std::max(3u, target))), std::string::npos) << s.message();
}

TEST(ShardWriter, VerifyFindsAnInterClusterGroupWithoutItsMirror) {
  // A whole group dropped, and its edges from the manifest's counts (which must stay consistent:
  // inter entries are twice the edge cut), leaves its mirror without a partner.
  InterGroup dropped;
  Status s;
  ASSERT_NO_FATAL_FAILURE(VerifyAfterRewrite(
      [&](const ShardDirectory&, ClusterData& c, Manifest& m) {
        auto even = std::find_if(c.inter_groups.begin(), c.inter_groups.end(),
                                 [](const InterGroup& g) { return g.count % 2 == 0; });
        if (even == c.inter_groups.end()) return false;
        dropped = *even;
        c.inter_groups.erase(even);
        c.inter_src.erase(c.inter_src.begin() + dropped.begin, c.inter_src.begin() + dropped.begin + dropped.count);
        c.inter_dst.erase(c.inter_dst.begin() + dropped.begin, c.inter_dst.begin() + dropped.begin + dropped.count);
        for (InterGroup& g : c.inter_groups)
          if (g.begin > dropped.begin) g.begin -= dropped.count;
        m.shards[3].inter_entries -= dropped.count;
        m.edge_cut -= dropped.count / 2;
        m.num_edges -= dropped.count / 2;
        return true;
      },
      &s));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("are not mirrored in"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(ShardFileName(std::max(3u, dropped.cluster))), std::string::npos) << s.message();
}

TEST(ShardWriter, VerifyFindsANodeInTwoShards) {
  // Shard 3 takes over a node of shard 1 (kept in ascending order): reported at shard 3, the later one.
  ExpectVerifyFails(
      [](const ShardDirectory& d, ClusterData& c) {
        ShardDecoder decoder;
        ClusterData other;
        if (!d.Load(1, kAllSections, decoder, other).ok()) return false;
        for (uint32_t v : other.node_ids)
          for (size_t i = 1; i + 1 < c.node_ids.size(); ++i)
            if (c.node_ids[i - 1] < v && v < c.node_ids[i + 1]) {
              c.node_ids[i] = v;
              return true;
            }
        return false;
      },
      "shard-000003.cgs: section 'nodes'", "also appears in an earlier shard");
}

TEST(ShardWriter, VerifyFindsAnAdjacencyEntryWithoutItsReverse) {
  // One neighbour of a row replaced by another node not yet in the row (order kept).
  ExpectVerifyFails(
      [](const ShardDirectory&, ClusterData& c) {
        for (uint32_t i = 0; i < c.num_nodes; ++i)
          for (uint32_t e = c.adj_offsets[i]; e < c.adj_offsets[i + 1]; ++e) {
            const uint32_t lo = e > c.adj_offsets[i] ? c.adj_neighbors[e - 1] + 1 : 0;
            const uint32_t hi = e + 1 < c.adj_offsets[i + 1] ? c.adj_neighbors[e + 1] : c.num_nodes;
            for (uint32_t j = lo; j < hi; ++j)
              if (j != i && j != c.adj_neighbors[e]) {
                c.adj_neighbors[e] = j;
                return true;
              }
          }
        return false;
      },
      "shard-000003.cgs: section 'adjacency'", "has no reverse entry");
}

TEST(ShardWriter, VerifyFindsSplitCountsThatDifferFromTheManifest) {
  ExpectVerifyFails(
      [](const ShardDirectory&, ClusterData& c) {
        for (uint8_t& s : c.split)
          if (s == kSplitTrain) {
            s = kSplitTest;
            return true;
          }
        return false;
      },
      "shards", "split sizes in the shards differ from the manifest");
}

TEST(ShardWriter, DumpShowsOneShardAndJson) {
  TempDir tmp;
  const std::string out = tmp.Join("shards");
  BuildShards(testutil::TinyRawDataset(), tmp.path(), out, 2);
  std::ostringstream one, js;
  ASSERT_TRUE(Dump(DumpOptions{out, 1u, false, false, 20, ""}, one).ok());
  EXPECT_NE(one.str().find("section"), std::string::npos);
  EXPECT_NE(one.str().find("features"), std::string::npos);
  ASSERT_TRUE(Dump(DumpOptions{out, std::nullopt, true, true, 20, ""}, js).ok());
  EXPECT_NE(js.str().find("\"verified\": true"), std::string::npos) << js.str();
  std::ostringstream bad;
  EXPECT_EQ(Dump(DumpOptions{out, 9u, false, false, 20, ""}, bad).code(), StatusCode::kInvalidArgument);
}

// cgcn-dump --json reports the edge cut and the balance, recounted here from the shards
// themselves: half the inter-cluster entries, and the largest cluster against N / P.
TEST(ShardWriter, DumpJsonReportsCutAndBalance) {
  TempDir tmp;
  const std::string out = tmp.Join("shards");
  BuildShards(testutil::TinyRawDataset(), tmp.path(), out, 3);
  std::ostringstream js;
  ASSERT_TRUE(Dump(DumpOptions{out, std::nullopt, false, true, 20, ""}, js).ok());
  const nlohmann::json j = nlohmann::json::parse(js.str());
  Result<ShardDirectory> d = ShardDirectory::Open(out);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ShardDecoder decoder;
  ClusterData c;
  uint64_t inter = 0, largest = 0, nodes = 0;
  for (uint32_t k = 0; k < d->num_clusters(); ++k) {
    ASSERT_TRUE(d->Load(k, kStructureSections, decoder, c).ok());
    inter += c.inter_src.size();
    largest = std::max<uint64_t>(largest, c.num_nodes);
    nodes += c.num_nodes;
  }
  ASSERT_GT(inter, 0u);
  EXPECT_EQ(j["manifest"]["edge_cut"].get<uint64_t>(), inter / 2);
  EXPECT_EQ(j["manifest"]["largest_cluster"].get<uint64_t>(), largest);
  EXPECT_DOUBLE_EQ(j["manifest"]["balance"].get<double>(),
                   static_cast<double>(largest) * 3 / static_cast<double>(nodes));
  EXPECT_DOUBLE_EQ(j["manifest"]["cut_fraction"].get<double>(),
                   static_cast<double>(inter / 2) / j["manifest"]["num_edges"].get<double>());
}

}  // namespace
}  // namespace cgcn

namespace cgcn {
namespace {

// A pid that belonged to a process which has exited (reaped), so it is not alive.
long DeadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

// Issue 10 reversed what this test used to assert: names like "<out>.tmp-<dead pid>" and
// "<out>.old-<dead pid>" carry no proof that cgcn made them (a user's "shards.old-20240101"
// matched too), so the next run leaves them alone instead of deleting them or renaming them
// into place. Only marked temporaries are cleaned (tests/safety_test.cc).
TEST(ShardWriter, NextRunLeavesUnprovenLookalikeSiblingsAlone) {
  TempDir tmp;
  const std::string out = tmp.Join("shards");
  const auto built = BuildShards(testutil::TinyRawDataset(), tmp.path(), out, 2);
  const long dead = DeadPid();
  fs::create_directories(out + ".tmp-" + std::to_string(dead) + "/junk");
  fs::copy(out, out + ".old-" + std::to_string(dead));
  ShardWriteOptions wo;
  wo.out_dir = out;
  Result<ShardWriteReport> r = WriteShardDirectory(built.raw, built.graph.view(), built.partition, wo);
  ASSERT_FALSE(r.ok());  // exists, no --overwrite
  EXPECT_NE(r.status().message().find("already exists"), std::string::npos);
  EXPECT_TRUE(ShardDirectory::Open(out).ok());
  wo.overwrite = true;
  ASSERT_TRUE(WriteShardDirectory(built.raw, built.graph.view(), built.partition, wo).ok());
  EXPECT_TRUE(ShardDirectory::Open(out).ok());
  EXPECT_TRUE(fs::exists(out + ".tmp-" + std::to_string(dead) + "/junk"));
  EXPECT_TRUE(ShardDirectory::Open(out + ".old-" + std::to_string(dead)).ok());
}

}  // namespace
}  // namespace cgcn
