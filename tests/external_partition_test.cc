#include "cgcn/external_partition.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cgcn/graph.h"
#include "cgcn/partition.h"

namespace cgcn {
namespace {

// The symmetric simple graph of an edge list, built independently of graph.cc with a std::set.
struct TestGraph {
  uint32_t n = 0;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> neighbors;
  std::vector<uint32_t> src, dst;  // the edge list as given
  CsrView view() const { return CsrView{n, offsets.data(), neighbors.data()}; }
};

TestGraph MakeGraph(uint32_t n, const std::vector<std::pair<uint32_t, uint32_t>>& edges) {
  std::set<std::pair<uint32_t, uint32_t>> adj;
  TestGraph g;
  g.n = n;
  for (auto [a, b] : edges) {
    g.src.push_back(a);
    g.dst.push_back(b);
    if (a == b) continue;
    adj.insert({a, b});
    adj.insert({b, a});
  }
  g.offsets.assign(uint64_t{n} + 1, 0);
  for (auto [a, b] : adj) {
    ++g.offsets[a + 1];
    g.neighbors.push_back(b);
  }
  for (uint32_t v = 0; v < n; ++v) g.offsets[v + 1] += g.offsets[v];
  return g;
}

// k cliques of `size` nodes; clique i's last node is joined to clique i+1's first (ring: also the
// last clique to the first). Returns the graph and the joining edges.
TestGraph Cliques(uint32_t k, uint32_t size, bool ring) {
  std::vector<std::pair<uint32_t, uint32_t>> e;
  for (uint32_t c = 0; c < k; ++c) {
    for (uint32_t i = 0; i < size; ++i)
      for (uint32_t j = i + 1; j < size; ++j) e.push_back({c * size + i, c * size + j});
    if (c + 1 < k || ring) e.push_back({c * size + size - 1, ((c + 1) % k) * size});
  }
  return MakeGraph(k * size, e);
}

// Planted communities with a fraction of random edges (ids shuffled, so a community is scattered).
TestGraph Communities(uint32_t n, uint32_t communities, uint32_t edges, double inside, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> perm(n);
  for (uint32_t v = 0; v < n; ++v) perm[v] = v;
  std::shuffle(perm.begin(), perm.end(), rng);
  const uint32_t per = n / communities;
  std::vector<std::pair<uint32_t, uint32_t>> e;
  std::uniform_real_distribution<double> coin(0, 1);
  for (uint32_t i = 0; i < edges; ++i) {
    const auto a = static_cast<uint32_t>(rng() % n);
    uint32_t b;
    if (coin(rng) < inside) {
      const uint32_t c = std::min(a / per, communities - 1);
      const uint32_t lo = c * per, hi = c + 1 == communities ? n : lo + per;
      b = lo + static_cast<uint32_t>(rng() % (hi - lo));
    } else {
      b = static_cast<uint32_t>(rng() % n);
    }
    e.push_back({perm[a], perm[b]});
  }
  return MakeGraph(n, e);
}

// Chung-Lu graph with power-law expected degrees (exponent ~2.1): a few nodes of very high degree.
TestGraph PowerLaw(uint32_t n, uint32_t edges, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> cum(n);
  double total = 0;
  for (uint32_t v = 0; v < n; ++v) {
    total += std::pow(static_cast<double>(v + 1), -1.0 / 1.1);
    cum[v] = total;
  }
  std::uniform_real_distribution<double> u(0, total);
  auto pick = [&] { return static_cast<uint32_t>(std::lower_bound(cum.begin(), cum.end(), u(rng)) - cum.begin()); };
  std::vector<std::pair<uint32_t, uint32_t>> e;
  for (uint32_t i = 0; i < edges; ++i) e.push_back({pick(), pick()});
  return MakeGraph(n, e);
}

uint64_t NaiveCut(const TestGraph& g, const std::vector<int32_t>& part) {
  uint64_t cut = 0;
  for (uint32_t v = 0; v < g.n; ++v)
    for (uint64_t e = g.offsets[v]; e < g.offsets[v + 1]; ++e) cut += part[v] < part[g.neighbors[e]] ? 1 : 0;
  return cut;
}

uint64_t Limit(uint32_t n, int32_t parts, double imbalance) {
  return static_cast<uint64_t>(std::ceil((1.0 + imbalance) * n / parts - 1e-9));
}

// Every node in exactly one part in [0, P), parts within the bound, the report consistent with a
// naive recount. Returns the part sizes.
std::vector<uint64_t> CheckPartition(const TestGraph& g, const ExternalPartitionOptions& o, const Partition& p,
                                     const ExternalPartitionReport& rep) {
  EXPECT_EQ(p.num_parts, o.num_parts);
  EXPECT_EQ(p.part.size(), g.n);
  std::vector<uint64_t> sizes(static_cast<size_t>(o.num_parts), 0);
  for (int32_t c : p.part) {
    EXPECT_GE(c, 0);
    EXPECT_LT(c, o.num_parts);
    if (c >= 0 && c < o.num_parts) ++sizes[static_cast<size_t>(c)];
  }
  const uint64_t largest = *std::max_element(sizes.begin(), sizes.end());
  const uint64_t limit =
      std::max<uint64_t>(Limit(g.n, o.num_parts, o.imbalance), (g.n + o.num_parts - 1) / o.num_parts);
  EXPECT_LE(largest, limit);
  EXPECT_EQ(rep.max_part_nodes, largest);
  EXPECT_EQ(rep.part_limit_nodes, limit);
  const uint64_t cut = NaiveCut(g, p.part);
  EXPECT_EQ(p.edge_cut, cut);
  EXPECT_EQ(rep.edge_cut, cut);
  return sizes;
}

Partition RunExternal(const TestGraph& g, const ExternalPartitionOptions& o, ExternalPartitionReport* rep = nullptr) {
  ExternalPartitionReport local;
  Result<Partition> p = PartitionExternal(g.view(), o, rep != nullptr ? rep : &local);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return Partition{};
  CheckPartition(g, o, *p, rep != nullptr ? *rep : local);
  return std::move(p).value();
}

ExternalPartitionOptions Options(int32_t parts, int64_t seed = 0) {
  ExternalPartitionOptions o;
  o.num_parts = parts;
  o.seed = seed;
  return o;
}

void ExpectCliquesSeparated(uint32_t k, uint32_t size, bool ring) {
  SCOPED_TRACE("k " + std::to_string(k) + " size " + std::to_string(size) + (ring ? " ring" : " chain"));
  const TestGraph g = Cliques(k, size, ring);
  ExternalPartitionReport rep;
  const Partition p = RunExternal(g, Options(static_cast<int32_t>(k), 5), &rep);
  ASSERT_EQ(p.part.size(), g.n);
  EXPECT_EQ(p.edge_cut, ring ? k : k - 1);  // exactly the joining edges
  std::set<int32_t> used;
  for (uint32_t c = 0; c < k; ++c) {
    const int32_t first = p.part[c * size];
    for (uint32_t i = 1; i < size; ++i) EXPECT_EQ(p.part[c * size + i], first) << "clique " << c << " node " << i;
    used.insert(first);
  }
  EXPECT_EQ(used.size(), k);  // one part per clique
}

TEST(ExternalPartition, CliquesJoinedBySingleEdgesAreTheParts) {
  ExpectCliquesSeparated(8, 20, true);
  ExpectCliquesSeparated(8, 20, false);
  ExpectCliquesSeparated(12, 64, true);  // clusters of several nodes form inside cliques
  ExpectCliquesSeparated(40, 33, false);
}

TEST(ExternalPartition, BalanceAndValidityOnRandomAndPowerLawGraphs) {
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const TestGraph random = MakeGraph(3000, [&] {
      std::mt19937 rng(seed);
      std::vector<std::pair<uint32_t, uint32_t>> e;
      for (int i = 0; i < 12000; ++i) e.push_back({rng() % 3000, rng() % 3000});
      return e;
    }());
    for (int32_t parts : {2, 7, 31, 300}) {
      ExternalPartitionOptions o = Options(parts, seed);
      RunExternal(random, o);
      o.imbalance = 0.0;  // perfectly balanced where N / P allows
      RunExternal(random, o);
    }
    const TestGraph power = PowerLaw(5000, 25000, seed);
    for (int32_t parts : {3, 50}) RunExternal(power, Options(parts, seed));
  }
}

TEST(ExternalPartition, RefinementLowersTheProjectedCutAndQualityIsCloseToMetis) {
  const TestGraph g = Communities(20000, 40, 120000, 0.8, 7);
  ExternalPartitionReport rep;
  const Partition p = RunExternal(g, Options(40, 1), &rep);
  EXPECT_LE(rep.edge_cut, rep.cut_projected);
  EXPECT_GE(rep.levels, 1);
  EXPECT_GT(rep.coarse_nodes, 40u);
  EXPECT_LT(rep.coarse_nodes, g.n);
  EXPECT_GE(rep.refine_rounds_run, 1);
  EXPECT_GT(rep.peak_bytes_planned, 4 * uint64_t{g.n});
  Result<CsrGraph> csr = BuildSymmetricCsr(g.n, g.src, g.dst);
  ASSERT_TRUE(csr.ok());
  Result<Partition> metis = PartitionGraph(csr->view(), PartitionOptions{40, 1});
  ASSERT_TRUE(metis.ok());
  EXPECT_LE(static_cast<double>(p.edge_cut), 1.15 * static_cast<double>(metis->edge_cut))
      << "external " << p.edge_cut << " METIS " << metis->edge_cut;
}

TEST(ExternalPartition, SameResultForAnyThreadCountAndRun) {
  const TestGraph g = Communities(30000, 60, 150000, 0.7, 3);  // several sub-rounds and levels
  std::vector<int32_t> first;
  ExternalPartitionReport first_rep;
  for (int threads : {1, 2, 4, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
    ExternalPartitionReport rep;
    const Partition p = RunExternal(g, Options(60, 9), &rep);
    if (first.empty()) {
      first = p.part;
      first_rep = rep;
      continue;
    }
    EXPECT_EQ(p.part, first) << threads << " threads";
    EXPECT_EQ(rep.edge_cut, first_rep.edge_cut);
    EXPECT_EQ(rep.coarse_nodes, first_rep.coarse_nodes);
    EXPECT_EQ(rep.coarse_entries, first_rep.coarse_entries);
    EXPECT_EQ(rep.cut_projected, first_rep.cut_projected);
  }
  // The seed is used: some other seed gives another partition (each is valid).
  bool differs = false;
  for (int64_t seed : {10, 11, 12}) differs = differs || RunExternal(g, Options(60, seed)).part != first;
  EXPECT_TRUE(differs);
}

TEST(ExternalPartition, OnePartAndAsManyPartsAsNodes) {
  const TestGraph g = Communities(500, 5, 2000, 0.8, 1);
  ExternalPartitionReport rep;
  const Partition one = RunExternal(g, Options(1), &rep);
  EXPECT_EQ(one.edge_cut, 0u);
  for (int32_t c : one.part) EXPECT_EQ(c, 0);
  const Partition all = RunExternal(g, Options(500), &rep);
  EXPECT_LE(rep.max_part_nodes, Limit(500, 500, 0.03));
  ExternalPartitionOptions exact = Options(500);
  exact.imbalance = 0;
  const Partition singletons = RunExternal(g, exact, &rep);
  EXPECT_EQ(std::set<int32_t>(singletons.part.begin(), singletons.part.end()).size(), 500u);
  EXPECT_EQ(singletons.edge_cut, g.neighbors.size() / 2);  // every edge is cut
}

TEST(ExternalPartition, IsolatedNodesAndEdgelessGraphs) {
  // Nodes 0..1999 are isolated; 2000..3999 carry a community graph.
  std::vector<std::pair<uint32_t, uint32_t>> e;
  const TestGraph inner = Communities(2000, 10, 8000, 0.9, 4);
  for (uint32_t v = 0; v < inner.n; ++v)
    for (uint64_t k = inner.offsets[v]; k < inner.offsets[v + 1]; ++k)
      e.push_back({2000 + v, 2000 + inner.neighbors[k]});
  const TestGraph half = MakeGraph(4000, e);
  ExternalPartitionReport rep;
  RunExternal(half, Options(10, 2), &rep);
  EXPECT_LT(rep.coarse_nodes, 2000u);  // the isolated nodes were packed into clusters
  const TestGraph none = MakeGraph(1000, {});
  const Partition p = RunExternal(none, Options(7), &rep);
  EXPECT_EQ(p.edge_cut, 0u);
}

TEST(ExternalPartition, HubOfHugeDegree) {
  // Node 0 is adjacent to every other node; the rest form communities.
  const TestGraph base = Communities(6000, 12, 24000, 0.85, 5);
  std::vector<std::pair<uint32_t, uint32_t>> e;
  for (uint32_t v = 0; v < base.n; ++v)
    for (uint64_t k = base.offsets[v]; k < base.offsets[v + 1]; ++k) e.push_back({v, base.neighbors[k]});
  for (uint32_t v = 1; v < base.n; ++v) e.push_back({0, v});
  const TestGraph hub = MakeGraph(base.n, e);
  ASSERT_EQ(hub.view().degree(0), base.n - 1);
  RunExternal(hub, Options(12, 3));
}

TEST(ExternalPartition, BudgetTooSmallIsAClearError) {
  const TestGraph g = Communities(20000, 40, 80000, 0.8, 8);
  ExternalPartitionOptions o = Options(40);
  o.mem_budget = 100000;
  Result<Partition> p = PartitionExternal(g.view(), o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  const std::string m = p.status().message();
  EXPECT_NE(m.find("--mem-budget"), std::string::npos) << m;
  EXPECT_NE(m.find("20000 nodes"), std::string::npos) << m;
  // A budget that holds the plan is kept to.
  o.mem_budget = uint64_t{64} << 20;
  ExternalPartitionReport rep;
  Result<Partition> fits = PartitionExternal(g.view(), o, &rep);
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  EXPECT_LE(rep.peak_bytes_planned, o.mem_budget);
  CheckPartition(g, o, *fits, rep);
}

TEST(ExternalPartition, ContractionInRangesUnderABudgetGivesTheSameResult) {
  const TestGraph g = Communities(30000, 30, 300000, 0.8, 6);
  ExternalPartitionReport free_rep;
  const Partition free = RunExternal(g, Options(30, 4), &free_rep);
  EXPECT_EQ(free_rep.contract_scans, free_rep.levels);  // one range a level without a budget
  bool ranged = false;
  for (uint64_t extra = uint64_t{8} << 20; extra >= (uint64_t{1} << 20) && !ranged; extra /= 2) {
    ExternalPartitionOptions o = Options(30, 4);
    o.mem_budget = (uint64_t{16} << 20) + extra;
    ExternalPartitionReport rep;
    Result<Partition> p = PartitionExternal(g.view(), o, &rep);
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << p.status().ToString();
      EXPECT_NE(p.status().message().find("--mem-budget"), std::string::npos) << p.status().ToString();
      break;
    }
    CheckPartition(g, o, *p, rep);
    EXPECT_LE(rep.peak_bytes_planned, o.mem_budget);
    EXPECT_EQ(p->part, free.part) << "budget " << o.mem_budget;
    ranged = rep.contract_scans > 2 * rep.levels;  // counting and filling sweeps, several ranges
  }
  EXPECT_TRUE(ranged);
}

TEST(ExternalPartition, BadOptions) {
  const TestGraph g = Cliques(3, 4, true);
  EXPECT_EQ(PartitionExternal(g.view(), Options(0)).status().code(), StatusCode::kInvalidArgument);
  Result<Partition> many = PartitionExternal(g.view(), Options(13));
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("exceeds the number of nodes"), std::string::npos);
  ExternalPartitionOptions o = Options(2);
  o.imbalance = -0.5;
  EXPECT_EQ(PartitionExternal(g.view(), o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PartitionExternal(CsrView{}, Options(1)).ok());
}

TEST(ExternalPartition, ProgressNamesItsPhases) {
  const TestGraph g = Communities(10000, 20, 40000, 0.8, 2);
  std::set<std::string> phases;
  bool sane = true;
  ProgressFn progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    phases.insert(std::string(phase));
    sane = sane && done <= total && total > 0;
  };
  ASSERT_TRUE(PartitionExternal(g.view(), Options(20), nullptr, progress).ok());
  EXPECT_TRUE(sane);
  EXPECT_TRUE(phases.count("coarsen"));
  EXPECT_TRUE(phases.count("contract"));
  EXPECT_TRUE(phases.count("refine"));
}

}  // namespace
}  // namespace cgcn
