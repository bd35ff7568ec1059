// The model: L GCNConv layers (transform, propagate, bias), ReLU and dropout between them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cgcn/dense.h"
#include "cgcn/sparse.h"
#include "cgcn/status.h"

namespace cgcn {

struct GcnConfig {
  uint32_t in_dim = 0;
  uint32_t hidden = 128;
  uint32_t out_dim = 0;
  uint32_t layers = 2;                 // >= 1; layer l maps dims[l] -> dims[l+1]
  float dropout = 0.5f;                // applied after ReLU of every layer but the last (never on inputs)
  std::vector<uint32_t> Dims() const;  // [layers + 1]: in, hidden..., out
};

// All parameters in one contiguous array (W_0, b_0, W_1, b_1, ...), W_l [dims[l] x dims[l+1]]
// row-major, b_l [dims[l+1]]; gradients in a parallel array. Adam and checkpoints see flat arrays.
class Gcn {
 public:
  // Glorot-uniform W (as PyG's glorot), zero b, from `seed`.
  Gcn(const GcnConfig& config, uint64_t seed);

  const GcnConfig& config() const { return config_; }
  std::span<float> params() { return params_; }
  std::span<const float> params() const { return params_; }
  std::span<float> grads() { return grads_; }
  MatrixMap weight(uint32_t l);
  ConstMatrixMap weight(uint32_t l) const;
  Eigen::Map<Eigen::RowVectorXf> bias(uint32_t l);
  Eigen::Map<const Eigen::RowVectorXf> bias(uint32_t l) const;
  MatrixMap weight_grad(uint32_t l);
  Eigen::Map<Eigen::RowVectorXf> bias_grad(uint32_t l);

  // Whether layer 0 is computed as (A_hat X) W_0 rather than A_hat (X W_0): the same function,
  // cheaper when in_dim <= 2 * dims[1] (propagating X costs in_dim per edge once, while
  // propagating X W_0 costs dims[1] per edge in the forward pass and again in the backward
  // pass). A_hat X does not depend on the parameters, so the pipeline can compute it while the
  // previous batch trains (Batch::propagated).
  bool AggregatesInputFirst() const { return aggregate_first_; }
  // Whether the last Forward ran layer 0 over the input's non-zeros (transform first, at most
  // 1/8 of the input non-zero, as with bag-of-words features).
  bool LastInputWasSparse() const { return sparse_x_; }

  // Forward pass over a batch: x [n x in_dim], returns logits [n x out_dim] (valid until the
  // next call). With training, dropout masks are drawn from (dropout_seed, layer, element index),
  // so the result does not depend on the thread count. Keeps what Backward needs.
  // propagated_x: A_hat x [n x in_dim] when AggregatesInputFirst() and the caller has it
  // (otherwise computed here); it must stay valid until Backward.
  ConstMatrixMap Forward(const SparseRows& adj, ConstMatrixMap x, bool training, uint64_t dropout_seed,
                         const float* propagated_x = nullptr);
  // Accumulates into grads() (call ZeroGrad first) the gradient of the loss whose gradient
  // with respect to the logits of the last Forward is grad_logits [n x out_dim].
  void Backward(const SparseRows& adj, ConstMatrixMap x, ConstMatrixMap grad_logits);
  void ZeroGrad();

  // Sizes, for memory plans. Parameters of a model with `config` (params().size()):
  static uint64_t ParamCount(const GcnConfig& config);
  // Its parameters and gradients:
  static uint64_t PlannedBytes(const GcnConfig& config);
  // The work buffers a Forward and Backward over `nodes` nodes hold: per layer the
  // pre-activation, output and mask; A_hat x; two gradient buffers.
  static uint64_t WorkspaceBytes(const GcnConfig& config, uint64_t nodes);

 private:
  GcnConfig config_;
  std::vector<uint32_t> dims_;
  std::vector<size_t> w_offset_, b_offset_;
  std::vector<float> params_, grads_;
  bool aggregate_first_ = false;
  // Layer 0 with transform first and a sparse input (bag-of-words features): X in CSR and CSC,
  // rebuilt per batch when at most 1/8 of X is non-zero (SparseInput in gcn.cc).
  bool sparse_x_ = false;
  std::vector<uint32_t> x_row_offsets_, x_cols_, x_col_offsets_, x_rows_;
  std::vector<float> x_vals_, x_col_vals_;
  std::vector<uint32_t> x_cols_cursor_;
  Workspace ax_ws_;            // [n x in_dim] A_hat x when Forward computed it itself
  const float* ax_ = nullptr;  // A_hat x of the last Forward (aggregate-first only)
  // Per-layer work buffers, reused across steps.
  std::vector<Workspace> z_;     // [n x dims[l+1]]  x_l W_l
  std::vector<Workspace> h_;     // [n x dims[l+1]]  layer output after ReLU/dropout (input of layer l+1)
  std::vector<Workspace> mask_;  // [n x dims[l+1]]  ReLU * dropout scale factors (0 where dropped/negative)
  Workspace grad_a_, grad_b_, scratch_;
  Eigen::Index n_ = 0;
};

// Mean softmax cross-entropy over rows with mask[i] != 0; grad [n x C] gets d(loss)/d(logits)
// (zero on unmasked rows). Returns the loss and sets *count to the number of masked rows
// (loss 0 and zero grad when there are none). labels [n].
float SoftmaxCrossEntropy(ConstMatrixMap logits, std::span<const uint32_t> labels, std::span<const uint8_t> mask,
                          MatrixMap grad, uint32_t* count);

// Adam with L2 weight decay added to the gradient (torch.optim.Adam semantics).
class Adam {
 public:
  Adam(size_t num_params, float lr, float weight_decay, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f);
  void Step(std::span<float> params, std::span<const float> grads);
  uint64_t steps() const { return t_; }
  float lr() const { return lr_; }
  void set_lr(float lr) { lr_ = lr; }  // learning-rate schedules
  std::span<const float> m() const { return m_; }
  std::span<const float> v() const { return v_; }
  // Restores state saved from steps()/m()/v() (checkpoints); false if the sizes differ.
  bool Restore(uint64_t steps, std::span<const float> m, std::span<const float> v) {
    if (m.size() != m_.size() || v.size() != v_.size()) return false;
    t_ = steps;
    m_.assign(m.begin(), m.end());
    v_.assign(v.begin(), v.end());
    return true;
  }
  // Memory the optimizer's state (m and v) holds for `num_params` parameters, for memory plans.
  static uint64_t PlannedBytes(uint64_t num_params) { return 2 * num_params * sizeof(float); }

 private:
  float lr_, wd_, b1_, b2_, eps_;
  uint64_t t_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace cgcn
