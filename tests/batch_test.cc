#include "cgcn/batch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "cgcn/shard_directory.h"
#include "testutil/shards.h"

namespace cgcn {
namespace {

// The batch of clusters `chosen` must equal the subgraph induced by their nodes, computed
// naively from the raw edge list, with GCN normalization on that subgraph.
void CheckAgainstNaiveInducedSubgraph(const testutil::RawDatasetSpec& spec, const testutil::BuiltShards& built,
                                      const ShardDirectory& d, const std::vector<uint32_t>& chosen) {
  ShardDecoder dec;
  std::vector<ClusterData> cs(chosen.size());
  std::vector<ClusterView> ptrs;
  for (size_t k = 0; k < chosen.size(); ++k) {
    ASSERT_TRUE(d.Load(chosen[k], kAllSections, dec, cs[k]).ok());
    ptrs.push_back(cs[k]);
  }
  Batch b;
  AssembleBatch(ptrs, FeatureNorm::Row(), b, /*propagate_features=*/true);

  // Naive reference.
  const std::set<uint32_t> cset(chosen.begin(), chosen.end());
  std::vector<uint32_t> nodes;  // by (cluster, id)
  for (uint32_t c : chosen)
    for (uint32_t v = 0; v < spec.num_nodes; ++v)
      if (static_cast<uint32_t>(built.partition.part[v]) == c) nodes.push_back(v);
  std::map<uint32_t, std::set<uint32_t>> nbrs;
  for (auto [a, bb] : testutil::NaiveEdgeSet(spec)) {
    if (cset.count(static_cast<uint32_t>(built.partition.part[a])) &&
        cset.count(static_cast<uint32_t>(built.partition.part[bb]))) {
      nbrs[a].insert(bb);
      nbrs[bb].insert(a);
    }
  }
  ASSERT_EQ(b.num_nodes, nodes.size());
  EXPECT_EQ(std::vector<uint32_t>(b.node_ids.begin(), b.node_ids.end()), nodes);
  uint32_t train = 0;
  for (uint32_t i = 0; i < b.num_nodes; ++i) {
    const uint32_t v = nodes[i];
    std::set<uint32_t> got;
    for (uint32_t e = b.offsets[i]; e < b.offsets[i + 1]; ++e) {
      const uint32_t u = b.node_ids[b.columns[e]];
      got.insert(u);
      const double want =
          1.0 / std::sqrt((static_cast<double>(nbrs[v].size()) + 1.0) * (static_cast<double>(nbrs[u].size()) + 1.0));
      EXPECT_NEAR(b.weights[e], want, 1e-6);
    }
    EXPECT_EQ(got, nbrs[v]) << "node " << v;
    EXPECT_EQ(b.offsets[i + 1] - b.offsets[i], nbrs[v].size()) << "duplicate entries in row of node " << v;
    EXPECT_NEAR(b.self_weights[i], 1.0 / (static_cast<double>(nbrs[v].size()) + 1.0), 1e-6);
    double sum = 0;
    for (float f : spec.features[v]) sum += f;
    for (size_t f = 0; f < spec.features[v].size(); ++f)
      EXPECT_NEAR(b.features[i * b.feat_dim + f], spec.features[v][f] / std::max(sum, 1.0), 1e-6);
    EXPECT_EQ(b.labels[i], spec.labels[v]);
    const bool is_train = std::find(spec.train.begin(), spec.train.end(), v) != spec.train.end();
    EXPECT_EQ(b.train_mask[i], is_train ? 1 : 0);
    train += is_train;
  }
  EXPECT_EQ(b.num_train, train);

  // propagated = A_hat X on the batch subgraph, from the naive neighbour sets in double.
  ASSERT_TRUE(b.has_propagated);
  ASSERT_EQ(b.propagated.size(), size_t{b.num_nodes} * b.feat_dim);
  std::map<uint32_t, std::vector<double>> normalized;
  for (uint32_t v : nodes) {
    double sum = 0;
    for (float f : spec.features[v]) sum += f;
    for (float f : spec.features[v]) normalized[v].push_back(f / std::max(sum, 1.0));
  }
  for (uint32_t i = 0; i < b.num_nodes; ++i) {
    const uint32_t v = nodes[i];
    const double dv = static_cast<double>(nbrs[v].size()) + 1.0;
    for (uint32_t f = 0; f < b.feat_dim; ++f) {
      double want = normalized[v][f] / dv;
      for (uint32_t u : nbrs[v]) want += normalized[u][f] / std::sqrt(dv * (static_cast<double>(nbrs[u].size()) + 1.0));
      EXPECT_NEAR(b.propagated[size_t{i} * b.feat_dim + f], want, 1e-5) << "node " << v << " feature " << f;
    }
  }
}

TEST(Batch, EqualsNaiveInducedSubgraph) {
  testutil::TempDir tmp;
  const auto spec = testutil::RandomRawDataset(400, 2400, 5, 4, 21);
  const auto built = testutil::BuildShards(spec, tmp.path(), tmp.Join("shards"), 8);
  ASSERT_GT(built.partition.edge_cut, 0u);  // inter-cluster edges exist and must be restored
  Result<ShardDirectory> d = ShardDirectory::Open(tmp.Join("shards"));
  ASSERT_TRUE(d.ok());
  for (const auto& chosen : std::vector<std::vector<uint32_t>>{{3}, {0, 5}, {1, 2, 6}, {0, 1, 2, 3, 4, 5, 6, 7}}) {
    SCOPED_TRACE(::testing::PrintToString(chosen));
    CheckAgainstNaiveInducedSubgraph(spec, built, *d, chosen);
  }
}

TEST(Batch, RowNormalizeMatchesPygNormalizeFeatures) {
  // PyG: x / x.sum(-1).clamp(min=1): rows summing below 1 are left alone.
  std::vector<float> x = {1, 3, 0, 0.25f, 0.25f, 0, 0, 0, 0};
  RowNormalize(x.data(), 3, 3);
  EXPECT_EQ(x, (std::vector<float>{0.25f, 0.75f, 0, 0.25f, 0.25f, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace cgcn
