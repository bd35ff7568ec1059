// The GCN model (PyG GCNConv stack), its backward pass and the softmax cross-entropy loss.
#include "cgcn/gcn.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <random>

#include "model/kernels.h"

namespace cgcn {

using namespace model_detail;

std::vector<uint32_t> GcnConfig::Dims() const {
  assert(layers >= 1);
  std::vector<uint32_t> dims(layers + 1, hidden);
  dims.front() = in_dim;
  dims.back() = out_dim;
  return dims;
}

const char* LayerKindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kGcn:
      return "gcn";
    case LayerKind::kClusterGcn:
      return "cluster-gcn";
    case LayerKind::kSage:
      return "sage";
    case LayerKind::kGat:
      return "gat";
  }
  return "?";
}

const char* NormKindName(NormKind kind) {
  switch (kind) {
    case NormKind::kNone:
      return "none";
    case NormKind::kLayer:
      return "layer";
    case NormKind::kBatch:
      return "batch";
  }
  return "?";
}

bool ParseLayerKind(std::string_view name, LayerKind* kind) {
  for (LayerKind k : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    if (name == LayerKindName(k)) {
      *kind = k;
      return true;
    }
  return false;
}

bool ParseNormKind(std::string_view name, NormKind* kind) {
  for (NormKind k : {NormKind::kNone, NormKind::kLayer, NormKind::kBatch})
    if (name == NormKindName(k)) {
      *kind = k;
      return true;
    }
  return false;
}

bool GcnConfig::ResidualAt(uint32_t l) const {
  if (!residual || l + 1 >= layers) return false;
  const uint32_t d_in = l == 0 ? in_dim : hidden;
  return d_in == hidden;
}

std::string GcnConfig::LayerSignature() const {
  char buf[192];
  std::snprintf(buf, sizeof buf, "model=%s diag_lambda=%.9g heads=%u residual=%d norm=%s", LayerKindName(kind),
                static_cast<double>(diag_lambda), heads, residual ? 1 : 0, NormKindName(norm));
  std::string s = buf;
  // Only when set, so that the signatures of checkpoints written before it existed still match.
  if (input_dropout > 0.0f) {
    std::snprintf(buf, sizeof buf, " input_dropout=%.9g", static_cast<double>(input_dropout));
    s += buf;
  }
  return s;
}

uint64_t Gcn::ParamCount(const GcnConfig& config) {
  const std::vector<uint32_t> dims = config.Dims();
  uint64_t params = 0;
  for (uint32_t l = 0; l + 1 < dims.size(); ++l) {
    const uint64_t w = uint64_t{dims[l]} * dims[l + 1];
    params += w + dims[l + 1];
    if (config.HasRoot()) params += w;
    if (config.kind == LayerKind::kGat) params += 2 * uint64_t{dims[l + 1]};
    if (config.Normalized(l)) params += 2 * uint64_t{dims[l + 1]};
  }
  return params;
}

uint64_t Gcn::BufferCount(const GcnConfig& config) {
  if (config.norm != NormKind::kBatch) return 0;
  const std::vector<uint32_t> dims = config.Dims();
  uint64_t buffers = 0;
  for (uint32_t l = 0; l + 1 < dims.size(); ++l)
    if (config.Normalized(l)) buffers += 2 * uint64_t{dims[l + 1]};
  return buffers;
}

uint64_t Gcn::PlannedBytes(const GcnConfig& config) {
  return 2 * ParamCount(config) * sizeof(float) + BufferCount(config) * sizeof(float);
}

uint64_t Gcn::WorkspaceBytes(const GcnConfig& config, uint64_t nodes, uint64_t entries) {
  const std::vector<uint32_t> dims = config.Dims();
  uint64_t sum_out = 0, max_dim = 0;
  for (size_t l = 1; l < dims.size(); ++l) sum_out += dims[l];
  for (uint32_t d : dims) max_dim = std::max<uint64_t>(max_dim, d);
  const uint64_t dropped_x = config.input_dropout > 0.0f ? nodes * sizeof(float) * config.in_dim : 0;
  if (!config.Plain()) {
    // z_, h_, mask_ and xhat_ per layer; the per-row norm statistics (one float a row and layer);
    // the aggregation's weights and transposed weights (a float each per entry) and self weights;
    // four gradient buffers and dW. No A_hat x.
    uint64_t bytes = nodes * sizeof(float) * (4 * sum_out + config.layers + 1 + 4 * max_dim) +
                     2 * entries * sizeof(float) + max_dim * max_dim * sizeof(float);
    if (config.kind == LayerKind::kGat) {
      // Per layer the attention scalars and coefficients; the coefficients' gradients and the
      // scalars' gradients of one layer; the entries grouped by column (two u32 each).
      for (uint32_t l = 0; l < config.layers; ++l)
        bytes += (nodes * 2 + entries + nodes) * config.HeadsAt(l) * sizeof(float);
      bytes += ((entries + nodes) + 2 * nodes) * config.heads * sizeof(float) + 2 * entries * sizeof(uint32_t);
    }
    return bytes + dropped_x;
  }
  // z_, h_ and mask_ per layer; ax_ws_; grad_a_ and grad_b_.
  return nodes * sizeof(float) * (3 * sum_out + config.in_dim + 2 * max_dim) + dropped_x;
}

Gcn::Gcn(const GcnConfig& config, uint64_t seed) : config_(config), dims_(config.Dims()) {
  const uint32_t layers = config_.layers;
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t total = 0, buffers = 0;
  for (uint32_t l = 0; l < layers; ++l) {
    const size_t w = static_cast<size_t>(dims_[l]) * dims_[l + 1];
    w_offset_.push_back(total);
    total += w;
    b_offset_.push_back(total);
    total += dims_[l + 1];
    root_offset_.push_back(config_.HasRoot() ? total : kNone);
    if (config_.HasRoot()) total += w;
    const bool gat = config_.kind == LayerKind::kGat;
    att_offset_.push_back(gat ? total : kNone);
    if (gat) total += 2 * static_cast<size_t>(dims_[l + 1]);
    const bool normalized = config_.Normalized(l);
    gamma_offset_.push_back(normalized ? total : kNone);
    beta_offset_.push_back(normalized ? total + dims_[l + 1] : kNone);
    if (normalized) total += 2 * static_cast<size_t>(dims_[l + 1]);
    const bool batch = normalized && config_.norm == NormKind::kBatch;
    mean_offset_.push_back(batch ? buffers : kNone);
    var_offset_.push_back(batch ? buffers + dims_[l + 1] : kNone);
    if (batch) buffers += 2 * static_cast<size_t>(dims_[l + 1]);
  }
  params_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
  buffers_.assign(buffers, 0.0f);
  aggregate_first_ = config_.Plain() && dims_[0] <= 2 * dims_[1];
  z_.resize(layers);
  h_.resize(layers);
  mask_.resize(layers);
  xhat_.resize(layers);
  rstd_.resize(layers);
  att_.resize(layers);
  alpha_.resize(layers);

  // PyG glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); per layer W, then W_root, row-major.
  // The uniform draw is spelled out (not std::uniform_real_distribution) so the weights are
  // the same with every standard library. Norm scales start at 1 and shifts at 0; batch norm's
  // running statistics at mean 0 and variance 1 (as torch).
  std::mt19937_64 rng(seed);
  for (uint32_t l = 0; l < layers; ++l) {
    const float a = std::sqrt(6.0f / static_cast<float>(dims_[l] + dims_[l + 1]));
    const size_t count = static_cast<size_t>(dims_[l]) * dims_[l + 1];
    for (size_t offset : {w_offset_[l], root_offset_[l]}) {
      if (offset == kNone) continue;
      float* w = params_.data() + offset;
      for (size_t i = 0; i < count; ++i) w[i] = a * (2.0f * UnitFloat(rng()) - 1.0f);
    }
    if (att_offset_[l] != kNone) {  // PyG glorot on [1, heads, C]: a = sqrt(6 / (heads + C))
      const uint32_t heads = config_.HeadsAt(l);
      const float b = std::sqrt(6.0f / static_cast<float>(heads + dims_[l + 1] / heads));
      float* att = params_.data() + att_offset_[l];
      for (size_t i = 0; i < 2 * static_cast<size_t>(dims_[l + 1]); ++i) att[i] = b * (2.0f * UnitFloat(rng()) - 1.0f);
    }
    if (gamma_offset_[l] != kNone) std::fill_n(params_.data() + gamma_offset_[l], dims_[l + 1], 1.0f);
    if (var_offset_[l] != kNone) std::fill_n(buffers_.data() + var_offset_[l], dims_[l + 1], 1.0f);
  }
}

MatrixMap Gcn::weight(uint32_t l) {
  assert(l < config_.layers);
  return MatrixMap(params_.data() + w_offset_[l], dims_[l], dims_[l + 1]);
}

ConstMatrixMap Gcn::weight(uint32_t l) const {
  assert(l < config_.layers);
  return ConstMatrixMap(params_.data() + w_offset_[l], dims_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::bias(uint32_t l) {
  assert(l < config_.layers);
  return Eigen::Map<Eigen::RowVectorXf>(params_.data() + b_offset_[l], dims_[l + 1]);
}

Eigen::Map<const Eigen::RowVectorXf> Gcn::bias(uint32_t l) const {
  assert(l < config_.layers);
  return Eigen::Map<const Eigen::RowVectorXf>(params_.data() + b_offset_[l], dims_[l + 1]);
}

MatrixMap Gcn::weight_grad(uint32_t l) {
  assert(l < config_.layers);
  return MatrixMap(grads_.data() + w_offset_[l], dims_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::bias_grad(uint32_t l) {
  assert(l < config_.layers);
  return Eigen::Map<Eigen::RowVectorXf>(grads_.data() + b_offset_[l], dims_[l + 1]);
}

MatrixMap Gcn::root_weight(uint32_t l) {
  assert(l < config_.layers && config_.HasRoot());
  return MatrixMap(params_.data() + root_offset_[l], dims_[l], dims_[l + 1]);
}

ConstMatrixMap Gcn::root_weight(uint32_t l) const {
  assert(l < config_.layers && config_.HasRoot());
  return ConstMatrixMap(params_.data() + root_offset_[l], dims_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::att_src(uint32_t l) {
  assert(config_.kind == LayerKind::kGat);
  return Eigen::Map<Eigen::RowVectorXf>(params_.data() + att_offset_[l], dims_[l + 1]);
}

Eigen::Map<const Eigen::RowVectorXf> Gcn::att_src(uint32_t l) const {
  assert(config_.kind == LayerKind::kGat);
  return Eigen::Map<const Eigen::RowVectorXf>(params_.data() + att_offset_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::att_dst(uint32_t l) {
  assert(config_.kind == LayerKind::kGat);
  return Eigen::Map<Eigen::RowVectorXf>(params_.data() + att_offset_[l] + dims_[l + 1], dims_[l + 1]);
}

Eigen::Map<const Eigen::RowVectorXf> Gcn::att_dst(uint32_t l) const {
  assert(config_.kind == LayerKind::kGat);
  return Eigen::Map<const Eigen::RowVectorXf>(params_.data() + att_offset_[l] + dims_[l + 1], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::norm_scale(uint32_t l) {
  assert(config_.Normalized(l));
  return Eigen::Map<Eigen::RowVectorXf>(params_.data() + gamma_offset_[l], dims_[l + 1]);
}

Eigen::Map<const Eigen::RowVectorXf> Gcn::norm_scale(uint32_t l) const {
  assert(config_.Normalized(l));
  return Eigen::Map<const Eigen::RowVectorXf>(params_.data() + gamma_offset_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::norm_shift(uint32_t l) {
  assert(config_.Normalized(l));
  return Eigen::Map<Eigen::RowVectorXf>(params_.data() + beta_offset_[l], dims_[l + 1]);
}

Eigen::Map<const Eigen::RowVectorXf> Gcn::norm_shift(uint32_t l) const {
  assert(config_.Normalized(l));
  return Eigen::Map<const Eigen::RowVectorXf>(params_.data() + beta_offset_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::running_mean(uint32_t l) {
  assert(config_.Normalized(l) && config_.norm == NormKind::kBatch);
  return Eigen::Map<Eigen::RowVectorXf>(buffers_.data() + mean_offset_[l], dims_[l + 1]);
}

Eigen::Map<Eigen::RowVectorXf> Gcn::running_var(uint32_t l) {
  assert(config_.Normalized(l) && config_.norm == NormKind::kBatch);
  return Eigen::Map<Eigen::RowVectorXf>(buffers_.data() + var_offset_[l], dims_[l + 1]);
}

void Gcn::ZeroGrad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void Gcn::BuildSparseInput(ConstMatrixMap x) {
  const Eigen::Index n = x.rows();
  // Bag-of-words inputs are mostly zeros: with at most 1/8 non-zero, X W_0 and X^T dZ_0 run
  // over the non-zeros (CSR forward, CSC backward) instead of dense products.
  const Eigen::Index k = x.cols();
  const float* xd = x.data();
  const auto total = static_cast<uint64_t>(n) * static_cast<uint64_t>(k);
  uint64_t nnz = 0;
  for (uint64_t e = 0; e < total; ++e) nnz += xd[e] != 0.0f;
  if (total > 0 && nnz <= total / 8 && nnz < (uint64_t{1} << 32)) {
    sparse_x_ = true;
    x_row_offsets_.resize(static_cast<size_t>(n) + 1);
    x_cols_.resize(nnz);
    x_vals_.resize(nnz);
    x_col_offsets_.assign(static_cast<size_t>(k) + 1, 0);
    uint32_t e = 0;
    for (Eigen::Index i = 0; i < n; ++i) {
      x_row_offsets_[i] = e;
      for (Eigen::Index j = 0; j < k; ++j) {
        const float v = xd[i * k + j];
        if (v == 0.0f) continue;
        x_cols_[e] = static_cast<uint32_t>(j);
        x_vals_[e] = v;
        ++x_col_offsets_[j + 1];
        ++e;
      }
    }
    x_row_offsets_[n] = e;
    for (Eigen::Index j = 0; j < k; ++j) x_col_offsets_[j + 1] += x_col_offsets_[j];
    // CSC (rows ascending within each column) for the backward pass.
    x_rows_.resize(nnz);
    x_col_vals_.resize(nnz);
    std::vector<uint32_t>& cursor = x_cols_cursor_;
    cursor.assign(x_col_offsets_.begin(), x_col_offsets_.end() - 1);
    for (Eigen::Index i = 0; i < n; ++i)
      for (uint32_t q = x_row_offsets_[i]; q < x_row_offsets_[i + 1]; ++q) {
        const uint32_t at = cursor[x_cols_[q]]++;
        x_rows_[at] = static_cast<uint32_t>(i);
        x_col_vals_[at] = x_vals_[q];
      }
  }
}

ConstMatrixMap Gcn::DropInput(ConstMatrixMap x, uint64_t dropout_seed) {
  const DropoutDraw draw(config_.input_dropout, true, dropout_seed);
  const uint64_t key = draw.LayerKey(kInputDropoutLayer);
  const Eigen::Index d = x.cols();
  MatrixMap out = x_drop_.Get(x.rows(), d);
  ParallelRows(x.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i)
      DropoutRow(x.data() + i * d, out.data() + i * d, d, RowKey(key, static_cast<uint64_t>(i)), draw.threshold,
                 draw.keep_scale);
  });
  x_dropped_ = true;
  return AsConst(out);
}

ConstMatrixMap Gcn::Forward(const SparseRows& adj, ConstMatrixMap input, bool training, uint64_t dropout_seed,
                            const float* propagated_x) {
  x_dropped_ = false;
  const bool drop_input = training && config_.input_dropout > 0.0f;
  const ConstMatrixMap x = drop_input ? DropInput(input, dropout_seed) : input;
  if (drop_input) propagated_x = nullptr;  // A_hat x of the undropped x
  if (!config_.Plain()) return ForwardGeneral(adj, x, training, dropout_seed);
  const uint32_t layers = config_.layers;
  const Eigen::Index n = adj.num_rows();
  // The batch's adjacency is square over the batch's own rows (the backward pass uses A^T = A).
  assert(adj.self_base == 0 && x.rows() == n && x.cols() == dims_[0]);
  n_ = n;
  const DropoutDraw dropout(config_.dropout, training, dropout_seed);

  ax_ = nullptr;
  sparse_x_ = false;
  if (!aggregate_first_) BuildSparseInput(x);
  if (aggregate_first_) {
    if (propagated_x == nullptr) {
      MatrixMap ax = ax_ws_.Get(n, dims_[0]);
      Propagate(adj, x, ax);
      propagated_x = ax.data();
    }
    ax_ = propagated_x;
  }
  for (uint32_t l = 0; l < layers; ++l) {
    const Eigen::Index d_out = dims_[l + 1];
    MatrixMap y = h_[l].Get(n, d_out);  // [n x d_out] becomes the layer output in place
    if (l == 0 && aggregate_first_) {
      MatMul(ConstMatrixMap(ax_, n, dims_[0]), AsConst(weight(0)), y);  // (A_hat X) W_0
    } else {
      ConstMatrixMap in = l == 0 ? x : ConstMatrixMap(h_[l - 1].data(), n, dims_[l]);  // [n x dims[l]]
      MatrixMap z = z_[l].Get(n, d_out);                                               // [n x d_out]
      if (l == 0 && sparse_x_) {
        SparseTimesDense(x_row_offsets_, x_cols_, x_vals_, AsConst(weight(0)), z);
      } else {
        MatMul(in, AsConst(weight(l)), z);
      }
      Propagate(adj, AsConst(z), y);  // A_hat (H W_l)
    }
    const float* b = params_.data() + b_offset_[l];
    if (l + 1 == layers) {  // the logits: y + b, no ReLU or dropout
      ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
        for (Eigen::Index i = begin; i < end; ++i) {
          float* yi = y.data() + i * d_out;
          for (Eigen::Index j = 0; j < d_out; ++j) yi[j] += b[j];
        }
      });
      break;
    }
    MatrixMap mask = mask_[l].Get(n, d_out);  // [n x d_out]
    const uint64_t layer_key = dropout.LayerKey(l);
    ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        float* yi = y.data() + i * d_out;
        float* mi = mask.data() + i * d_out;
        if (dropout.drop) {
          ReluDropoutRow(yi, mi, b, d_out, RowKey(layer_key, static_cast<uint64_t>(i)), dropout.threshold,
                         dropout.keep_scale);
        } else {
          ReluRow(yi, mi, b, d_out);
        }
      }
    });
  }
  return ConstMatrixMap(h_[layers - 1].data(), n, dims_[layers]);
}

void Gcn::Backward(const SparseRows& adj, ConstMatrixMap input, ConstMatrixMap grad_logits) {
  // What Forward used: the dropped copy after input dropout.
  const ConstMatrixMap x = x_dropped_ ? ConstMatrixMap(x_drop_.data(), input.rows(), input.cols()) : input;
  if (!config_.Plain()) return BackwardGeneral(adj, x, grad_logits);
  const uint32_t layers = config_.layers;
  const Eigen::Index n = n_;
  assert(adj.num_rows() == n && adj.self_base == 0 && x.rows() == n && x.cols() == dims_[0]);
  assert(grad_logits.rows() == n && grad_logits.cols() == dims_[layers]);

  for (uint32_t l = layers; l-- > 0;) {
    const Eigen::Index d_in = dims_[l], d_out = dims_[l + 1];
    // dY [n x d_out]: the logits' gradient, or the previous iteration's dX times the mask.
    ConstMatrixMap dy = l + 1 == layers ? grad_logits : ConstMatrixMap(grad_a_.data(), n, d_out);
    AddColumnSums(dy, bias_grad(l), scratch_);
    if (l == 0 && aggregate_first_) {  // Y = (A_hat X) W_0 + b: dW_0 = (A_hat X)^T dY
      MatrixMap dw = grad_b_.Get(d_in, d_out);
      MatMulTransposeA(ConstMatrixMap(ax_, n, d_in), dy, dw, scratch_);
      weight_grad(0) += dw;
      break;
    }
    MatrixMap dz = grad_b_.Get(n, d_out);  // [n x d_out] = A_hat^T dY = A_hat dY
    Propagate(adj, dy, dz);
    ConstMatrixMap in = l == 0 ? x : ConstMatrixMap(h_[l - 1].data(), n, d_in);  // [n x d_in]
    if (l == 0 && sparse_x_) {  // dW_0 row k += sum over the non-zeros x_ik of x_ik dZ_i (CSC)
      MatrixMap gw = weight_grad(0);
      ParallelRows(d_in, [&](Eigen::Index begin, Eigen::Index end) {
        for (Eigen::Index k = begin; k < end; ++k) {
          float* gk = gw.data() + k * d_out;
          for (uint32_t e = x_col_offsets_[k]; e < x_col_offsets_[k + 1]; ++e) {
            const float v = x_col_vals_[e];
            const float* dzi = dz.data() + static_cast<Eigen::Index>(x_rows_[e]) * d_out;
            for (Eigen::Index j = 0; j < d_out; ++j) gk[j] += v * dzi[j];
          }
        }
      });
      break;
    }
    // dY is dead now (it lived in grad_a_ or was the caller's), so grad_a_ takes dW, then dX.
    MatrixMap dw = grad_a_.Get(d_in, d_out);  // [d_in x d_out]
    MatMulTransposeA(in, AsConst(dz), dw, scratch_);
    weight_grad(l) += dw;
    if (l == 0) break;
    // dX = (dZ W_l^T) * mask: the gradient through layer l - 1's ReLU and dropout.
    MatrixMap dx = grad_a_.Get(n, d_in);
    MatMulTransposeB(AsConst(dz), AsConst(weight(l)), dx, mask_[l - 1].data());
  }
}

float SoftmaxCrossEntropy(ConstMatrixMap logits, std::span<const uint32_t> labels, std::span<const uint8_t> mask,
                          MatrixMap grad, uint32_t* count) {
  const Eigen::Index n = logits.rows(), c = logits.cols();
  assert(labels.size() == static_cast<size_t>(n) && mask.size() == static_cast<size_t>(n));
  assert(grad.rows() == n && grad.cols() == c);
  uint32_t k = 0;
  for (uint8_t m : mask) k += m != 0;
  if (count != nullptr) *count = k;
  if (k == 0) {
    grad.setZero();
    return 0.0f;
  }
  const float inv_k = 1.0f / static_cast<float>(k);
  // Fixed-grain deterministic reduction: the sum's order does not depend on the thread count.
  const double total = tbb::parallel_deterministic_reduce(
      tbb::blocked_range<Eigen::Index>(0, n, 256), 0.0,
      [&](const tbb::blocked_range<Eigen::Index>& r, double sum) {
        for (Eigen::Index i = r.begin(); i != r.end(); ++i) {
          float* gi = grad.data() + i * c;
          if (mask[i] == 0) {
            std::fill(gi, gi + c, 0.0f);
            continue;
          }
          const float* li = logits.data() + i * c;
          assert(labels[i] < static_cast<uint32_t>(c));
          const float mx = *std::max_element(li, li + c);
          float z = 0.0f;
          for (Eigen::Index j = 0; j < c; ++j) {
            gi[j] = std::exp(li[j] - mx);
            z += gi[j];
          }
          // loss_i = log(sum exp) - logit[label]; d loss_i / d logit = softmax - onehot.
          sum += static_cast<double>(std::log(z) + mx - li[labels[i]]);
          const float inv_z = inv_k / z;
          for (Eigen::Index j = 0; j < c; ++j) gi[j] *= inv_z;
          gi[labels[i]] -= inv_k;
        }
        return sum;
      },
      [](double a, double b) { return a + b; }, tbb::simple_partitioner());
  return static_cast<float>(total / static_cast<double>(k));
}

}  // namespace cgcn
