// The model: L graph convolution layers (GCNConv, ClusterGCNConv, SAGEConv), ReLU and dropout
// between them, with optional normalization and residual connections on the hidden layers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/dense.h"
#include "cgcn/sparse.h"
#include "cgcn/status.h"

namespace cgcn {

// The convolution of every layer (the numbers are stored in model files).
//   gcn:         C = A_hat (H W) + b, A_hat = D^-1/2 (A + I) D^-1/2 (PyG GCNConv).
//   cluster-gcn: C = (A' + lambda diag(A')) (H W) + H W_root + b, A' = (D + I)^-1 (A + I)
//                (PyG ClusterGCNConv: lin_out with bias, lin_root without).
//   sage:        C = mean_{j in N(i)} (H W)_j + H W_root + b, no self loop, 0 for a node without
//                neighbours (PyG SAGEConv with mean aggregation: lin_l with bias, lin_r without).
//   gat:         C = sum_{j in N(i) + i} alpha_ij (H W)_j + b per head, alpha_i. = softmax_j
//                LeakyReLU_0.2(a_src . (H W)_j + a_dst . (H W)_i) (PyG GATConv, self loops added,
//                no attention dropout). Hidden layers: `heads` heads of hidden / heads units each,
//                concatenated; the last layer: one head.
// D counts the neighbours in the graph the layer runs on: the batch's subgraph in training, the
// full graph in evaluation.
enum class LayerKind : uint32_t { kGcn = 0, kClusterGcn = 1, kSage = 2, kGat = 3 };
// Normalization of a hidden layer's convolution output, before the activation: none, LayerNorm
// over the row's units, or BatchNorm over the batch's rows (running statistics, momentum 0.1, in
// evaluation; torch.nn.BatchNorm1d). Both with eps 1e-5 and a learned scale and shift.
enum class NormKind : uint32_t { kNone = 0, kLayer = 1, kBatch = 2 };
const char* LayerKindName(LayerKind kind);  // "gcn", "cluster-gcn", "sage", "gat"
const char* NormKindName(NormKind kind);    // "none", "layer", "batch"
// The kind a name gives; false for an unknown name.
bool ParseLayerKind(std::string_view name, LayerKind* kind);
bool ParseNormKind(std::string_view name, NormKind* kind);

struct GcnConfig {
  uint32_t in_dim = 0;
  uint32_t hidden = 128;
  uint32_t out_dim = 0;
  uint32_t layers = 2;   // >= 1; layer l maps dims[l] -> dims[l+1]
  float dropout = 0.5f;  // applied after ReLU of every layer but the last
  // Dropout on the input features in training (Kipf & Welling's GCN and PyG's examples drop the
  // inputs too); 0 leaves them alone. A training setting: the model file does not store it.
  float input_dropout = 0.0f;
  LayerKind kind = LayerKind::kGcn;    // the convolution of every layer
  float diag_lambda = 0.0f;            // cluster-gcn: the weight of diag(A') added to A'
  bool residual = false;               // hidden layers whose input and output widths match add their input
  NormKind norm = NormKind::kNone;     // on every hidden layer (not the last)
  uint32_t heads = 1;                  // gat: attention heads of the hidden layers (hidden % heads == 0)
  std::vector<uint32_t> Dims() const;  // [layers + 1]: in, hidden..., out

  // Today's GCN (GCNConv, no norm, no residual): the optimized path (aggregate-first, Batch::propagated).
  bool Plain() const { return kind == LayerKind::kGcn && !residual && norm == NormKind::kNone; }
  // Whether the layers have a root weight W_root (cluster-gcn, sage).
  bool HasRoot() const { return kind == LayerKind::kClusterGcn || kind == LayerKind::kSage; }
  // Attention heads of layer l (gat: `heads` on hidden layers, 1 on the last; else 1).
  uint32_t HeadsAt(uint32_t l) const { return kind == LayerKind::kGat && l + 1 < layers ? heads : 1; }
  // Whether layer l is normalized (a hidden layer with a norm).
  bool Normalized(uint32_t l) const { return norm != NormKind::kNone && l + 1 < layers; }
  // Whether layer l adds its input to its output: a hidden layer of equal input and output width.
  bool ResidualAt(uint32_t l) const;
  // The layer options as text ("model=sage diag_lambda=0 residual=1 norm=batch"), for checkpoint
  // signatures and reports.
  std::string LayerSignature() const;
};

// All parameters in one contiguous array, layer by layer: W_l [dims[l] x dims[l+1]] row-major,
// b_l [dims[l+1]], then W_root_l [dims[l] x dims[l+1]] (cluster-gcn, sage) or the attention
// vectors a_src_l, a_dst_l [dims[l+1]] (gat; head h at [h C, (h + 1) C)), then the norm's
// scale gamma_l and shift beta_l [dims[l+1]] (normalized layers). A plain GCN is W_0, b_0, W_1,
// b_1, ... as ever. Gradients in a parallel array. Adam and checkpoints see flat arrays.
// Buffers (not trained, not in Adam): batch norm's running mean and variance [dims[l+1]] each,
// per normalized layer, in one flat array.
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
  // W_root_l (config().HasRoot()).
  MatrixMap root_weight(uint32_t l);
  ConstMatrixMap root_weight(uint32_t l) const;
  // a_src_l, a_dst_l (gat).
  Eigen::Map<Eigen::RowVectorXf> att_src(uint32_t l);
  Eigen::Map<const Eigen::RowVectorXf> att_src(uint32_t l) const;
  Eigen::Map<Eigen::RowVectorXf> att_dst(uint32_t l);
  Eigen::Map<const Eigen::RowVectorXf> att_dst(uint32_t l) const;
  size_t att_offset(uint32_t l) const { return att_offset_[l]; }
  // gat in evaluation: the attention scalars of rows z [n x dims[l+1]] (Z = H W_l): src, dst [n x heads].
  void AttentionScalars(uint32_t l, ConstMatrixMap z, MatrixMap src, MatrixMap dst) const;
  // gamma_l, beta_l (config().Normalized(l)).
  Eigen::Map<Eigen::RowVectorXf> norm_scale(uint32_t l);
  Eigen::Map<const Eigen::RowVectorXf> norm_scale(uint32_t l) const;
  Eigen::Map<Eigen::RowVectorXf> norm_shift(uint32_t l);
  Eigen::Map<const Eigen::RowVectorXf> norm_shift(uint32_t l) const;
  // Batch norm's running statistics of layer l (norm batch, config().Normalized(l)).
  Eigen::Map<Eigen::RowVectorXf> running_mean(uint32_t l);
  Eigen::Map<Eigen::RowVectorXf> running_var(uint32_t l);
  std::span<float> buffers() { return buffers_; }
  std::span<const float> buffers() const { return buffers_; }
  // Offset of a parameter block in params() (for tests and files): W, b, W_root, gamma, beta.
  size_t weight_offset(uint32_t l) const { return w_offset_[l]; }
  size_t root_offset(uint32_t l) const { return root_offset_[l]; }
  size_t scale_offset(uint32_t l) const { return gamma_offset_[l]; }

  // Layer l's norm in evaluation mode (layer norm, or batch norm with the running statistics),
  // then its scale and shift, on every row of h [n x dims[l+1]] in place. The same arithmetic in
  // Forward(training = false) and in the full-graph evaluation.
  void NormalizeForEval(uint32_t l, MatrixMap h) const;

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
  // (otherwise computed here); it must stay valid until Backward. With training and
  // input_dropout, the model works on its own copy of x with the dropped entries zeroed (and the
  // kept ones scaled by 1 / (1 - p)) and ignores propagated_x.
  ConstMatrixMap Forward(const SparseRows& adj, ConstMatrixMap x, bool training, uint64_t dropout_seed,
                         const float* propagated_x = nullptr);
  // Accumulates into grads() (call ZeroGrad first) the gradient of the loss whose gradient
  // with respect to the logits of the last Forward is grad_logits [n x out_dim].
  void Backward(const SparseRows& adj, ConstMatrixMap x, ConstMatrixMap grad_logits);
  void ZeroGrad();

  // Sizes, for memory plans. Parameters of a model with `config` (params().size()):
  static uint64_t ParamCount(const GcnConfig& config);
  // Its buffers (buffers().size()):
  static uint64_t BufferCount(const GcnConfig& config);
  // Its parameters and gradients:
  static uint64_t PlannedBytes(const GcnConfig& config);
  // The work buffers a Forward and Backward over `nodes` nodes hold: per layer the
  // pre-activation, output and mask; A_hat x; two gradient buffers (more for the general path:
  // root term, normalized values, aggregation weights, four gradient buffers); with
  // input_dropout, the dropped copy of x.
  // `entries`: the batch's adjacency entries (the general path's per-entry buffers).
  static uint64_t WorkspaceBytes(const GcnConfig& config, uint64_t nodes, uint64_t entries = 0);

 private:
  // The path for every configuration but Plain() (src/model/layers.cc).
  ConstMatrixMap ForwardGeneral(const SparseRows& adj, ConstMatrixMap x, bool training, uint64_t dropout_seed);
  void BackwardGeneral(const SparseRows& adj, ConstMatrixMap x, ConstMatrixMap grad_logits);
  // x with input dropout applied, in x_drop_ (sets x_dropped_ for Backward).
  ConstMatrixMap DropInput(ConstMatrixMap x, uint64_t dropout_seed);
  // Builds x's CSR and CSC (sparse_x_) when at most 1/8 of x is non-zero.
  void BuildSparseInput(ConstMatrixMap x);
  // gat: out = attention-weighted sums of z over each row's neighbours and itself (keeps the
  // scalars and coefficients for the backward pass); dz = d loss / dz given dc = d loss / d out
  // (accumulates the attention vectors' gradients).
  void GatForward(uint32_t l, const SparseRows& adj, ConstMatrixMap z, MatrixMap out);
  void GatBackward(uint32_t l, const SparseRows& adj, ConstMatrixMap dc, MatrixMap dz);

  GcnConfig config_;
  std::vector<uint32_t> dims_;
  std::vector<size_t> w_offset_, b_offset_, root_offset_, att_offset_, gamma_offset_, beta_offset_, mean_offset_,
      var_offset_;
  std::vector<float> params_, grads_, buffers_;
  bool aggregate_first_ = false;
  // The last training Forward's input after input dropout (config_.input_dropout > 0).
  Workspace x_drop_;
  bool x_dropped_ = false;
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
  // General path: the aggregation (cluster-gcn, sage) and its transpose, per batch; per layer the
  // normalized values (xhat) and the norm's reciprocal standard deviations (per row for layer
  // norm, per unit for batch norm); whether the last Forward was training.
  std::vector<float> agg_w_, agg_self_, agg_tw_;
  std::vector<Workspace> xhat_, rstd_;
  Workspace grad_c_, grad_d_, dw_;
  std::vector<float> zeros_;
  bool last_training_ = false;
  // gat: per layer the attention scalars [n x 2 heads] (src, then dst) and coefficients
  // [(entries + n) x heads] (entries in CSR order, then the self loops); the batch's entries
  // grouped by column (source row and entry index, ascending source) for the backward pass.
  std::vector<Workspace> att_, alpha_;
  Workspace dpre_, datt_;
  std::vector<uint32_t> t_src_, t_entry_;
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
