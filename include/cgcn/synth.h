// Synthetic graphs in the OGB node-property-prediction raw layout (see raw_reader.h), for
// tests and benchmarks.
//
// The model is a degree-corrected stochastic block model sampled Chung-Lu style:
//   - nodes fall into K communities of (nearly) equal size; membership is a seeded random
//     permutation of the node ids, so ids carry no locality;
//   - node u has a weight w_u drawn from a Pareto law (exponent `degree_exponent`, capped so
//     that a hub cannot outgrow its community), and its expected degree is proportional to w_u;
//   - an edge sample picks u with probability proportional to w_u (per node: floor/ceil of its
//     expected count), then v proportional to w_v inside u's community with probability
//     `intra_fraction`, else among all nodes; self loops and repeated pairs are dropped, and
//     top-up rounds sample more until the target N * avg_degree / 2 edges is (nearly) reached;
//   - community c has a dominant class (c mod C); a node takes it with probability
//     `label_purity`, else a uniformly random class;
//   - features = class mean (entries N(0, 1), one vector per class) + N(0, noise^2) per entry,
//     printed with `feature_decimals` decimals;
//   - a random split with exactly round(N * train_frac) train and round(N * valid_frac) valid nodes,
//     the rest test.
//
// Memory is bounded whatever the edge count (SynthOptions::mem_budget): the per-node arrays stay
// in RAM, the edge keys do not. Each round samples its blocks in waves that fit the working set
// and spills every wave, grouped by sub-bucket (a slice of an edge bucket's id range), to a scratch
// file; then each group of sub-buckets that fits is read back, radix-sorted, deduplicated and merged
// into the store of the edges drawn so far (a scratch file, rewritten each round); edge.csv is
// written from the last store in pieces. Scratch files live in the staged output directory and are
// removed before it is published (or with it on failure). The bytes are those of an all-in-memory
// run: the budget changes how the work is cut, never the sets, counts or order it produces.
//
// Every random stream is derived from (seed, purpose, block index) with splitmix64, and work is
// done in fixed-size blocks, so the bytes written depend on the options only, never on the
// number of threads. Gzip output is a concatenation of independently compressed members (one
// per block of lines), compressed in parallel; any gzip reader, Boost's included, reads it as one
// stream.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

struct SynthOptions {
  std::string out_dir;        // RAW_DIR, created atomically (as cgcn-preprocess's --out: src/util/output_dir.h)
  uint32_t num_nodes = 0;     // N, in [3, 2^31 - 1]
  double avg_degree = 10;     // target undirected edges = round(N * avg_degree / 2)
  uint32_t feat_dim = 100;    // F
  uint32_t num_classes = 10;  // C, in [1, 65536]
  uint64_t seed = 0;
  uint32_t num_communities = 0;   // K; 0 = max(1, round(N / 1000))
  double intra_fraction = 0.8;    // share of edge samples whose second end stays in the community
  double degree_exponent = 2.5;   // Pareto exponent of the degree tail, > 2
  double label_purity = 0.8;      // chance that a node has its community's dominant class
  double noise = 3.0;             // standard deviation of the Gaussian feature noise
  uint32_t feature_decimals = 3;  // digits after the point in node-feat.csv (trailing zeros cut)
  std::string split_name = "random";
  double train_frac = 0.6;
  double valid_frac = 0.2;  // test gets the rest; each part must get at least one node
  bool gzip = true;         // write *.csv.gz (else *.csv)
  int gzip_level = 1;
  // Replace an existing out_dir once the new one is complete, and only a directory cgcn-synth
  // made (CheckSynthDirectoryIsCgcns).
  bool overwrite = false;
  // Tuning; 0 = automatic (a function of N and F only). Changing them changes the output bytes.
  uint32_t block_nodes = 0;   // nodes per sampling/feature/label block (and per gzip member)
  uint32_t bucket_nodes = 0;  // width in node ids of an edge bucket (edges keyed by their smaller end)
  // Memory for the generator's arrays and buffers, in bytes; 0 = automatic: the per-node arrays
  // (kSynthBytesPerNode per node, plus 8 * classes * features for the class means) and
  // kSynthDefaultWorkingSet for the edges. The edge keys live in scratch files inside the staged
  // output directory (removed before it is published), so the edge count does not bound it. A
  // budget below the per-node arrays plus kSynthMinWorkingSet is refused. Does not change the bytes.
  uint64_t mem_budget = 0;
};

inline constexpr uint64_t kSynthBytesPerNode = 40;  // alias tables, weights, permutation, labels, split...
inline constexpr uint64_t kSynthMinWorkingSet = uint64_t{4} << 20;
inline constexpr uint64_t kSynthDefaultWorkingSet = uint64_t{1} << 30;

struct SynthReport {
  uint32_t num_nodes = 0;
  uint32_t num_communities = 0;
  uint64_t target_edges = 0;        // round(N * avg_degree / 2)
  uint64_t num_edges = 0;           // lines in edge.csv
  uint64_t intra_edges = 0;         // edges with both ends in one community
  uint64_t samples = 0;             // edge samples drawn, over all rounds
  uint64_t self_loops_dropped = 0;  // samples that hit their own node
  uint64_t duplicates_dropped = 0;  // samples of a pair already drawn
  uint32_t rounds = 0;              // sampling rounds (1 + top-ups)
  uint32_t max_degree = 0;
  uint64_t isolated_nodes = 0;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  uint64_t text_bytes = 0;    // bytes of CSV text written (before compression)
  uint64_t stored_bytes = 0;  // bytes of the files as stored
  double seconds_setup = 0, seconds_edges = 0, seconds_write = 0;
  double peak_rss_mb = 0;           // the process's peak resident set when the directory was published
  uint64_t mem_budget = 0;          // the budget that ran (the automatic one when options said 0)
  uint64_t scratch_bytes = 0;       // bytes of edge keys written to scratch files, over all rounds
  uint32_t sample_waves = 0;        // sampling waves over all rounds (each spilled to its own file)
  std::vector<uint32_t> community;  // [num_nodes] community of each node id (not written to disk)
  // One line of JSON with the figures above and the options that made them (cgcn-synth's last line).
  std::string SummaryJson(const SynthOptions& options) const;
};

// Generates the graph and writes out_dir/raw/{num-node-list,num-edge-list,edge,node-feat,
// node-label}.csv[.gz] and out_dir/split/NAME/{train,valid,test}.csv[.gz]. InvalidArgument for
// bad options or an existing out_dir without `overwrite`; IoError names the file on a failed
// write. On failure nothing is left behind and an existing out_dir is untouched. Progress
// phases: "sample edges", "sort edges" and "write <file>".
Result<SynthReport> GenerateSynthGraph(const SynthOptions& options, const ProgressFn& progress = {});

// Every generated directory holds this file: what made it, and with which options.
inline constexpr const char* kSynthMarkerName = "cgcn-synth.txt";
// Ok when `dir` holds nothing but what cgcn-synth writes, including its kSynthMarkerName file, so
// that --overwrite may replace it; otherwise kInvalidArgument naming what is there.
Status CheckSynthDirectoryIsCgcns(const std::string& dir);

}  // namespace cgcn
