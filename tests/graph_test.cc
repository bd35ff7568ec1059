#include "cgcn/graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <span>

namespace cgcn {
namespace {

// Naive reference: the set of unordered pairs, then both directions.
std::vector<std::set<int32_t>> NaiveAdjacency(uint32_t n, const std::vector<uint32_t>& s,
                                              const std::vector<uint32_t>& d) {
  std::vector<std::set<int32_t>> adj(n);
  for (size_t e = 0; e < s.size(); ++e) {
    if (s[e] == d[e]) continue;
    adj[s[e]].insert(static_cast<int32_t>(d[e]));
    adj[d[e]].insert(static_cast<int32_t>(s[e]));
  }
  return adj;
}

TEST(Graph, StreamedBuildInSmallChunksEqualsTheInMemoryOne) {
  std::mt19937 rng(7);
  const uint32_t n = 500;
  std::vector<uint32_t> s, d;
  for (int e = 0; e < 4000; ++e) {
    s.push_back(static_cast<uint32_t>(rng() % n));
    d.push_back(e % 17 == 0 ? s.back() : static_cast<uint32_t>(rng() % n));  // some self loops, many duplicates below
  }
  for (int e = 0; e < 500; ++e) {
    s.push_back(d[static_cast<size_t>(e)]);
    d.push_back(s[static_cast<size_t>(e)]);
  }
  CsrBuildStats a_stats, b_stats;
  Result<CsrGraph> a = BuildSymmetricCsr(n, s, d, &a_stats);
  int scans = 0;
  Result<CsrGraph> b = BuildSymmetricCsrFromScan(
      n,
      [&](const EdgeChunkSink& sink) {
        ++scans;
        for (size_t i = 0; i < s.size(); i += 13) {
          const size_t k = std::min<size_t>(13, s.size() - i);
          sink(std::span<const uint32_t>(s.data() + i, k), std::span<const uint32_t>(d.data() + i, k));
        }
        return Status::Ok();
      },
      &b_stats);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(scans, 2);
  EXPECT_EQ(a->offsets, b->offsets);
  EXPECT_EQ(a->neighbors, b->neighbors);
  EXPECT_GT(b_stats.duplicates_removed, 0u);
  EXPECT_EQ(a_stats.duplicates_removed, b_stats.duplicates_removed);
  EXPECT_EQ(a_stats.self_loops_removed, b_stats.self_loops_removed);
  const auto naive = NaiveAdjacency(n, s, d);
  for (uint32_t v = 0; v < n; ++v)
    EXPECT_EQ(std::vector<int32_t>(b->neighbors.begin() + b->offsets[v], b->neighbors.begin() + b->offsets[v + 1]),
              std::vector<int32_t>(naive[v].begin(), naive[v].end()));
  // A scan that feeds different edges the second time is caught, not trusted.
  int call = 0;
  Result<CsrGraph> bad = BuildSymmetricCsrFromScan(n, [&](const EdgeChunkSink& sink) {
    const std::vector<uint32_t> x = {0, 1}, y = {call++ == 0 ? 1u : 2u, 3};
    sink(x, y);
    return Status::Ok();
  });
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal);
}

TEST(Graph, SymmetrizesAndDeduplicates) {
  //   0 - 1 (twice, once reversed), 1 - 1 (self loop), 2 - 3, node 4 isolated
  const std::vector<uint32_t> src = {0, 1, 1, 2};
  const std::vector<uint32_t> dst = {1, 0, 1, 3};
  CsrBuildStats st;
  Result<CsrGraph> g = BuildSymmetricCsr(5, src, dst, &st);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->offsets, (std::vector<int32_t>{0, 1, 2, 3, 4, 4}));
  EXPECT_EQ(g->neighbors, (std::vector<int32_t>{1, 0, 3, 2}));
  EXPECT_EQ(g->num_undirected_edges(), 2u);
  EXPECT_EQ(st.self_loops_removed, 1u);
  EXPECT_EQ(st.duplicates_removed, 1u);
}

TEST(Graph, MatchesNaiveReferenceOnRandomGraph) {
  std::mt19937 rng(7);
  const uint32_t n = 400;
  std::vector<uint32_t> s, d;
  for (int e = 0; e < 3000; ++e) {
    s.push_back(static_cast<uint32_t>(rng() % n));
    d.push_back(static_cast<uint32_t>(rng() % n));
  }
  Result<CsrGraph> g = BuildSymmetricCsr(n, s, d);
  ASSERT_TRUE(g.ok());
  const auto ref = NaiveAdjacency(n, s, d);
  for (uint32_t v = 0; v < n; ++v) {
    std::vector<int32_t> row(g->neighbors.begin() + g->offsets[v], g->neighbors.begin() + g->offsets[v + 1]);
    EXPECT_EQ(row, std::vector<int32_t>(ref[v].begin(), ref[v].end())) << "row " << v;
  }
}

TEST(Graph, RejectsNodeCountBeyondMetisIdx) {
  Result<CsrGraph> g = BuildSymmetricCsr(0x7fffffffu, {}, {});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(g.status().message().find("idx_t"), std::string::npos);
}

}  // namespace
}  // namespace cgcn
