// Test helpers for the shard stages: random raw datasets and the whole
// raw -> CSR -> METIS -> shards path in one call.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "cgcn/graph.h"
#include "cgcn/partition.h"
#include "cgcn/preprocess.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_writer.h"
#include "testutil/testutil.h"

namespace cgcn::testutil {

// A random graph with `communities` dense blocks (so METIS finds clusters), some
// duplicate and self-loop edge lines, a few isolated nodes, features correlated with
// labels, and a random split.
inline RawDatasetSpec RandomRawDataset(uint32_t n, uint32_t edges, uint32_t feat_dim, uint32_t classes, uint64_t seed,
                                       uint32_t communities = 8) {
  std::mt19937_64 rng(seed);
  RawDatasetSpec s;
  s.num_nodes = n;
  auto comm = [&](uint32_t v) { return v % communities; };
  std::uniform_int_distribution<uint32_t> any(0, n - 1);
  const uint32_t isolated = n / 50;  // nodes [n - isolated, n) get no edges
  const uint32_t active = n - isolated;
  while (s.edges.size() < edges) {
    uint32_t a = any(rng) % active, b = any(rng) % active;
    if ((rng() % 10) < 8) b = (b - b % communities + comm(a)) % active;  // mostly inside a's community
    s.edges.emplace_back(a, b);
    if (rng() % 50 == 0) s.edges.emplace_back(b, a);   // duplicate in reverse
    if (rng() % 100 == 0) s.edges.emplace_back(a, a);  // self loop
  }
  std::normal_distribution<float> noise(0.0f, 1.0f);
  s.features.resize(n);
  s.labels.resize(n);
  for (uint32_t v = 0; v < n; ++v) {
    s.labels[v] = comm(v) % classes;
    s.features[v].resize(feat_dim);
    for (uint32_t f = 0; f < feat_dim; ++f)
      s.features[v][f] = std::abs(noise(rng) * 0.5f + (f % classes == s.labels[v] ? 1.0f : 0.0f));
  }
  for (uint32_t v = 0; v < n; ++v) {
    const uint64_t r = rng() % 10;
    if (r < 3)
      s.train.push_back(v);
    else if (r < 5)
      s.valid.push_back(v);
    else if (r < 9)
      s.test.push_back(v);
  }
  return s;
}

struct BuiltShards {
  RawGraph raw;
  CsrGraph graph;
  Partition partition;
  ShardWriteReport report;
};

// Writes `spec` under dir/raw-data and builds the shard directory at `out` by the path users
// run, Preprocess (what cgcn-preprocess calls), with min_compression_ratio as
// ShardWriteOptions (0 compresses every section with zstd, a huge value stores every one raw).
// raw, graph and partition are computed separately, as references for the tests to check the
// shards against.
inline BuiltShards BuildShards(const RawDatasetSpec& spec, const std::string& dir, const std::string& out,
                               int32_t parts, int64_t seed = 0,
                               double min_compression_ratio = kDefaultMinCompressionRatio) {
  BuiltShards b;
  WriteRawDataset(dir + "/raw-data", spec, Compression::kPlain);
  PreprocessOptions po;
  po.read = RawReadOptions{dir + "/raw-data", ""};
  po.write.out_dir = out;
  po.write.seed = seed;
  po.write.min_compression_ratio = min_compression_ratio;
  po.parts = parts;
  Result<PreprocessReport> r = Preprocess(po);
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  b.report = std::move(r->write);
  Result<RawGraph> raw = ReadRawGraph(po.read);
  if (!raw.ok()) throw std::runtime_error(raw.status().ToString());
  b.raw = std::move(raw).value();
  Result<CsrGraph> g = BuildSymmetricCsr(b.raw.num_nodes, b.raw.edge_src, b.raw.edge_dst);
  if (!g.ok()) throw std::runtime_error(g.status().ToString());
  b.graph = std::move(g).value();
  Result<Partition> p = PartitionGraph(b.graph.view(), PartitionOptions{parts, seed});
  if (!p.ok()) throw std::runtime_error(p.status().ToString());
  b.partition = std::move(p).value();
  return b;
}

// The undirected simple edge set of a spec, computed naively: {min, max} pairs.
inline std::set<std::pair<uint32_t, uint32_t>> NaiveEdgeSet(const RawDatasetSpec& spec) {
  std::set<std::pair<uint32_t, uint32_t>> s;
  for (auto [a, b] : spec.edges)
    if (a != b) s.emplace(std::min(a, b), std::max(a, b));
  return s;
}

}  // namespace cgcn::testutil
