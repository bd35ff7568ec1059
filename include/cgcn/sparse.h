// The GCN's sparse aggregation: rows of A_hat = D^-1/2 (A + I) D^-1/2 times a dense matrix.
#pragma once

#include <cstdint>
#include <span>

#include "cgcn/dense.h"

namespace cgcn {

// n rows of a normalized adjacency in CSR. Columns index rows of the dense operand;
// the self loop of row i (weight self_weights[i]) reads operand row self_base + i.
// A view: the spans must outlive it.
struct SparseRows {
  std::span<const uint32_t> offsets;    // [n + 1]
  std::span<const uint32_t> columns;    // [offsets[n]]
  std::span<const float> weights;       // [offsets[n]]
  std::span<const float> self_weights;  // [n]
  uint64_t self_base = 0;
  uint32_t num_rows() const { return static_cast<uint32_t>(self_weights.size()); }
};

// y[n x d] = A_hat rows * x[* x d]  (self loops included). Rows in parallel, deterministic.
void Propagate(const SparseRows& a, ConstMatrixMap x, MatrixMap y);

// y[0, d) += sum_e w[e] * x[cols[e] * stride + (0, d)] over e = 0 .. nnz - 1 in that order: the
// kernel of Propagate, for full-graph evaluation (src/train/evaluate.cc). Each y[k] gets its
// additions in entry order, starting from its current value, so a row summed over several
// calls (each continuing where the previous one stopped) equals one call over all its entries,
// and bitwise equals the plain loop `y[k] += w[e] * x[...]` (compiled with contraction). Asks
// for the rows a few entries ahead: x may be far larger than the caches.
void AccumulateRow(const float* x, size_t stride, const uint32_t* cols, const float* w, uint32_t nnz, float* y,
                   size_t d);

// GCNConv normalization of a symmetric subgraph given as CSR without self loops:
// deg_i = row length + 1, weights[e] = deg_i^-1/2 deg_j^-1/2, self_weights[i] = 1 / deg_i.
// weights and self_weights must already have the right sizes.
void GcnNormalize(std::span<const uint32_t> offsets, std::span<const uint32_t> columns, std::span<float> weights,
                  std::span<float> self_weights);

}  // namespace cgcn
