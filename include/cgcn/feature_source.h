// Where a shard directory's node features came from: the input's node-feat file, or computed by
// cgcn-preprocess from the graph for a featureless input (FastRP, cgcn/fastrp.h). Recorded in
// MANIFEST (version 3, docs/FORMAT.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cgcn {

enum class FeatureSourceKind : uint32_t {
  kFile = 0,    // DIR/raw/node-feat (or data.npz's node_feat)
  kFastRp = 1,  // FastRP embedding of the graph (Chen et al., CIKM 2019)
};

// FastRP's parameters (cgcn/fastrp.h has the algorithm):
//   R        = a very sparse random N x dim matrix: +sqrt(s) or -sqrt(s) each with probability 1/(2s),
//              0 otherwise, drawn from `seed` (entry (v, j) from a hash of (seed, v, j));
//   N_1      = P diag(deg^beta) R,  N_i = P N_{i-1}  (i = 2..k),  P = D^-1 A (rows of isolated nodes 0);
//   features = sum_i weights[i-1] * rownorm(N_i)  (rownorm: each row divided by its L2 norm; a zero
//              row stays zero), then, with standardize, each column shifted to mean 0 and scaled
//              to variance 1 (a constant column to 0), as the paper's code (sklearn's scale);
//   with log_degree, one more column: log(1 + deg), standardized the same way.
// The feature width is dim (+1 with log_degree); k = weights.size().
struct FastRpParams {
  uint32_t dim = 256;
  std::vector<float> weights = {0.0f, 0.0f, 1.0f, 1.0f};
  float beta = 0.0f;      // degree exponent of the normalization
  double sparsity = 0.0;  // s; 0 = sqrt(N) (Li et al.'s very sparse projection), recorded as used
  uint64_t seed = 0;
  bool standardize = true;
  bool log_degree = false;
  uint32_t width() const { return dim + (log_degree ? 1u : 0u); }
};

struct FeatureSource {
  FeatureSourceKind kind = FeatureSourceKind::kFile;
  FastRpParams fastrp;  // kind kFastRp only
  // "file", or "fastrp(dim 256, weights [0,0,1,1], beta 0, s 101.5, seed 0, standardize, ...)".
  std::string Describe() const;
};

}  // namespace cgcn
