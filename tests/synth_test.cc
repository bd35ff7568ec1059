#include "cgcn/synth.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/checksum.h"
#include "cgcn/graph.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "testutil/testutil.h"

namespace cgcn {
namespace {

namespace fs = std::filesystem;
using testutil::TempDir;

// 3000 nodes in 30 communities of 100, ~12000 edges. Small blocks and buckets, so that even this
// graph is made of many blocks, buckets and gzip members.
SynthOptions SmallOptions(const std::string& dir) {
  SynthOptions o;
  o.out_dir = dir;
  o.num_nodes = 3000;
  o.avg_degree = 8;
  o.feat_dim = 12;
  o.num_classes = 5;
  o.num_communities = 30;
  o.seed = 7;
  o.noise = 1.0;
  o.block_nodes = 256;
  o.bucket_nodes = 200;
  return o;
}

SynthReport Generate(const SynthOptions& o) {
  Result<SynthReport> r = GenerateSynthGraph(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : SynthReport{};
}

RawGraph Read(const std::string& dir) {
  RawReadOptions ro;
  ro.dir = dir;
  Result<RawGraph> g = ReadRawGraph(ro);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? std::move(g).value() : RawGraph{};
}

// Every file under `dir`, keyed by its relative path.
std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = testutil::ReadFile(e.path().string());
  return files;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<uint32_t> Degrees(const RawGraph& g) {
  std::vector<uint32_t> deg(g.num_nodes, 0);
  for (size_t e = 0; e < g.edge_src.size(); ++e) {
    ++deg[g.edge_src[e]];
    ++deg[g.edge_dst[e]];
  }
  return deg;
}

TEST(SynthTest, WritesAGraphTheRawReaderAccepts) {
  TempDir tmp;
  const SynthOptions o = SmallOptions(tmp.Join("g"));
  const SynthReport rep = Generate(o);
  for (const char* f :
       {"raw/num-node-list.csv.gz", "raw/num-edge-list.csv.gz", "raw/edge.csv.gz", "raw/node-feat.csv.gz",
        "raw/node-label.csv.gz", "split/random/train.csv.gz", "split/random/valid.csv.gz", "split/random/test.csv.gz"})
    EXPECT_TRUE(fs::is_regular_file(tmp.Join("g/") + f)) << f;
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"g"});  // no temporary left behind

  const RawGraph g = Read(o.out_dir);
  EXPECT_EQ(g.num_nodes, 3000u);
  EXPECT_EQ(g.feat_dim, 12u);
  EXPECT_EQ(g.num_classes, 5u);
  EXPECT_EQ(g.split_name, "random");
  EXPECT_EQ(g.edge_src.size(), rep.num_edges);
  EXPECT_EQ(rep.target_edges, 12000u);
  EXPECT_NEAR(static_cast<double>(rep.num_edges), 12000.0, 12000 * 0.01);
  EXPECT_EQ(rep.samples, rep.num_edges + rep.self_loops_dropped + rep.duplicates_dropped);
  EXPECT_EQ(rep.community.size(), 3000u);
}

TEST(SynthTest, EdgeFileIsSortedUniqueAndLoopFree) {
  TempDir tmp;
  Generate(SmallOptions(tmp.Join("g")));
  const RawGraph g = Read(tmp.Join("g"));
  ASSERT_FALSE(g.edge_src.empty());
  for (size_t e = 0; e < g.edge_src.size(); ++e) {
    ASSERT_LT(g.edge_src[e], g.edge_dst[e]) << "line " << e + 1;
    if (e > 0) {
      const bool ascending = g.edge_src[e - 1] < g.edge_src[e] ||
                             (g.edge_src[e - 1] == g.edge_src[e] && g.edge_dst[e - 1] < g.edge_dst[e]);
      ASSERT_TRUE(ascending) << "line " << e + 1;
    }
  }
}

TEST(SynthTest, SameBytesWhateverTheThreadCount) {
  TempDir tmp;
  for (bool gzip : {true, false}) {
    SynthOptions one = SmallOptions(tmp.Join(gzip ? "one-gz" : "one"));
    SynthOptions two = SmallOptions(tmp.Join(gzip ? "two-gz" : "two"));
    one.gzip = two.gzip = gzip;
    {
      tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 1);
      Generate(one);
    }
    {
      tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 2);
      Generate(two);
    }
    const auto a = ReadTree(one.out_dir), b = ReadTree(two.out_dir);
    EXPECT_EQ(a.size(), 9u);  // 8 data files and the cgcn-synth.txt marker
    EXPECT_TRUE(a == b) << (gzip ? "gzip" : "plain");
  }
}

TEST(SynthTest, DifferentSeedsGiveDifferentGraphs) {
  TempDir tmp;
  SynthOptions a = SmallOptions(tmp.Join("a")), b = SmallOptions(tmp.Join("b"));
  a.gzip = b.gzip = false;
  b.seed = a.seed + 1;
  Generate(a);
  Generate(b);
  const auto fa = ReadTree(a.out_dir), fb = ReadTree(b.out_dir);
  for (const char* f : {"raw/edge.csv", "raw/node-feat.csv", "raw/node-label.csv", "split/random/train.csv"})
    EXPECT_NE(fa.at(f), fb.at(f)) << f;
}

// Counts gzip member headers as this writer makes them: magic, deflate, no flags, zero mtime.
size_t CountGzipMembers(const std::string& bytes) {
  static const std::string kHeader("\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
  size_t n = 0;
  for (size_t pos = bytes.find(kHeader); pos != std::string::npos; pos = bytes.find(kHeader, pos + 1)) ++n;
  return n;
}

TEST(SynthTest, GzipAndPlainHoldTheSameGraph) {
  TempDir tmp;
  SynthOptions gz = SmallOptions(tmp.Join("gz")), plain = SmallOptions(tmp.Join("plain"));
  plain.gzip = false;
  Generate(gz);
  Generate(plain);
  // Blocks of 256 rows: node-feat.csv.gz is 12 gzip members, which Boost's reader must follow.
  EXPECT_GE(CountGzipMembers(testutil::ReadFile(tmp.Join("gz/raw/node-feat.csv.gz"))), 12u);
  EXPECT_GE(CountGzipMembers(testutil::ReadFile(tmp.Join("gz/raw/edge.csv.gz"))), 10u);
  const RawGraph a = Read(gz.out_dir), b = Read(plain.out_dir);
  EXPECT_EQ(a.edge_src, b.edge_src);
  EXPECT_EQ(a.edge_dst, b.edge_dst);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.split, b.split);
  EXPECT_EQ(a.features.size(), 3000u * 12u);
}

TEST(SynthTest, MetisFindsTheCommunities) {
  TempDir tmp;
  const SynthOptions o = SmallOptions(tmp.Join("g"));
  const SynthReport rep = Generate(o);
  const RawGraph g = Read(o.out_dir);
  // The report's community count agrees with an independent recount over the file.
  uint64_t intra = 0;
  for (size_t e = 0; e < g.edge_src.size(); ++e) intra += rep.community[g.edge_src[e]] == rep.community[g.edge_dst[e]];
  EXPECT_EQ(intra, rep.intra_edges);
  const double edges = static_cast<double>(g.edge_src.size());
  EXPECT_GT(static_cast<double>(intra), 0.7 * edges);  // intra_fraction 0.8, less what dedup removes

  Result<CsrGraph> csr = BuildSymmetricCsr(g.num_nodes, g.edge_src, g.edge_dst);
  ASSERT_TRUE(csr.ok()) << csr.status().ToString();
  Result<Partition> part = PartitionGraph(csr->view(), PartitionOptions{30, 0});
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  // A random assignment to 30 parts cuts 29/30 of the edges; the communities alone cut < 30%.
  const double random_cut = edges * 29.0 / 30.0;
  EXPECT_LT(static_cast<double>(part->edge_cut), 0.4 * random_cut);
  EXPECT_LT(static_cast<double>(part->edge_cut), 1.3 * (edges - static_cast<double>(intra)));
}

TEST(SynthTest, LabelsFollowCommunities) {
  TempDir tmp;
  const SynthOptions o = SmallOptions(tmp.Join("g"));
  const SynthReport rep = Generate(o);
  const RawGraph g = Read(o.out_dir);
  // Share of each community's nodes that carry its most common label, averaged over communities.
  std::vector<std::vector<uint32_t>> counts(30, std::vector<uint32_t>(5, 0));
  std::vector<uint32_t> overall(5, 0);
  for (uint32_t v = 0; v < g.num_nodes; ++v) {
    ++counts[rep.community[v]][g.labels[v]];
    ++overall[g.labels[v]];
  }
  double purity = 0;
  for (const auto& c : counts) {
    uint32_t size = 0;
    for (uint32_t x : c) size += x;
    purity += static_cast<double>(*std::max_element(c.begin(), c.end())) / size / 30.0;
  }
  EXPECT_GT(purity, 0.75);  // expected 0.8 + 0.2 / 5 = 0.84
  EXPECT_LT(static_cast<double>(*std::max_element(overall.begin(), overall.end())) / g.num_nodes, 0.3);
  // Homophily: edges join same-label nodes far more often than the ~1/5 of chance.
  uint64_t same = 0;
  for (size_t e = 0; e < g.edge_src.size(); ++e) same += g.labels[g.edge_src[e]] == g.labels[g.edge_dst[e]];
  EXPECT_GT(static_cast<double>(same) / static_cast<double>(g.edge_src.size()), 0.5);
}

TEST(SynthTest, FeaturesAreClassMeansPlusGaussianNoise) {
  TempDir tmp;
  SynthOptions o = SmallOptions(tmp.Join("g"));
  o.noise = 0.5;
  o.gzip = false;
  Generate(o);
  const RawGraph g = Read(o.out_dir);
  const uint32_t F = g.feat_dim, C = g.num_classes;
  std::vector<double> mean(uint64_t{C} * F, 0.0);
  std::vector<uint32_t> size(C, 0);
  for (uint32_t v = 0; v < g.num_nodes; ++v) {
    ++size[g.labels[v]];
    for (uint32_t j = 0; j < F; ++j) mean[g.labels[v] * F + j] += g.features[uint64_t{v} * F + j];
  }
  for (uint32_t k = 0; k < C; ++k)
    for (uint32_t j = 0; j < F; ++j) mean[k * F + j] /= size[k];
  double m2 = 0, m4 = 0;
  for (uint32_t v = 0; v < g.num_nodes; ++v) {
    for (uint32_t j = 0; j < F; ++j) {
      const double r = g.features[uint64_t{v} * F + j] - mean[g.labels[v] * F + j];
      m2 += r * r;
      m4 += r * r * r * r;
    }
  }
  const double n = static_cast<double>(g.features.size());
  m2 /= n;
  m4 /= n;
  EXPECT_NEAR(std::sqrt(m2), 0.5, 0.5 * 0.03);  // the noise's standard deviation
  EXPECT_NEAR(m4 / (m2 * m2), 3.0, 0.15);       // a Gaussian's kurtosis (36000 residuals)
  // Class means are N(0, 1) vectors: any two are far apart compared to the noise.
  for (uint32_t a = 0; a < C; ++a) {
    for (uint32_t b = a + 1; b < C; ++b) {
      double d2 = 0;
      for (uint32_t j = 0; j < F; ++j) d2 += (mean[a * F + j] - mean[b * F + j]) * (mean[a * F + j] - mean[b * F + j]);
      EXPECT_GT(std::sqrt(d2), 1.0) << a << " vs " << b;
    }
  }
  // At most three decimals, as written.
  const std::string text = testutil::ReadFile(tmp.Join("g/raw/node-feat.csv"));
  size_t decimals = 0, max_decimals = 0;
  bool after_point = false;
  for (char ch : text) {
    if (ch == '.') {
      after_point = true;
      decimals = 0;
    } else if (ch == ',' || ch == '\n') {
      after_point = false;
    } else if (after_point) {
      max_decimals = std::max(max_decimals, ++decimals);
    }
  }
  EXPECT_EQ(max_decimals, 3u);
}

std::vector<uint32_t> ParseIds(const std::string& text) {
  std::vector<uint32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    ids.push_back(static_cast<uint32_t>(std::stoul(text.substr(pos, nl - pos))));
    pos = nl + 1;
  }
  return ids;
}

TEST(SynthTest, SplitSizesMatchTheFractions) {
  TempDir tmp;
  SynthOptions o = SmallOptions(tmp.Join("g"));
  o.train_frac = 0.5;
  o.valid_frac = 0.25;
  o.split_name = "custom";
  o.gzip = false;
  const SynthReport rep = Generate(o);
  EXPECT_EQ(rep.num_train, 1500u);
  EXPECT_EQ(rep.num_valid, 750u);
  EXPECT_EQ(rep.num_test, 750u);
  const RawGraph g = Read(o.out_dir);
  EXPECT_EQ(g.split_name, "custom");
  EXPECT_EQ(g.num_train, 1500u);
  EXPECT_EQ(g.num_valid, 750u);
  EXPECT_EQ(g.num_test, 750u);
  for (const char* part : {"train", "valid", "test"}) {
    const std::vector<uint32_t> ids = ParseIds(testutil::ReadFile(tmp.Join("g/split/custom/") + part + ".csv"));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << part;
    EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << part;
  }
}

TEST(SynthTest, DegreesAreHeavyTailed) {
  TempDir tmp;
  SynthOptions o = SmallOptions(tmp.Join("g"));
  o.num_nodes = 20000;
  o.num_communities = 20;  // communities of 1000 leave room for hubs
  o.block_nodes = 0;
  o.bucket_nodes = 0;
  o.feat_dim = 1;
  const SynthReport rep = Generate(o);
  const RawGraph g = Read(o.out_dir);
  std::vector<uint32_t> deg = Degrees(g);
  EXPECT_EQ(*std::max_element(deg.begin(), deg.end()), rep.max_degree);
  EXPECT_EQ(static_cast<uint64_t>(std::count(deg.begin(), deg.end(), 0u)), rep.isolated_nodes);
  std::sort(deg.begin(), deg.end());
  const double mean = 2.0 * static_cast<double>(g.edge_src.size()) / g.num_nodes;
  EXPECT_NEAR(mean, 8.0, 0.1);
  // Pareto tail: hubs with many times the mean degree, and a median below the mean.
  EXPECT_GT(deg.back(), 10 * mean);
  EXPECT_LT(deg[deg.size() / 2], mean);
  const double top1 = deg[deg.size() * 99 / 100];
  EXPECT_GT(top1, 3 * mean);
}

TEST(SynthTest, RefusesAnExistingDirectoryUnlessOverwrite) {
  TempDir tmp;
  SynthOptions o = SmallOptions(tmp.Join("g"));
  Generate(o);
  const auto before = ReadTree(o.out_dir);
  o.seed = 99;
  Result<SynthReport> again = GenerateSynthGraph(o);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(again.status().message().find("--overwrite"), std::string::npos) << again.status().message();
  EXPECT_TRUE(ReadTree(o.out_dir) == before);
  o.overwrite = true;
  Generate(o);
  EXPECT_FALSE(ReadTree(o.out_dir) == before);
  EXPECT_EQ(Entries(tmp.path()), std::vector<std::string>{"g"});
}

TEST(SynthTest, RejectsBadOptions) {
  TempDir tmp;
  const SynthOptions good = SmallOptions(tmp.Join("g"));
  std::vector<SynthOptions> bad(11, good);
  bad[0].num_nodes = 2;
  bad[1].avg_degree = 0;
  bad[2].avg_degree = 2000;  // more than half the complete graph on 3000 nodes
  bad[3].feat_dim = 0;
  bad[4].num_classes = 0;
  bad[5].num_communities = 3001;
  bad[6].intra_fraction = 1.5;
  bad[7].train_frac = 0.9;  // + 0.2 valid > 1
  bad[8].valid_frac = 0;    // an empty valid split
  bad[9].split_name = "a/b";
  bad[10].degree_exponent = 2;
  for (size_t i = 0; i < bad.size(); ++i) {
    Result<SynthReport> r = GenerateSynthGraph(bad[i]);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << i << ": " << r.status().ToString();
  }
  EXPECT_TRUE(Entries(tmp.path()).empty());
}

// ---------------------------------------------------------------------------------
// The memory budget: edge keys through scratch files, the same bytes whatever the budget.

// 100000 nodes, ~800000 edges: 6.4 MB of keys, far more than the 4 MiB working set of TightBudget.
SynthOptions MidOptions(const std::string& dir, uint64_t seed, bool gzip) {
  SynthOptions o;
  o.out_dir = dir;
  o.num_nodes = 100000;
  o.avg_degree = 16;
  o.feat_dim = 4;
  o.num_classes = 5;
  o.seed = seed;
  o.gzip = gzip;
  return o;
}
// The smallest budget accepted: the per-node arrays, the class means and kSynthMinWorkingSet.
uint64_t TightBudget(const SynthOptions& o) {
  return kSynthBytesPerNode * o.num_nodes + 8ull * o.num_classes * o.feat_dim + kSynthMinWorkingSet;
}

// Records the total of each progress phase.
struct PhaseTotals {
  std::map<std::string, uint64_t> total;
  ProgressFn Fn() {
    return [this](std::string_view phase, uint64_t, uint64_t t) { total[std::string(phase)] = t; };
  }
};

SynthReport GenerateWithThreads(const SynthOptions& o, int threads, PhaseTotals* phases = nullptr) {
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  Result<SynthReport> r = GenerateSynthGraph(o, phases ? phases->Fn() : ProgressFn{});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : SynthReport{};
}

// What was left beside the output directories: nothing but the directories themselves.
void ExpectOnlyOutputs(const std::string& dir, std::vector<std::string> outputs) {
  std::sort(outputs.begin(), outputs.end());
  EXPECT_EQ(Entries(dir), outputs);
}

TEST(SynthBudgetTest, TightBudgetGivesTheSameBytesAsTheDefault) {
  TempDir tmp;
  std::vector<std::string> outputs;
  for (const uint64_t seed : {3u, 11u}) {
    for (const bool gzip : {true, false}) {
      const std::string tag = std::to_string(seed) + (gzip ? "-gz" : "-plain");
      SynthOptions ref = MidOptions(tmp.Join("ref-" + tag), seed, gzip);
      PhaseTotals ref_phases;
      const SynthReport ref_rep = GenerateWithThreads(ref, 2, &ref_phases);
      outputs.push_back("ref-" + tag);
      const auto want = ReadTree(ref.out_dir);
      ASSERT_EQ(want.size(), 9u);
      EXPECT_EQ(ref_rep.mem_budget, TightBudget(ref) - kSynthMinWorkingSet + kSynthDefaultWorkingSet);
      EXPECT_EQ(ref_rep.sample_waves, ref_rep.rounds);  // one wave a round fits the default budget

      for (const int threads : {1, 3}) {
        SynthOptions tight = MidOptions(tmp.Join("tight-" + tag + "-" + std::to_string(threads)), seed, gzip);
        tight.mem_budget = TightBudget(tight);
        PhaseTotals phases;
        const SynthReport rep = GenerateWithThreads(tight, threads, &phases);
        outputs.push_back(fs::path(tight.out_dir).filename().string());
        EXPECT_TRUE(ReadTree(tight.out_dir) == want) << tag << " threads " << threads;
        EXPECT_EQ(rep.num_edges, ref_rep.num_edges);
        EXPECT_EQ(rep.samples, ref_rep.samples);
        EXPECT_EQ(rep.duplicates_dropped, ref_rep.duplicates_dropped);
        EXPECT_EQ(rep.rounds, ref_rep.rounds);
        EXPECT_EQ(rep.mem_budget, tight.mem_budget);
        // It did spill: several waves in the first round, sub-buckets finer than the buckets, and
        // at least the first round's samples and every round's union went through scratch files.
        EXPECT_GE(rep.sample_waves, rep.rounds + 3) << tag << " threads " << threads;
        EXPECT_GT(phases.total.at("sort edges"), ref_phases.total.at("sort edges"));
        EXPECT_GE(rep.scratch_bytes, 8 * (rep.samples - rep.self_loops_dropped + rep.num_edges));
        EXPECT_LE(rep.peak_rss_mb, 1e9);  // reported (the process's, so not a bound on this run)
      }
    }
  }
  // No scratch directory, temporary or lock file was left behind.
  ExpectOnlyOutputs(tmp.path(), outputs);
}

// The in-memory generator (before the edge keys went to scratch files) wrote these bytes for
// `cgcn-synth --nodes 100000 --avg-degree 16 --features 4 --classes 5 --seed 3 [--plain]`
// (XXH3-64 of each file, made by that generator's binary).
TEST(SynthBudgetTest, TightBudgetKeepsTheBytesOfTheInMemoryGenerator) {
  const std::map<std::string, uint64_t> plain = {
      {"cgcn-synth.txt", 0xd3f374782d34b66dull},        {"raw/edge.csv", 0xd58ceea233bfd97cull},
      {"raw/node-feat.csv", 0xfd9c742294a717feull},     {"raw/node-label.csv", 0x30ff99c9296b3bd6ull},
      {"raw/num-edge-list.csv", 0x62827780cb6c5e83ull}, {"raw/num-node-list.csv", 0x4391a5cd90352f38ull},
      {"split/random/test.csv", 0x821062c76110824eull}, {"split/random/train.csv", 0xa03447d5ee5d3b65ull},
      {"split/random/valid.csv", 0xee62bea26b93dd6cull}};
  const std::map<std::string, uint64_t> gzip = {
      {"cgcn-synth.txt", 0xd3f374782d34b66dull},           {"raw/edge.csv.gz", 0x82dac5171e528261ull},
      {"raw/node-feat.csv.gz", 0x4bad19680227c003ull},     {"raw/node-label.csv.gz", 0x310319391b1e9d2eull},
      {"raw/num-edge-list.csv.gz", 0xe6f484d14b7822e9ull}, {"raw/num-node-list.csv.gz", 0x2b968393dd406a32ull},
      {"split/random/test.csv.gz", 0x2097a4093d4abfc6ull}, {"split/random/train.csv.gz", 0x046490cbd5b27928ull},
      {"split/random/valid.csv.gz", 0x3192d9cb6237c68aull}};
  TempDir tmp;
  for (const bool gz : {true, false}) {
    for (const bool tight : {true, false}) {
      SynthOptions o = MidOptions(tmp.Join(std::string(gz ? "gz" : "plain") + (tight ? "-tight" : "")), 3, gz);
      if (tight) o.mem_budget = TightBudget(o);
      GenerateWithThreads(o, 2);
      std::map<std::string, uint64_t> got;
      for (const auto& [name, bytes] : ReadTree(o.out_dir)) got[name] = Checksum64(bytes.data(), bytes.size());
      EXPECT_EQ(got, gz ? gzip : plain) << o.out_dir;
    }
  }
}

TEST(SynthBudgetTest, ScratchFilesLiveInTheStagedDirectoryAndGoOnFailure) {
  TempDir tmp;
  SynthOptions o = MidOptions(tmp.Join("g"), 5, true);
  o.mem_budget = TightBudget(o);
  // Stop the run in the second round's merge, when the first round's store and the second's fresh
  // keys are on disk; and once more while edge.csv is written from the last store.
  for (const std::string stop_phase : {"sort edges", "write edge.csv.gz"}) {
    std::vector<std::string> seen;  // the scratch files when the run was stopped
    int sorts = 0;
    const ProgressFn stop = [&](std::string_view phase, uint64_t done, uint64_t) {
      if (phase != stop_phase || done != 1) return;
      if (phase == "sort edges" && ++sorts < 2) return;
      for (const auto& e : fs::directory_iterator(tmp.path())) {
        const fs::path scratch = e.path() / "scratch";
        if (!fs::is_directory(scratch)) continue;
        for (const auto& f : fs::directory_iterator(scratch)) seen.push_back(f.path().filename().string());
      }
      throw std::runtime_error("stopped by the test");
    };
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 1);
    Result<SynthReport> r = GenerateSynthGraph(o, stop);
    ASSERT_FALSE(r.ok()) << stop_phase;
    EXPECT_NE(r.status().message().find("stopped by the test"), std::string::npos) << r.status().ToString();
    std::sort(seen.begin(), seen.end());
    if (stop_phase == "sort edges")
      EXPECT_EQ(seen, (std::vector<std::string>{"edges-1.keys", "edges-2.keys", "fresh-1.keys"}));
    else
      EXPECT_EQ(seen.size(), 1u) << stop_phase;  // the last store alone
    // The staged directory, its scratch files and the lock are gone; nothing was published.
    EXPECT_TRUE(Entries(tmp.path()).empty()) << stop_phase;
  }
  // Success: the published directory holds no scratch.
  const SynthReport rep = GenerateWithThreads(o, 2);
  EXPECT_GT(rep.scratch_bytes, 0u);
  EXPECT_EQ(ReadTree(o.out_dir).size(), 9u);
  EXPECT_FALSE(fs::exists(tmp.Join("g/scratch")));
  ExpectOnlyOutputs(tmp.path(), {"g"});
}

TEST(SynthBudgetTest, RefusesABudgetBelowThePerNodeArrays) {
  TempDir tmp;
  SynthOptions o = MidOptions(tmp.Join("g"), 1, false);
  o.mem_budget = TightBudget(o) - 1;
  Result<SynthReport> r = GenerateSynthGraph(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.status().message();
  // The sentence names the budget, the per-node bytes, the working set and what would do.
  for (const char* want : {"--mem-budget 7.9 MiB (8194463 bytes) is too small",
                           "100000 nodes take 3.9 MiB (40 bytes per node), the class means 160 B",
                           "a working set of at least 4.0 MiB", "give at least 7.9 MiB (8194464 bytes)"})
    EXPECT_NE(m.find(want), std::string::npos) << m;
  // A budget that fits the arrays but not one sampling block of 100000 nodes (~900000 keys).
  o.block_nodes = 100000;
  o.mem_budget = TightBudget(o);
  r = GenerateSynthGraph(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("sampling block 0 of round 0"), std::string::npos) << r.status().message();
  EXPECT_TRUE(Entries(tmp.path()).empty());
  // The same options with room for the block run.
  o.mem_budget = TightBudget(o) + (uint64_t{32} << 20);
  GenerateWithThreads(o, 2);
  ExpectOnlyOutputs(tmp.path(), {"g"});
}

}  // namespace
}  // namespace cgcn
