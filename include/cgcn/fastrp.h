// FastRP node features for a featureless graph (Chen et al., "Fast and Accurate Network
// Embeddings via Very Sparse Random Projection", CIKM 2019), computed out of core over the
// mapped CSR by cgcn-preprocess when the input has no node-feat file. cgcn/feature_source.h
// gives the formula and the parameters; this is how it is computed:
//   pass 0     writes iterate 0, diag(deg^beta) R, to a scratch file (R's entry (v, j) is
//              FastRpProjectionEntry: a hash of (seed, v, j), so no R is held);
//   pass i     maps iterate i-1 read-only and writes iterate i = P (iterate i-1) block by block of
//              rows: row u is the sum of its neighbours' rows in ascending id order (float), divided
//              by deg(u); each new row, L2-normalized and weighted, is added into the output file;
//   last pass  (with standardize) column sums and sums of squares (double, in row order, threads
//              split the columns), then every row shifted and scaled in place.
// Memory: the block buffers, within options.mem_budget; the iterates are page cache (mapped or
// written with pwrite), 2 x N x dim x 4 bytes of scratch disk beside the N x width x 4 output.
// The result is the same for every thread count and budget: every row and every column sum is
// computed in one fixed order.
#pragma once

#include <cstdint>
#include <string>

#include "cgcn/csr.h"
#include "cgcn/feature_source.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"

namespace cgcn {

struct FastRpOptions {
  FastRpParams params;      // sparsity 0 is resolved to sqrt(N) (at least 1)
  std::string scratch_dir;  // the two iterate files go here (removed at the end, and on failure)
  std::string out_path;     // features [N x params.width()] f32 rows, host byte order (created)
  uint64_t mem_budget = 0;  // bytes for the block buffers; 0 = 64 MiB
  ProgressFn progress;      // phases "fastrp iteration i", "fastrp standardize"
};

struct FastRpReport {
  FastRpParams params;  // as used (sparsity resolved)
  uint64_t block_rows = 0;
  uint64_t scratch_bytes = 0;  // the two iterate files
  double seconds = 0;
};

// Checks the parameters (dim 1 to 2^20, 1 to 64 weights, finite values, s >= 1) with messages
// naming the flags (--fastrp-dim, --fastrp-weights, --fastrp-beta, --fastrp-sparsity).
Status ValidateFastRpParams(const FastRpParams& p);

// R's entry (v, j): +sqrt(s) with probability 1/(2s), -sqrt(s) with probability 1/(2s), else 0,
// from u = SplitMix64(seed ^ SplitMix64(v * dim + j)) as a uniform (u >> 11) * 2^-53.
float FastRpProjectionEntry(uint64_t seed, double s, uint32_t dim, uint32_t v, uint32_t j);

Result<FastRpReport> ComputeFastRp(const CsrView& graph, const FastRpOptions& options);

}  // namespace cgcn
