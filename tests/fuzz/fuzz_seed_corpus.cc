// Writes the fuzzers' seed corpora at fuzz time (nothing binary is checked in), one directory
// per target under OUT_DIR, all through the library's own writers:
//   fuzz_manifest, fuzz_shard  small raw datasets written with the testutil helpers, then
//                              ReadRawGraph -> BuildSymmetricCsr -> PartitionGraph ->
//                              WriteShardDirectory, the files it wrote copied out;
//   fuzz_text_source,          the files of the tiny raw dataset (plain, gzipped by Boost as
//   fuzz_raw_reader            WriteRawDataset does, and as text for the harness to gzip) and
//                              excerpts of data/cora (its small .gz files as they are);
//   fuzz_model                 SaveModel files of a few configurations, one trained;
//   fuzz_checkpoint            the checkpoints Train writes in the run fuzz_training.h describes
//                              (after every step and epoch), and of a run with other options.
//
//   fuzz_seed_corpus OUT_DIR
//
// Exits non-zero, naming the step, when anything fails, or when the "tiny-p2" directory no
// longer matches kSmallManifest in fuzz_util.h (fuzz_shard's fixed expectation).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/checkpoint.h"
#include "cgcn/graph.h"
#include "cgcn/manifest.h"
#include "cgcn/model_file.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_directory.h"
#include "cgcn/shard_format.h"
#include "cgcn/shard_writer.h"
#include "cgcn/train.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_gzip.h"
#include "fuzz/fuzz_raw.h"
#include "fuzz/fuzz_text.h"
#include "fuzz/fuzz_training.h"
#include "fuzz/fuzz_util.h"
#include "testutil/npz_writer.h"
#include "testutil/testutil.h"

namespace fs = std::filesystem;

namespace cgcn::fuzz {
namespace {

template <typename T>
T Check(Result<T> r, const std::string& step) {
  if (!r.ok()) throw std::runtime_error(step + ": " + r.status().ToString());
  return std::move(r).value();
}
void Check(const Status& s, const std::string& step) {
  if (!s.ok()) throw std::runtime_error(step + ": " + s.ToString());
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
                    const fs::path& manifest_dir, const fs::path& shard_dir, size_t* files,
                    FeatureDtype feature_dtype = FeatureDtype::kF32, double min_ratio = kDefaultMinCompressionRatio) {
  testutil::TempDir tmp("cgcn-fuzz-seed");
  testutil::WriteRawDataset(tmp.Join("raw-data"), spec, testutil::Compression::kPlain);
  const RawGraph raw = Check(ReadRawGraph(RawReadOptions{tmp.Join("raw-data"), ""}), name + ": ReadRawGraph");
  const CsrGraph graph =
      Check(BuildSymmetricCsr(raw.num_nodes, raw.edge_src, raw.edge_dst), name + ": BuildSymmetricCsr");
  const Partition partition =
      Check(PartitionGraph(graph.view(), PartitionOptions{parts, 0}), name + ": PartitionGraph");
  ShardWriteOptions wo;
  wo.out_dir = tmp.Join("shards");
  wo.feature_dtype = feature_dtype;
  wo.min_compression_ratio = min_ratio;
  const ShardWriteReport report =
      Check(WriteShardDirectory(raw, graph.view(), partition, wo), name + ": WriteShardDirectory");
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

// Writes seeds into one directory, named NAME-NN (in the order written).
class SeedDir {
 public:
  explicit SeedDir(const fs::path& dir) : dir_(dir) { fs::create_directories(dir); }
  void Add(std::string_view name, std::string_view bytes) {
    char n[8];
    std::snprintf(n, sizeof n, "-%03zu", count_);
    WriteBytes((dir_ / (std::string(name) + n)).string(), bytes);
    ++count_;
  }
  void AddFile(std::string_view name, const fs::path& file) {
    const std::vector<std::byte> bytes = ReadBytes(file.string());
    Add(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  size_t count() const { return count_; }

 private:
  fs::path dir_;
  size_t count_ = 0;
};

std::string ReadText(const fs::path& file) {
  const std::vector<std::byte> bytes = ReadBytes(file.string());
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The first `lines` lines of `text`, each cut to its first `fields` fields.
std::string Excerpt(std::string_view text, size_t lines, size_t fields = SIZE_MAX) {
  std::string out;
  for (const std::string& line : SplitLines(text)) {
    if (lines-- == 0) break;
    const std::vector<std::string_view> f = SplitCommas(line);
    for (size_t k = 0; k < f.size() && k < fields; ++k) out += (k ? "," : "") + std::string(f[k]);
    out += '\n';
  }
  return out;
}

// One-byte TextSource selector (fuzz_text_source.cc): form in bits 0-1, block index in bits 2-7.
std::string TextInput(unsigned form, unsigned block, std::string_view content) {
  return std::string(1, static_cast<char>(form | (block << 2))) + std::string(content);
}

// fuzz_text_source and fuzz_raw_reader: the tiny dataset's files and excerpts of data/cora.
void AddTextSeeds(const fs::path& text_dir, const fs::path& raw_dir, size_t* files) {
  SeedDir text(text_dir), raw(raw_dir);
  testutil::TempDir tmp("cgcn-fuzz-seed");
  const testutil::RawDatasetSpec tiny = testutil::TinyRawDataset();
  testutil::WriteRawDataset(tmp.Join("gz"), tiny, testutil::Compression::kGzip);  // Boost's gzip_compressor
  const auto tiny_files = testutil::RawDatasetFiles(tiny);
  for (unsigned i = 0; i < tiny_files.size(); ++i) {
    const std::string& content = tiny_files[i].second;
    const std::string gz = ReadText(tmp.Join("gz/" + tiny_files[i].first + ".csv.gz"));
    raw.Add("tiny", RawInput(i, kPlainText, false, i % 4, content));
    raw.Add("tiny", RawInput(i, kStoredGzip, false, (i + 1) % 4, gz));
    raw.Add("tiny", RawInput(i, kGzipOneMember, false, (i + 2) % 4, content));
    raw.Add("tiny", RawInput(i, kGzipTwoMembers, false, (i + 3) % 4, content));
    text.Add("tiny", TextInput(0, i, content));
    text.Add("tiny", TextInput(1, i, gz));
    text.Add("tiny", TextInput(2 + i % 2, i, content));
  }
  raw.Add("tiny-no-edge-count", RawInput(kEdges, kPlainText, true, 0, tiny_files[kEdges].second));

  // data/cora: excerpts in the tiny dataset's shape where it has one (6 feature rows, cut to
  // 256 of their 1433 columns; 6 labels), a few lines elsewhere; the small .gz files as stored.
  const fs::path cora = fs::path(CGCN_SOURCE_DIR) / "data/cora";
  const std::pair<unsigned, const char*> cora_files[] = {
      {kNumNodes, "raw/num-node-list"}, {kNumEdges, "raw/num-edge-list"}, {kEdges, "raw/edge"},
      {kFeatures, "raw/node-feat"},     {kLabels, "raw/node-label"},      {kTrain, "split/public/train"},
      {kValid, "split/public/valid"},   {kTest, "split/public/test"}};
  for (const auto& [index, base] : cora_files) {
    const fs::path gz_path = cora / (std::string(base) + ".csv.gz");
    const std::string gz = ReadText(gz_path);
    const std::optional<std::string> all = GunzipReference(gz);
    if (!all) throw std::runtime_error(gz_path.string() + ": does not gunzip");
    const std::string excerpt = index == kFeatures ? Excerpt(*all, 6, 256) : Excerpt(*all, index == kLabels ? 6 : 7);
    raw.Add("cora", RawInput(index, kPlainText, false, index % 4, excerpt));
    raw.Add("cora", RawInput(index, kGzipOneMember, false, (index + 1) % 4, excerpt));
    text.Add("cora", TextInput(0, 3 * index, excerpt));
    if (gz.size() <= 8192) {
      raw.Add("cora", RawInput(index, kStoredGzip, false, (index + 2) % 4, gz));
      text.Add("cora", TextInput(1, 3 * index, gz));
    }
  }
  // Feature values in every spelling the reader takes (as RawReaderTest.ParsesGeneralFloats).
  const std::string floats = "1e-50,-0,12345678\n1.5e3,.25,-7\n0.1,1E2,3.\n2.5E-3,-1e+2,0\n0,0,0\n0,0,0\n";
  raw.Add("floats", RawInput(kFeatures, kPlainText, false, 1, floats));
  raw.Add("floats", RawInput(kFeatures, kGzipOneMember, false, 2, floats));
  // Line-splitting corner cases: CRLF, no final terminator, empty lines, a lone CR, a line
  // longer than the largest block, a NUL.
  for (std::string_view corner :
       {std::string_view("1,2\r\n3,4\r\n"), std::string_view("1,2\n3,4"), std::string_view("\n\n1\n\n"),
        std::string_view("x\r"), std::string_view("a\0b\nc\n")}) {
    text.Add("corner", TextInput(0, 0, corner));
    text.Add("corner", TextInput(3, 1, corner));
  }
  text.Add("corner", TextInput(0, 63, std::string(1000, '7') + "\n" + std::string(600, '8')));
  *files += text.count() + raw.count();
}

// fuzz_model: SaveModel files of a few configurations (Glorot-initialized), and one trained on
// the tiny shards.
void AddModelSeeds(const fs::path& dir, ShardDirectory& shards, size_t* files) {
  SeedDir seeds(dir);
  testutil::TempDir tmp("cgcn-fuzz-seed");
  const std::string path = tmp.Join("model");
  GcnConfig configs[] = {{3, 4, 2, 2, 0.5f}, {3, 16, 2, 3, 0.0f}, {8, 8, 4, 1, 0.25f},
                         {5, 4, 3, 4, 0.9f}, {3, 4, 2, 3, 0.5f},  {4, 4, 2, 3, 0.5f}};
  // Layer kinds, norms and residual connections (version 2's fields and batch norm's buffers).
  configs[4].kind = LayerKind::kClusterGcn;
  configs[4].diag_lambda = 0.5f;
  configs[4].norm = NormKind::kLayer;
  configs[5].kind = LayerKind::kSage;
  configs[5].norm = NormKind::kBatch;
  configs[5].residual = true;
  for (size_t i = 0; i < std::size(configs); ++i) {
    const Gcn model(configs[i], i + 1);
    Check(SaveModel(path, model, i % 2 == 0 ? FeatureNorm::Row() : FeatureNorm::None()), "SaveModel");
    seeds.AddFile("init", path);
  }
  TrainOptions o;
  o.epochs = 3;
  o.hidden = 8;
  Gcn trained(ModelConfig(shards.manifest(), o), 1);
  Check(Train(shards, o, trained).status(), "Train (model seed)");
  Check(SaveModel(path, trained, FeatureNorm::Row()), "SaveModel (trained)");
  seeds.AddFile("trained", path);
  *files += seeds.count();
}

// fuzz_checkpoint: the distinct checkpoints of the fuzz_training.h run (Train writes one after
// every step and every epoch), and the last of a run with other options (other K and signature).
void AddCheckpointSeeds(const fs::path& dir, ShardDirectory& shards, size_t* files) {
  SeedDir seeds(dir);
  testutil::TempDir tmp("cgcn-fuzz-seed");
  const std::string ckpt = tmp.Join("run");
  fs::create_directories(ckpt);
  const std::string file = ckpt + "/" + kCheckpointFileName;
  TrainOptions o = CheckpointRunOptions(ckpt);
  o.epochs = 3;  // not part of the signature: fuzz_checkpoint's run of 2 epochs resumes these
  Gcn model = CheckpointRunModel(shards.manifest(), o);
  // The file after every epoch, and whatever it holds when a step is reported (the checkpoint of
  // the step before, when that one was not an epoch's last).
  std::set<std::string> distinct;
  auto add = [&] {
    if (fs::exists(file) && distinct.insert(ReadText(file)).second) seeds.AddFile("run", file);
  };
  TrainCallbacks callbacks;
  callbacks.on_epoch = [&](const EpochRecord&) { add(); };
  callbacks.on_step = [&](uint64_t, uint32_t, uint64_t, double) { add(); };
  Check(Train(shards, o, model, callbacks).status(), "Train (checkpoint seeds)");
  // Another run in its own directory (Train refuses to start afresh over a checkpoint).
  TrainOptions other = o;
  other.checkpoint_dir = tmp.Join("other");
  other.layers = 3;
  other.hidden = 8;
  other.lr = 0.05f;
  Gcn other_model = CheckpointRunModel(shards.manifest(), other);
  Check(Train(shards, other, other_model).status(), "Train (other checkpoint seed)");
  seeds.AddFile("other", CheckpointPath(other.checkpoint_dir));
  *files += seeds.count();
}

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path manifest_dir = out / "fuzz_manifest", shard_dir = out / "fuzz_shard";
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
  // The 16-bit feature codecs, plain (1e9: nothing zstd-framed) and framed (0: everything).
  (void)AddDataset("bf16-p3", SmallRandomDataset(80, 240, 4, 3, 3), 3, manifest_dir, shard_dir, &files,
                   FeatureDtype::kBf16, 1e9);
  (void)AddDataset("f16-p2", SmallRandomDataset(80, 240, 4, 3, 4), 2, manifest_dir, shard_dir, &files,
                   FeatureDtype::kF16, 0.0);

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

  AddTextSeeds(out / "fuzz_text_source", out / "fuzz_raw_reader", &files);
  // fuzz_npz: the tiny dataset's data.npz as numpy's savez and savez_compressed write it, with
  // and without ZIP64, edge_index in C and Fortran order, .npy versions 1.0 to 3.0.
  {
    const fs::path dir = out / "fuzz_npz";
    fs::create_directories(dir);
    struct Seed {
      const char* name;
      bool deflate, zip64, fortran;
      int major;
    };
    for (const Seed& sd :
         {Seed{"stored", false, false, false, 1}, Seed{"deflated", true, false, false, 1},
          Seed{"zip64-v2", false, true, false, 2}, Seed{"deflated-fortran-v3", true, false, true, 3}}) {
      testutil::NpzOptions o;
      o.deflate = sd.deflate;
      o.zip64 = sd.zip64;
      o.fortran_edges = sd.fortran;
      o.npy_major = sd.major;
      testutil::WriteFile((dir / (std::string(sd.name) + ".npz")).string(),
                          testutil::ZipBytes(testutil::NpzDataMembers(testutil::TinyRawDataset(), o), sd.zip64));
      ++files;
    }
  }
  testutil::TempDir tmp("cgcn-fuzz-seed");
  Check(BuildTinyShards(tmp.Join("raw"), tmp.Join("shards")), "BuildTinyShards");
  ShardDirectory shards = Check(ShardDirectory::Open(tmp.Join("shards")), "ShardDirectory::Open");
  AddModelSeeds(out / "fuzz_model", shards, &files);
  AddCheckpointSeeds(out / "fuzz_checkpoint", shards, &files);
  std::printf("fuzz_seed_corpus: wrote %zu seed files under %s\n", files, out.c_str());
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
