#include "cgcn/partition.h"

#include <gtest/gtest.h>

#include <random>

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
  Result<Partition> p = PartitionGraph(g, PartitionOptions{7, 3});
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
  for (int32_t v = 0; v < g.num_nodes; ++v)
    for (int32_t e = g.offsets[v]; e < g.offsets[v + 1]; ++e) cut += p->part[v] < p->part[g.neighbors[e]];
  EXPECT_EQ(p->edge_cut, cut);
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
  EXPECT_EQ(PartitionGraph(g, {5, 11})->part, PartitionGraph(g, {5, 11})->part);
}

TEST(Partition, SinglePartAndBadCounts) {
  const CsrGraph g = RandomGraph(20, 30, 3);
  Result<Partition> one = PartitionGraph(g, {1, 0});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->edge_cut, 0u);
  for (int32_t c : one->part) EXPECT_EQ(c, 0);
  Result<Partition> many = PartitionGraph(g, {21, 0});
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("exceeds the number of nodes"), std::string::npos);
}

TEST(Partition, HandlesGraphWithoutEdges) {
  const CsrGraph g = std::move(BuildSymmetricCsr(10, {}, {})).value();
  Result<Partition> p = PartitionGraph(g, {3, 0});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->edge_cut, 0u);
  EXPECT_EQ(BuildClusterLayout(*p).offsets.back(), 10u);
}

}  // namespace
}  // namespace cgcn
