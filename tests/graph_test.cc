#include "cgcn/graph.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <span>

#include "testutil/testutil.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {

using testutil::TempDir;

// Naive reference: the set of unordered pairs, then both directions.
std::vector<std::set<uint32_t>> NaiveAdjacency(uint32_t n, const std::vector<uint32_t>& s,
                                               const std::vector<uint32_t>& d) {
  std::vector<std::set<uint32_t>> adj(n);
  for (size_t e = 0; e < s.size(); ++e) {
    if (s[e] == d[e]) continue;
    adj[s[e]].insert(d[e]);
    adj[d[e]].insert(s[e]);
  }
  return adj;
}

void ExpectEqualsNaive(const CsrView& g, const std::vector<std::set<uint32_t>>& naive) {
  ASSERT_EQ(g.num_nodes, naive.size());
  ASSERT_EQ(g.offsets[0], 0u);
  uint64_t entries = 0;
  for (uint32_t v = 0; v < g.num_nodes; ++v) {
    const std::span<const uint32_t> row = g.row(v);
    EXPECT_EQ(std::vector<uint32_t>(row.begin(), row.end()), std::vector<uint32_t>(naive[v].begin(), naive[v].end()))
        << "row " << v;
    entries += naive[v].size();
  }
  EXPECT_EQ(g.num_entries(), entries);
}

// Random edges with duplicates (some reversed), self loops, and isolated nodes (the last tenth).
struct Edges {
  std::vector<uint32_t> s, d;
};
Edges RandomEdges(uint32_t n, size_t m, uint32_t seed) {
  std::mt19937 rng(seed);
  const uint32_t active = n - n / 10;
  Edges e;
  for (size_t i = 0; i < m; ++i) {
    const auto a = static_cast<uint32_t>(rng() % active);
    const auto b = i % 17 == 0 ? a : static_cast<uint32_t>(rng() % active);
    e.s.push_back(a);
    e.d.push_back(b);
    if (i % 11 == 0) {  // a duplicate, reversed
      e.s.push_back(b);
      e.d.push_back(a);
    }
  }
  // A hub, so that one row is much longer than the others.
  for (uint32_t v = 1; v < active; v += 3) {
    e.s.push_back(0);
    e.d.push_back(v);
  }
  return e;
}

// Per-node entries before deduplication (what PlanCsrBuild is given).
std::vector<uint64_t> Degrees(uint32_t n, const Edges& e) {
  std::vector<uint64_t> deg(n, 0);
  for (size_t i = 0; i < e.s.size(); ++i)
    if (e.s[i] != e.d[i]) ++deg[e.s[i]], ++deg[e.d[i]];
  return deg;
}

// Feeds the edges in chunks of `chunk`, counting the calls.
EdgeScan ChunkedScan(const Edges& e, size_t chunk, int* calls = nullptr) {
  return [&e, chunk, calls](const EdgeChunkSink& sink) {
    if (calls) ++*calls;
    for (size_t i = 0; i < e.s.size(); i += chunk) {
      const size_t k = std::min(chunk, e.s.size() - i);
      sink(std::span<const uint32_t>(e.s.data() + i, k), std::span<const uint32_t>(e.d.data() + i, k));
    }
    return Status::Ok();
  };
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& f : fs::directory_iterator(dir)) names.push_back(f.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}
const std::vector<std::string> kCsrFiles = {kCsrNeighborsFile, kCsrOffsetsFile};

ExternalCsrOptions Opts(const std::string& dir, uint64_t budget = 0, uint64_t io = 0) {
  ExternalCsrOptions o;
  o.scratch_dir = dir;
  o.mem_budget = budget;
  o.io_buffer_bytes = io;
  return o;
}

TEST(Graph, SymmetrizesAndDeduplicates) {
  //   0 - 1 (twice, once reversed), 1 - 1 (self loop), 2 - 3, node 4 isolated
  const std::vector<uint32_t> src = {0, 1, 1, 2};
  const std::vector<uint32_t> dst = {1, 0, 1, 3};
  CsrBuildStats st;
  Result<CsrGraph> g = BuildSymmetricCsr(5, src, dst, &st);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->offsets, (std::vector<uint64_t>{0, 1, 2, 3, 4, 4}));
  EXPECT_EQ(g->neighbors, (std::vector<uint32_t>{1, 0, 3, 2}));
  EXPECT_EQ(g->num_undirected_edges(), 2u);
  EXPECT_EQ(g->view().heap_bytes, 8u * 6 + 4u * 4);
  EXPECT_EQ(st.input_edges, 4u);
  EXPECT_EQ(st.self_loops_removed, 1u);
  EXPECT_EQ(st.duplicates_removed, 1u);
  // The same on disk.
  TempDir tmp;
  CsrBuildStats ext;
  const Edges e{src, dst};
  Result<MappedCsr> m = BuildExternalCsr(5, ChunkedScan(e, 3), Opts(tmp.path()), &ext);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const CsrView v = m->view();
  EXPECT_EQ(std::vector<uint64_t>(v.offsets, v.offsets + 6), g->offsets);
  EXPECT_EQ(std::vector<uint32_t>(v.neighbors, v.neighbors + 4), g->neighbors);
  EXPECT_EQ(v.heap_bytes, 0u);
  EXPECT_EQ(ext.self_loops_removed, 1u);
  EXPECT_EQ(ext.duplicates_removed, 1u);
  EXPECT_EQ(ext.csr_file_bytes, 8u * 6 + 4u * 4);
  EXPECT_EQ(m->file_bytes(), ext.csr_file_bytes);
}

TEST(Graph, InMemoryMatchesNaiveReference) {
  const Edges e = RandomEdges(400, 3000, 7);
  Result<CsrGraph> g = BuildSymmetricCsr(400, e.s, e.d);
  ASSERT_TRUE(g.ok());
  ExpectEqualsNaive(g->view(), NaiveAdjacency(400, e.s, e.d));
}

// The on-disk CSR equals the naive reference and the in-memory build, byte for byte, with
// one bucket (no budget, or one that just holds it), two buckets, and many buckets with
// buffers of one entry; the bucket files exist during the build and are gone after it.
TEST(ExternalCsr, EqualsTheNaiveReferenceForOneTwoAndManyBuckets) {
  const uint32_t n = 3000;
  const Edges e = RandomEdges(n, 20000, 11);
  const auto naive = NaiveAdjacency(n, e.s, e.d);
  CsrBuildStats mem_stats;
  Result<CsrGraph> mem = BuildSymmetricCsr(n, e.s, e.d, &mem_stats);
  ASSERT_TRUE(mem.ok());
  EXPECT_GT(mem_stats.duplicates_removed, 1000u);
  EXPECT_GT(mem_stats.self_loops_removed, 1000u);
  const std::vector<uint64_t> deg = Degrees(n, e);
  uint64_t entries = 0, max_row = 0;
  for (uint64_t d : deg) entries += d, max_row = std::max(max_row, d);
  ASSERT_GT(max_row, 900u);  // the hub
  const uint64_t counts = 8 * (uint64_t{n} + 1);

  struct Case {
    const char* name;
    uint64_t budget, io;
    uint32_t buckets_min, buckets_max;
  };
  const uint64_t io = 4096;
  const std::vector<Case> cases = {
      {"unlimited", 0, 0, 1, 1},
      {"exactly one bucket", counts + 4 * entries, 0, 1, 1},
      {"two buckets", counts + io + 4 * (entries / 2 + max_row + 1), io, 2, 2},
      {"many buckets, one-entry buffers", counts + 64 + 4 * max_row, 64, 20, kMaxCsrBuckets},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    int calls = 0;
    size_t bucket_files_seen = 0;
    const EdgeScan inner = ChunkedScan(e, 257, &calls);
    const EdgeScan scan = [&](const EdgeChunkSink& sink) {
      if (calls == 1)  // the second pass: the bucket files are there, empty, to be filled
        for (const std::string& name : Names(tmp.path())) bucket_files_seen += name.rfind("csr-bucket-", 0) == 0;
      return inner(sink);
    };
    const ExternalCsrOptions o = Opts(tmp.path(), c.budget, c.io);
    CsrBuildStats st;
    Result<MappedCsr> m = BuildExternalCsr(n, scan, o, &st);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(calls, 2);
    EXPECT_GE(st.buckets, c.buckets_min);
    EXPECT_LE(st.buckets, c.buckets_max);
    EXPECT_EQ(bucket_files_seen, st.buckets == 1 ? 0u : st.buckets);
    EXPECT_EQ(st.bucket_file_bytes, st.buckets == 1 ? 0u : 8 * entries);
    if (c.budget != 0) {
      EXPECT_LE(st.planned_peak_bytes, c.budget);
    }
    EXPECT_EQ(st.input_edges, mem_stats.input_edges);
    EXPECT_EQ(st.self_loops_removed, mem_stats.self_loops_removed);
    EXPECT_EQ(st.duplicates_removed, mem_stats.duplicates_removed);
    const CsrView v = m->view();
    ExpectEqualsNaive(v, naive);
    EXPECT_EQ(std::vector<uint64_t>(v.offsets, v.offsets + n + 1), mem->offsets);
    EXPECT_EQ(std::vector<uint32_t>(v.neighbors, v.neighbors + v.num_entries()), mem->neighbors);
    EXPECT_EQ(Names(tmp.path()), kCsrFiles);  // the bucket files are gone
    // The mapping outlives a move of its owner.
    const MappedCsr moved = std::move(*m);
    EXPECT_EQ(moved.view().neighbors, v.neighbors);
    EXPECT_EQ(moved.view().row(0).size(), naive[0].size());
  }
}

TEST(ExternalCsr, EdgelessAndNodelessGraphs) {
  TempDir tmp;
  const Edges loops{{0, 1, 1}, {0, 1, 1}};
  CsrBuildStats st;
  Result<MappedCsr> m = BuildExternalCsr(3, ChunkedScan(loops, 2), Opts(tmp.path(), 64), &st);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->view().num_entries(), 0u);
  EXPECT_EQ(m->view().degree(2), 0u);
  EXPECT_EQ(st.self_loops_removed, 3u);
  TempDir tmp2;
  Result<MappedCsr> none = BuildExternalCsr(0, ChunkedScan(Edges{}, 1), Opts(tmp2.path()));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->view().num_nodes, 0u);
  EXPECT_EQ(none->view().num_entries(), 0u);
}

TEST(ExternalCsr, EndpointOutOfRangeIsAnErrorNamingTheEdge) {
  TempDir tmp;
  const Edges e{{0, 1, 2, 1}, {1, 2, 3, 7}};
  Result<MappedCsr> m = BuildExternalCsr(5, ChunkedScan(e, 2), Opts(tmp.path()));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(m.status().message(), "edge 3 (counting from 0): (1, 7) has an endpoint outside the 5 nodes (ids 0 to 4)");
  EXPECT_TRUE(Names(tmp.path()).empty());
  // The in-memory build checks the same way; arrays of different lengths are refused.
  EXPECT_EQ(BuildSymmetricCsr(5, e.s, e.d).status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(BuildSymmetricCsr(5, e.s, std::vector<uint32_t>{1}).status().code(), StatusCode::kInternal);
  // A scan whose chunk has src and dst of different lengths.
  Result<MappedCsr> uneven = BuildExternalCsr(
      5,
      [](const EdgeChunkSink& sink) {
        const std::vector<uint32_t> a = {0, 1}, b = {1};
        sink(a, b);
        return Status::Ok();
      },
      Opts(tmp.path()));
  EXPECT_EQ(uneven.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(Names(tmp.path()).empty());
}

// A scan that feeds other edges the second time is caught, with one bucket and with several,
// even when every degree stays the same (200-201, 202-203 becomes 200-202, 201-203), and leaves
// no file.
TEST(ExternalCsr, ScanThatChangesBetweenPassesIsAnError) {
  const uint32_t n = 210;
  for (const uint64_t budget : {uint64_t{0}, uint64_t{8 * 211 + 64 + 4 * 100}}) {
    SCOPED_TRACE(budget);
    for (int variant = 0; variant < 3; ++variant) {
      TempDir tmp;
      int call = 0;
      const EdgeScan scan = [&](const EdgeChunkSink& sink) {
        std::vector<uint32_t> s, d;
        for (uint32_t v = 0; v < 200; ++v) s.push_back(v), d.push_back(v + 1);  // a path, for several buckets
        s.insert(s.end(), {200, 202});
        d.insert(d.end(), {201, 203});
        if (call++ > 0) {
          if (variant == 0) d.back() = 204;                     // a degree changes
          if (variant == 1) d.end()[-2] = 202, s.back() = 201;  // same degrees, other pairs
          if (variant == 2) s.push_back(0), d.push_back(4);     // one more edge
        }
        sink(s, d);
        return Status::Ok();
      };
      CsrBuildStats st;
      Result<MappedCsr> m = BuildExternalCsr(n, scan, Opts(tmp.path(), budget, 64), &st);
      ASSERT_FALSE(m.ok()) << variant;
      EXPECT_EQ(m.status().code(), StatusCode::kInternal);
      EXPECT_NE(m.status().message().find("the edge scan changed between its two passes"), std::string::npos)
          << m.status().message();
      EXPECT_TRUE(Names(tmp.path()).empty());
    }
    // The same scan unchanged builds, with the number of buckets the budget implies.
    TempDir tmp;
    Edges e;
    for (uint32_t v = 0; v < 200; ++v) e.s.push_back(v), e.d.push_back(v + 1);
    CsrBuildStats st;
    ASSERT_TRUE(BuildExternalCsr(n, ChunkedScan(e, 7), Opts(tmp.path(), budget, 64), &st).ok());
    EXPECT_EQ(st.buckets > 1, budget != 0);
  }
}

// The smallest budget holds the counts, the largest row and an I/O buffer; one byte less is
// refused with the numbers.
TEST(ExternalCsr, BudgetTooSmallNamesTheNumbers) {
  const uint32_t n = 1000;
  Edges e;
  for (uint32_t v = 1; v <= 500; ++v) e.s.push_back(7), e.d.push_back(v);  // node 7: 500 entries (one a loop)
  for (uint32_t v = 600; v < 999; ++v) e.s.push_back(v), e.d.push_back(v + 1);
  const uint64_t need = 8 * 1001 + 4 * 499 + 64;
  TempDir tmp;
  Result<MappedCsr> small = BuildExternalCsr(n, ChunkedScan(e, 100), Opts(tmp.path(), need - 1, 64));
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = small.status().message();
  std::string head = std::to_string(need - 1);
  head.append(" bytes) is too small to build the CSR of 1000 nodes on disk");
  EXPECT_NE(msg.find(head), std::string::npos) << msg;
  EXPECT_NE(msg.find("the degree counts take 8008 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the largest row (node 7, 499 entries before deduplication) 1996 bytes"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("at least " + std::to_string(need) + " bytes"), std::string::npos) << msg;
  EXPECT_TRUE(Names(tmp.path()).empty());
  CsrBuildStats st;
  Result<MappedCsr> exact = BuildExternalCsr(n, ChunkedScan(e, 100), Opts(tmp.path(), need, 64), &st);
  ASSERT_TRUE(exact.ok()) << exact.status().ToString();
  EXPECT_GT(st.buckets, 1u);
  EXPECT_LE(st.planned_peak_bytes, need);
  ExpectEqualsNaive(exact->view(), NaiveAdjacency(n, e.s, e.d));
}

TEST(ExternalCsr, ReportsThrottledProgressPerPhase) {
  TempDir tmp;
  const Edges e = RandomEdges(2000, 50000, 3);
  std::map<std::string, std::pair<int, uint64_t>> seen;  // calls, last done
  std::map<std::string, uint64_t> totals;
  ExternalCsrOptions o = Opts(tmp.path(), 8 * 2001 + 4096 + 4 * 30000, 4096);
  o.num_edges_hint = e.s.size();
  o.progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    auto& [calls, last] = seen[std::string(phase)];
    EXPECT_GE(done, last) << phase;
    ++calls;
    last = done;
    totals[std::string(phase)] = total;
  };
  CsrBuildStats st;
  ASSERT_TRUE(BuildExternalCsr(2000, ChunkedScan(e, 1000), o, &st).ok());
  ASSERT_GT(st.buckets, 1u);
  for (const char* phase : {"count degrees", "distribute edges", "sort rows"}) {
    SCOPED_TRACE(phase);
    ASSERT_EQ(seen.count(phase), 1u);
    EXPECT_EQ(seen[phase].second, totals[phase]);  // the last call says done == total
    EXPECT_LE(seen[phase].first, 258);             // throttled: a 256th of the total at a time
  }
  EXPECT_EQ(totals["count degrees"], e.s.size());
  EXPECT_EQ(totals["sort rows"], 2 * (st.input_edges - st.self_loops_removed));
  EXPECT_EQ(seen.count("fill rows"), 0u);  // only with one bucket
}

// Writes a CSR's two files by hand (offsets as given, `neighbor_bytes` bytes of neighbours,
// sparse: nothing is written beyond the offsets).
void WriteCsrFiles(const std::string& dir, const std::vector<uint64_t>& offsets, uint64_t neighbor_bytes) {
  testutil::WriteFile(dir + "/" + kCsrOffsetsFile,
                      std::string(reinterpret_cast<const char*>(offsets.data()), 8 * offsets.size()));
  const std::string np = dir + "/" + kCsrNeighborsFile;
  const int fd = ::open(np.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(neighbor_bytes)), 0);
  ::close(fd);
}

TEST(MappedCsr, OpenRejectsTruncatedAndInconsistentFiles) {
  TempDir tmp;
  const std::string d = tmp.path();
  auto error = [&](const std::vector<uint64_t>& offsets, uint64_t neighbor_bytes, uint32_t n = 3) {
    WriteCsrFiles(d, offsets, neighbor_bytes);
    Result<MappedCsr> m = MappedCsr::Open(d, n);
    EXPECT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kCorruption);
    return m.status().message();
  };
  const std::string op = d + "/" + kCsrOffsetsFile, np = d + "/" + kCsrNeighborsFile;
  WriteCsrFiles(d, {0, 2, 2, 4}, 16);
  Result<MappedCsr> good = MappedCsr::Open(d, 3);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->view().degree(0), 2u);
  EXPECT_EQ(good->view().degree(1), 0u);
  EXPECT_EQ(good->view().num_entries(), 4u);
  EXPECT_EQ(error({0, 2, 2}, 8), op + ": 24 bytes, expected 32 (4 u64 offsets for 3 nodes)");
  EXPECT_EQ(error({0, 2, 2, 4}, 15), np + ": 15 bytes, not a whole number of u32 entries (a partial one at byte 12)");
  EXPECT_EQ(error({1, 2, 2, 4}, 16), op + ": byte 0: the first offset is 1, expected 0");
  EXPECT_EQ(error({0, 3, 2, 4}, 16), op + ": byte 16: offset 2 (of node 2) is less than the one before it, 3");
  EXPECT_EQ(error({0, 2, 2, 4}, 12), op + ": byte 24: the last offset is 4, but " + np + " holds 3 entries (12 bytes)");
  fs::remove(np);
  Result<MappedCsr> missing = MappedCsr::Open(d, 3);
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find(np), std::string::npos) << missing.status().message();
}

// Offsets past 2^32 through a mapping, without writing the data: the neighbours file is sparse
// (20 GB of holes). A 32-bit offset anywhere would break the degrees, the count or the check.
TEST(MappedCsr, OffsetsPast2To32) {
  TempDir tmp;
  const uint64_t a = 3'000'000'000, b = 5'000'000'000;  // both past 2^31, b past 2^32
  WriteCsrFiles(tmp.path(), {0, a, b, b + 2}, 4 * (b + 2));
  Result<MappedCsr> m = MappedCsr::Open(tmp.path(), 3);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const CsrView v = m->view();
  EXPECT_EQ(v.degree(0), a);
  EXPECT_EQ(v.degree(1), b - a);
  EXPECT_EQ(v.num_entries(), b + 2);
  EXPECT_EQ(v.num_undirected_edges(), b / 2 + 1);
  EXPECT_EQ(static_cast<uint64_t>(v.row(2).data() - v.neighbors), b);
  EXPECT_EQ(v.row(2).size(), 2u);
  EXPECT_EQ(v.row(2)[1], 0u);  // a hole reads as zeros
  EXPECT_EQ(m->file_bytes(), 32 + 4 * (b + 2));
  // One entry short: the message carries the full 64-bit numbers.
  WriteCsrFiles(tmp.path(), {0, a, b, b + 2}, 4 * (b + 1));
  Result<MappedCsr> short_file = MappedCsr::Open(tmp.path(), 3);
  ASSERT_FALSE(short_file.ok());
  EXPECT_NE(short_file.status().message().find("the last offset is 5000000002, but " + tmp.path() + "/" +
                                               kCsrNeighborsFile + " holds 5000000001 entries (20000000004 bytes)"),
            std::string::npos)
      << short_file.status().message();
}

// The bucket plan and the offsets in u64, with synthetic degrees whose sums pass 2^32 (nothing
// of that size is allocated): truncating any count, sum or offset to 32 bits changes the answer.
TEST(CsrArithmetic, BucketPlanPast2To32) {
  const std::vector<uint64_t> deg = {3'000'000'000, 3'000'000'000, 3'000'000'000, 7};
  Result<CsrBuildPlan> none = PlanCsrBuild(deg, 0);
  ASSERT_TRUE(none.ok());
  ASSERT_EQ(none->buckets.size(), 1u);
  EXPECT_EQ(none->entries, 9'000'000'007u);
  EXPECT_EQ(none->buckets[0].entries, 9'000'000'007u);
  EXPECT_EQ(none->bucket_bytes, 36'000'000'028u);
  EXPECT_EQ(none->peak_bytes(), 40 + 36'000'000'028u);

  // Room for 6.5e9 entries a bucket: [0, 2) with 6e9, then [2, 4) with 3e9 + 7.
  const uint64_t io = uint64_t{16} << 20;
  const uint64_t budget = 40 + io + 4 * 6'500'000'000;
  Result<CsrBuildPlan> p = PlanCsrBuild(deg, budget);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->buckets.size(), 2u);
  EXPECT_EQ(p->buckets[0].first_node, 0u);
  EXPECT_EQ(p->buckets[0].end_node, 2u);
  EXPECT_EQ(p->buckets[0].entries, 6'000'000'000u);
  EXPECT_EQ(p->buckets[1].first_node, 2u);
  EXPECT_EQ(p->buckets[1].end_node, 4u);
  EXPECT_EQ(p->buckets[1].entries, 3'000'000'007u);
  EXPECT_EQ(p->count_bytes, 40u);
  EXPECT_EQ(p->bucket_bytes, 24'000'000'000u);
  EXPECT_EQ(p->read_buffer_bytes, io);
  EXPECT_EQ(p->peak_bytes(), 40 + 24'000'000'000u + io);
  EXPECT_LE(p->peak_bytes(), budget);

  // Room for 3.5e9 entries: one row a bucket, the last with the small row.
  Result<CsrBuildPlan> q = PlanCsrBuild(deg, 40 + io + 4 * 3'500'000'000);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->buckets.size(), 3u);
  EXPECT_EQ(q->buckets[2].entries, 3'000'000'007u);

  // A row of 3e9 entries needs 12e9 bytes: a budget one byte short says so.
  Result<CsrBuildPlan> tight = PlanCsrBuild(deg, 40 + io + 12'000'000'000 - 1);
  ASSERT_FALSE(tight.ok());
  EXPECT_EQ(tight.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tight.status().message().find("the largest row (node 0, 3000000000 entries before deduplication) "
                                          "12000000000 bytes"),
            std::string::npos)
      << tight.status().message();
  EXPECT_TRUE(PlanCsrBuild(deg, 40 + io + 12'000'000'000).ok());

  // Too many buckets for the open files: 2000 rows of 1e9 entries (2e12 in all), one per bucket.
  const std::vector<uint64_t> many(2000, 1'000'000'000);
  Result<CsrBuildPlan> lots = PlanCsrBuild(many, 8 * 2001 + io + 4'000'000'000);
  ASSERT_FALSE(lots.ok());
  EXPECT_NE(lots.status().message().find("2000000000000 adjacency entries on disk: it needs 2000 buckets"),
            std::string::npos)
      << lots.status().message();
}

TEST(CsrArithmetic, LengthsToOffsetsPast2To32) {
  std::vector<uint64_t> len = {3'000'000'000, 3'000'000'000, 5, 0, 1};
  const uint64_t base = uint64_t{1} << 32;
  EXPECT_EQ(LengthsToOffsets(len, base), base + 6'000'000'006);
  EXPECT_EQ(len, (std::vector<uint64_t>{base, base + 3'000'000'000, base + 6'000'000'000, base + 6'000'000'005,
                                        base + 6'000'000'005}));
}

}  // namespace
}  // namespace cgcn
