// Writes the fuzzers' seed corpora at fuzz time (nothing binary is checked in): small raw
// datasets written with the testutil helpers, then the library's own path, ReadRawGraph ->
// BuildSymmetricCsr -> PartitionGraph -> WriteShardDirectory, and the files it wrote copied out.
//
//   fuzz_seed_corpus MANIFEST_CORPUS_DIR SHARD_CORPUS_DIR
//
// Exits non-zero, naming the step, when anything fails, or when the "tiny-p2" directory no
// longer matches kSmallManifest in fuzz_util.h (fuzz_shard's fixed expectation).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cgcn/graph.h"
#include "cgcn/manifest.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_format.h"
#include "cgcn/shard_writer.h"
#include "fuzz/fuzz_util.h"
#include "testutil/testutil.h"

namespace fs = std::filesystem;

namespace cgcn::fuzz {
namespace {

template <typename T>
T Check(Result<T> r, const std::string& step) {
  if (!r.ok()) throw std::runtime_error(step + ": " + r.status().ToString());
  return std::move(r).value();
}

// A small random graph with 4 communities (so METIS has clusters to find), a self loop and a
// duplicate line (which the reader must drop), and every split value.
testutil::RawDatasetSpec SmallRandomDataset(uint32_t n, uint32_t edges, uint32_t feat_dim, uint32_t classes,
                                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  testutil::RawDatasetSpec s;
  s.num_nodes = n;
  s.split_name = "seed";
  for (uint32_t e = 0; e < edges; ++e) {
    const uint32_t a = static_cast<uint32_t>(rng() % n);
    uint32_t b = static_cast<uint32_t>(rng() % n);
    if (rng() % 5 != 0) b = (b - b % 4 + a % 4) % n;  // mostly inside a's community
    s.edges.emplace_back(a, b);
  }
  s.edges.emplace_back(0, 0);
  s.edges.push_back(s.edges.front());
  s.features.resize(n);
  s.labels.resize(n);
  for (uint32_t v = 0; v < n; ++v) {
    s.labels[v] = (v % 4) % classes;
    for (uint32_t f = 0; f < feat_dim; ++f) s.features[v].push_back(static_cast<float>(rng() % 1000) / 250.0f);
    switch (rng() % 4) {
      case 0:
        s.train.push_back(v);
        break;
      case 1:
        s.valid.push_back(v);
        break;
      case 2:
        s.test.push_back(v);
        break;
      default:
        break;
    }
  }
  return s;
}

// Builds `spec` into a shard directory with `parts` clusters and copies its MANIFEST and shards
// into the corpora as NAME.manifest and NAME-shard-NNNNNN.cgs. Returns the manifest.
Manifest AddDataset(const std::string& name, const testutil::RawDatasetSpec& spec, int32_t parts,
                    const fs::path& manifest_dir, const fs::path& shard_dir, size_t* files) {
  testutil::TempDir tmp("cgcn-fuzz-seed");
  testutil::WriteRawDataset(tmp.Join("raw-data"), spec, testutil::Compression::kPlain);
  const RawGraph raw = Check(ReadRawGraph(RawReadOptions{tmp.Join("raw-data"), ""}), name + ": ReadRawGraph");
  const CsrGraph graph =
      Check(BuildSymmetricCsr(raw.num_nodes, raw.edge_src, raw.edge_dst), name + ": BuildSymmetricCsr");
  const Partition partition = Check(PartitionGraph(graph, PartitionOptions{parts, 0}), name + ": PartitionGraph");
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("shards");
  const ShardWriteReport report = Check(WriteShardDirectory(raw, graph, partition, wo), name + ": WriteShardDirectory");
  fs::copy_file(fs::path(wo.out_dir) / kManifestFileName, manifest_dir / (name + ".manifest"),
                fs::copy_options::overwrite_existing);
  ++*files;
  for (uint32_t c = 0; c < report.manifest.num_parts; ++c) {
    fs::copy_file(fs::path(wo.out_dir) / ShardFileName(c), shard_dir / (name + "-" + ShardFileName(c)),
                  fs::copy_options::overwrite_existing);
    ++*files;
  }
  return report.manifest;
}

int Main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MANIFEST_CORPUS_DIR SHARD_CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const fs::path manifest_dir = argv[1], shard_dir = argv[2];
  fs::create_directories(manifest_dir);
  fs::create_directories(shard_dir);
  size_t files = 0;

  const Manifest tiny = AddDataset("tiny-p2", testutil::TinyRawDataset(), 2, manifest_dir, shard_dir, &files);
  bool matches = tiny.num_nodes == kSmallManifest.num_nodes && tiny.feat_dim == kSmallManifest.feat_dim &&
                 tiny.num_classes == kSmallManifest.num_classes && tiny.num_parts == 2;
  for (uint32_t c = 0; matches && c < 2; ++c) matches = tiny.shards[c].num_nodes == kSmallManifest.cluster_sizes[c];
  if (!matches) {
    std::fprintf(stderr,
                 "fuzz_seed_corpus: the tiny dataset in 2 clusters no longer matches kSmallManifest "
                 "(tests/fuzz/fuzz_util.h): %llu nodes, %u features, %u classes, clusters of %u and %u nodes\n",
                 static_cast<unsigned long long>(tiny.num_nodes), tiny.feat_dim, tiny.num_classes,
                 tiny.shards[0].num_nodes, tiny.shards.size() > 1 ? tiny.shards[1].num_nodes : 0);
    return 1;
  }
  (void)AddDataset("tiny-p1", testutil::TinyRawDataset(), 1, manifest_dir, shard_dir, &files);
  (void)AddDataset("tiny-p5", testutil::TinyRawDataset(), 5, manifest_dir, shard_dir, &files);
  (void)AddDataset("random-p4", SmallRandomDataset(80, 240, 4, 3, 1), 4, manifest_dir, shard_dir, &files);
  (void)AddDataset("random-p3", SmallRandomDataset(40, 60, 1, 2, 2), 3, manifest_dir, shard_dir, &files);

  // A cluster with no nodes (METIS can leave parts empty on tiny graphs).
  ClusterData empty;
  empty.cluster_id = 1;
  empty.num_clusters = 2;
  empty.feat_dim = 3;
  empty.num_classes = 2;
  empty.adj_offsets = {0};
  const std::vector<std::byte> bytes = Check(EncodeShard(empty, 3), "EncodeShard(empty cluster)");
  testutil::WriteFile((shard_dir / "empty-cluster.cgs").string(),
                      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  ++files;
  std::printf("fuzz_seed_corpus: wrote %zu seed files to %s and %s\n", files, manifest_dir.c_str(), shard_dir.c_str());
  return 0;
}

}  // namespace
}  // namespace cgcn::fuzz

int main(int argc, char** argv) {
  try {
    return cgcn::fuzz::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seed_corpus: error: %s\n", e.what());
    return 1;
  }
}
