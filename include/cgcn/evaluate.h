// Exact full-graph evaluation over the shards, within a memory limit (src/train/evaluate.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cgcn/feature_norm.h"
#include "cgcn/gcn.h"
#include "cgcn/manifest.h"
#include "cgcn/metrics.h"
#include "cgcn/predictions.h"
#include "cgcn/progress.h"
#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

// Memory for full-graph evaluation (EvaluateFullGraph). The per-layer activations (two
// [num_nodes x width] float arrays; width counts what neighbours and the node itself need:
// H W, and H W_root, gat's attention scalars or the residual input) stay in memory when they fit in memory_bytes
// together with the evaluation's other buffers; otherwise they go to an unlinked, memory-mapped temporary file in
// tmp_dir and are read in chunks, so resident memory stays within memory_bytes.
struct EvalOptions {
  uint64_t memory_bytes = 0;   // 0: no limit, activations in memory
  std::string tmp_dir;         // empty: $TMPDIR, else the system temporary directory
  bool probabilities = false;  // the plan holds every node's class probabilities (num_nodes x classes)
  // Under mpirun (cgcn/comm.h), every rank calls EvaluateFullGraph and the clusters are split
  // among them: each rank computes pass 0 and every layer but the last for its own range of
  // blocks, and the rows of the next layer's planes are exchanged (MPI_Allgatherv) after each
  // pass; rank 0 computes the last layer and the metrics, whose figures alone are meaningful
  // (the other ranks return an empty Accuracy). Spilled, rank 0 evaluates alone. The results are
  // bitwise those of one process: every row is computed by the same code from the same inputs.
  bool distributed = false;
  // In memory, the most a block of clusters' rows may take (0: 256 MiB, beyond which larger blocks
  // gained nothing). Tests set it small to evaluate a small graph in several blocks.
  uint64_t max_block_bytes = 0;
  // Clusters already decoded (a training run's decoded-cluster cache, BatchStream::Cached):
  // evaluation uses decoded(c) instead of decoding shard c when it is not null. Empty: every
  // cluster is decoded.
  std::function<const ClusterView*(uint32_t)> decoded{};
  // What an evaluation leaves for the next one (EvalReuse), or null: nothing is kept.
  class EvalReuse* reuse = nullptr;
};

// What one in-memory evaluation keeps for the next evaluation of the same shards (a training
// run's evaluations): the two activation arrays, already faulted in, and the graph's rows (sorted
// columns, labels, split, and each entry's weight where a cluster is summed at a time) and degree
// scales, which do not change between evaluations. The next evaluation then neither builds the
// rows again (pass 0 decodes the features alone), nor computes edge weights, nor faults in fresh
// memory for the arrays (on the VMs measured here, first touches of memory were the largest
// single cost of an evaluation). Spilled evaluations, and evaluations split among MPI ranks, keep
// nothing. What is kept is checked against the shards and the plan before it is used, and an
// evaluation that fails leaves nothing kept. Holds the memory until Clear or destruction.
class EvalReuse {
 public:
  EvalReuse();
  ~EvalReuse();
  EvalReuse(const EvalReuse&) = delete;
  EvalReuse& operator=(const EvalReuse&) = delete;
  // Bytes held: activation arrays, rows (with their weights) and degree scales.
  uint64_t bytes() const;
  // Whether the last evaluation left rows that the next one can use.
  bool holds_rows() const;
  void Clear();

  struct State;  // src/train/evaluate.cc
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};
// The directory spilled activations go to: options.tmp_dir, else $TMPDIR, else the system
// temporary directory.
std::string SpillDirectory(const EvalOptions& options);

// How an evaluation will use memory (PlanEvaluation; every figure in bytes).
struct EvalPlan {
  bool spill = false;             // activations in a temporary file instead of memory
  bool fused = false;             // each cluster's sums in a thread's buffer, finished at once (in memory, not gat)
  uint64_t activation_bytes = 0;  // both activation arrays: 2 x num_nodes x width x 4
  uint64_t fixed_bytes = 0;       // degrees, predictions, per-thread decode buffers and mapped shards
  uint64_t block_bytes = 0;       // limit for one block of clusters' work (structure, sums, new rows)
  uint32_t block_width = 0;       // floats a block row is planned with: its sums, as wide as the widest layer
                                  // output, and the planes it reads for itself (0 when fused: no sums)
  uint64_t chunk_bytes = 0;       // spilled activations resident at once (0 in memory)
  uint64_t kept_rows_bytes = 0;   // in memory: every block's rows kept for the next layers (0: rebuilt)
  uint64_t reuse_bytes = 0;       // what EvalReuse would keep between evaluations (0: it keeps nothing)
  uint64_t peak_bytes = 0;        // planned peak of all of the above
  uint64_t min_bytes = 0;         // the least memory_bytes that works (spilling, one cluster per block)
  std::vector<uint32_t> blocks;   // first cluster of each block, then num_clusters
};
// Sizes evaluation from the manifest. Fails with kInvalidArgument and the numbers when even one
// cluster cannot be evaluated within options.memory_bytes.
Result<EvalPlan> PlanEvaluation(const Manifest& m, const GcnConfig& config, const EvalOptions& options,
                                bool with_predictions, uint32_t threads);

// Where an evaluation's wall time went: pass 0 reads the features and computes layer 0's planes
// (and, when the rows serve every layer or are saved to the spilled rows file, builds them from
// the same decode); pass l + 1 (layers[l]) loads the block rows where they were not kept (decode,
// columns sorted; spilled: read back from the rows file), sums the
// neighbours (`sum_s`), then adds bias, norm, ReLU and residual and computes layer l + 1's
// planes, or the scores after the last layer (`finish_s`). In memory (EvalPlan::fused) each
// cluster is summed and finished at once, so the pass's wall time is split between sum_s and
// finish_s in proportion to the CPU time the two took.
struct EvalPassTimes {
  double load_s = 0, sum_s = 0, finish_s = 0;
};
struct EvalStats {
  EvalPlan plan;
  uint64_t spill_read_bytes = 0;   // activation bytes read back from the temporary files
  uint64_t block_rows_built = 0;   // times a block's rows were built (decoded, sorted), over all layers
  uint64_t block_rows_loaded = 0;  // spilled: times a block's rows were read back from the rows file
  uint64_t rows_file_bytes = 0;    // spilled: bytes of the rows file (each block's rows, saved by pass 0)
  bool reused = false;             // the rows, degree scales and arrays an earlier evaluation kept (EvalReuse)
  double pass0_s = 0;
  std::vector<EvalPassTimes> layers;  // [layers]
};

// Accuracy (cgcn/metrics.h): the headline metric of each split, and the multi-label figures.

// Full-graph inference: every edge, each layer kind's aggregation with full-graph degrees (gcn,
// cluster-gcn, sage) or attention over every neighbour (gat), norms in evaluation mode (batch
// norm's running statistics), residual connections, computed layer by layer over the shards.
// predictions (optional) gets [num_nodes] pairs (original id, class) in cluster order;
// probabilities (optional, with options.probabilities) gets [num_nodes x classes] softmax
// probabilities in the same order. Plans for the threads TBB lets it use. The shards must have
// the model's feature width and at most its classes (a graph the model was not trained on is
// fine; its labels, where present, are scored). Exactly the same predictions whether or not
// activations spill: each output row sums its neighbors in ascending node order, in memory or
// chunk by chunk from the file.
Result<Accuracy> EvaluateFullGraph(const ShardDirectory& shards, const Gcn& model, const FeatureNorm& norm,
                                   std::vector<Prediction>* predictions = nullptr, const ProgressFn& progress = {},
                                   const EvalOptions& options = {}, EvalStats* stats = nullptr,
                                   std::vector<float>* probabilities = nullptr);

}  // namespace cgcn
