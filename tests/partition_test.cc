#include "cgcn/partition.h"

#include <gtest/gtest.h>

#include <random>

#include "cgcn/graph.h"

namespace cgcn {
namespace {

CsrGraph RandomGraph(uint32_t n, int edges, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> s, d;
  for (int e = 0; e < edges; ++e) {
    const auto a = static_cast<uint32_t>(rng() % n);
    s.push_back(a);
    d.push_back(
        static_cast<uint32_t>((rng() % 4 == 0) ? rng() % n : (a + 1 + rng() % 5) % n));  // mostly local: clusters exist
  }
  return std::move(BuildSymmetricCsr(n, s, d)).value();
}

TEST(Partition, EveryNodeInExactlyOnePartAndCutIsExact) {
  const CsrGraph g = RandomGraph(1000, 4000, 1);
  Result<Partition> p = PartitionGraph(g.view(), PartitionOptions{7, 3});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->part.size(), 1000u);
  std::vector<int> size(7, 0);
  for (int32_t c : p->part) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, 7);
    ++size[static_cast<size_t>(c)];
  }
  for (int s : size) EXPECT_GT(s, 50);  // METIS balances parts
  uint64_t cut = 0;
  for (uint32_t v = 0; v < g.num_nodes; ++v)
    for (uint64_t e = g.offsets[v]; e < g.offsets[v + 1]; ++e) cut += p->part[v] < p->part[g.neighbors[e]];
  EXPECT_EQ(p->edge_cut, cut);
  EXPECT_EQ(EdgeCut(g.view(), p->part), cut);
  const double balance = PartBalance(p->part, 7);
  EXPECT_GE(balance, 1.0);
  EXPECT_LE(balance, 1.1);                       // METIS's default ufactor 30 allows 1.03
  EXPECT_LT(cut, g.num_undirected_edges() / 2);  // far better than random assignment (6/7 cut)

  const ClusterLayout layout = BuildClusterLayout(*p);
  ASSERT_EQ(layout.offsets.back(), 1000u);
  std::vector<int> seen(1000, 0);
  for (uint32_t c = 0; c < 7; ++c)
    for (uint32_t k = layout.offsets[c]; k < layout.offsets[c + 1]; ++k) {
      const uint32_t v = layout.nodes[k];
      ++seen[v];
      EXPECT_EQ(static_cast<uint32_t>(p->part[v]), c);
      EXPECT_EQ(layout.local_index[v], k - layout.offsets[c]);
      if (k > layout.offsets[c]) {
        EXPECT_LT(layout.nodes[k - 1], v);
      }
    }
  for (int s : seen) EXPECT_EQ(s, 1);
}

TEST(Partition, SeededAndDeterministic) {
  const CsrGraph g = RandomGraph(500, 2000, 2);
  EXPECT_EQ(PartitionGraph(g.view(), {5, 11})->part, PartitionGraph(g.view(), {5, 11})->part);
}

TEST(Partition, SinglePartAndBadCounts) {
  const CsrGraph g = RandomGraph(20, 30, 3);
  Result<Partition> one = PartitionGraph(g.view(), {1, 0});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->edge_cut, 0u);
  for (int32_t c : one->part) EXPECT_EQ(c, 0);
  Result<Partition> many = PartitionGraph(g.view(), {21, 0});
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("exceeds the number of nodes"), std::string::npos);
}

TEST(Partition, HandlesGraphWithoutEdges) {
  const CsrGraph g = std::move(BuildSymmetricCsr(10, {}, {})).value();
  Result<Partition> p = PartitionGraph(g.view(), {3, 0});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->edge_cut, 0u);
  EXPECT_EQ(BuildClusterLayout(*p).offsets.back(), 10u);
}

// Hand-drawn: the path 0-1-2-3-4 plus the chord 0-2, parts {0, 0, 1, 1, 0}: the cut edges are
// 1-2, 0-2 and 3-4.
TEST(Partition, EdgeCutAndBalanceOnAHandDrawnGraph) {
  const CsrGraph g =
      std::move(BuildSymmetricCsr(5, std::vector<uint32_t>{0, 1, 2, 3, 0}, std::vector<uint32_t>{1, 2, 3, 4, 2}))
          .value();
  const std::vector<int32_t> part = {0, 0, 1, 1, 0};
  EXPECT_EQ(EdgeCut(g.view(), part), 3u);
  EXPECT_EQ(EdgeCut(g.view(), std::vector<int32_t>(5, 0)), 0u);
  // Sizes 3 and 2 against a mean of 2.5.
  EXPECT_DOUBLE_EQ(PartBalance(part, 2), 3.0 / 2.5);
  // Three parts, one empty: sizes 3, 2, 0 against a mean of 5/3.
  EXPECT_DOUBLE_EQ(PartBalance(part, 3), 3.0 / (5.0 / 3.0));
  // int32 xadj [N + 1], adjncy [entries] and part [N].
  EXPECT_EQ(MetisArrayBytes(5, 10), 4u * 6 + 4 * 10 + 4 * 5);
  EXPECT_EQ(MetisArrayBytes(uint64_t{3} << 30, uint64_t{5} << 30),
            4 * ((uint64_t{3} << 30) + 1) + 4 * (uint64_t{5} << 30) + 4 * (uint64_t{3} << 30));
}

// More adjacency entries than METIS's int32 can index is refused before any array is touched:
// the view's rows are never read (they do not exist here).
TEST(Partition, RefusesMoreEntriesThanMetisIdxCanIndex) {
  const std::vector<uint64_t> offsets = {0, uint64_t{1} << 30, uint64_t{1} << 31};
  const CsrView big{2, offsets.data(), nullptr, 0};
  Result<Partition> p = PartitionGraph(big, {2, 0});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(
      p.status().message().find("2147483648 adjacency entries, more than METIS's 32-bit idx_t can index (2147483647)"),
      std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find("IDXTYPEWIDTH 32"), std::string::npos);
  // One part needs no METIS: the same graph is fine.
  EXPECT_TRUE(PartitionGraph(big, {1, 0}).ok());
}

}  // namespace
}  // namespace cgcn
