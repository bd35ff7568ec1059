// The GCN model (PyG GCNConv stack), its backward pass and the softmax cross-entropy loss.
#include "cgcn/gcn.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <random>

namespace cgcn {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function: a bijective 64-bit mixer.
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from the top 24 bits (every value exactly representable as a float).
inline float UnitFloat(uint64_t r) { return static_cast<float>(r >> 40) * 0x1.0p-24f; }

// A bijective 32-bit mixer (Wellons' "lowbias32"): two multiplies, so a row's draws vectorize
// (AVX2 has 32-bit but no 64-bit lane multiplies).
inline uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The dropout key of row `row` of a layer: both halves of the 64-bit layer key and the row.
inline uint32_t RowKey(uint64_t layer_key, uint64_t row) {
  return Mix32(Mix32(static_cast<uint32_t>(row) ^ static_cast<uint32_t>(layer_key)) ^
               static_cast<uint32_t>(layer_key >> 32) ^ static_cast<uint32_t>(row >> 32));
}

// One row of h = relu(y + b) * dropout, in place in y [d], and mask [d] = d h / d y (0 where
// y + b <= 0 or the unit is dropped, else keep_scale). Element j is kept when the top 24 bits of
// Mix32(row_key ^ (j + 1) * golden32), read as a fraction of 2^24, are >= p, i.e. when they are
// >= threshold = ceil(p * 2^24); this depends only on (layer key, row, j), never on which thread
// runs the row. Branch-free, 32-bit integer lanes, so GCC vectorizes it eight elements at a time.
void ReluDropoutRow(float* __restrict y, float* __restrict mask, const float* __restrict b, Eigen::Index d,
                    uint32_t row_key, uint32_t threshold, float keep_scale) {
  for (Eigen::Index j = 0; j < d; ++j) {
    const float v = y[j] + b[j];
    const uint32_t r = Mix32(row_key ^ (static_cast<uint32_t>(j) + 1u) * 0x9E3779B9u) >> 8;
    const float kept = r >= threshold ? keep_scale : 0.0f;
    mask[j] = v > 0.0f ? kept : 0.0f;
    y[j] = std::max(v, 0.0f) * kept;
  }
}

// The same without dropout: h = relu(y + b), mask = 1 where y + b > 0.
void ReluRow(float* __restrict y, float* __restrict mask, const float* __restrict b, Eigen::Index d) {
  for (Eigen::Index j = 0; j < d; ++j) {
    const float v = y[j] + b[j];
    mask[j] = static_cast<float>(v > 0.0f);
    y[j] = std::max(v, 0.0f);
  }
}

// Rows per task for the elementwise passes over [n x d] activations.
constexpr Eigen::Index kRowGrain = 64;
// Rows per partial sum in AddColumnSums (fixed: the reduction order must not depend on threads).
constexpr Eigen::Index kSumRows = 2048;

// Eigen has no implicit MatrixMap -> ConstMatrixMap conversion.
ConstMatrixMap AsConst(MatrixMap m) { return ConstMatrixMap(m.data(), m.rows(), m.cols()); }

// Calls fn(begin, end) over [0, rows) in parallel; fn must treat rows independently.
template <typename Fn>
void ParallelRows(Eigen::Index rows, const Fn& fn) {
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, rows, kRowGrain),
                    [&](const tbb::blocked_range<Eigen::Index>& r) { fn(r.begin(), r.end()); });
}

// acc[d] += sum of the rows of m [n x d], summed per fixed chunk of kSumRows rows and the chunk
// partials added in order. scratch holds the partials.
void AddColumnSums(ConstMatrixMap m, Eigen::Map<Eigen::RowVectorXf> acc, Workspace& scratch) {
  const Eigen::Index n = m.rows(), d = m.cols();
  const Eigen::Index chunks = (n + kSumRows - 1) / kSumRows;
  if (chunks == 0) return;
  MatrixMap partials = scratch.Get(chunks, d);  // [chunks x d]
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, chunks, 1),
      [&](const tbb::blocked_range<Eigen::Index>& r) {
        for (Eigen::Index c = r.begin(); c != r.end(); ++c) {
          const Eigen::Index begin = c * kSumRows, end = std::min(n, begin + kSumRows);
          auto p = partials.row(c);
          p = m.row(begin);
          for (Eigen::Index i = begin + 1; i < end; ++i) p += m.row(i);
        }
      },
      tbb::simple_partitioner());
  for (Eigen::Index c = 0; c < chunks; ++c) acc += partials.row(c);
}

}  // namespace

namespace {

// z [n x m] = X w for X [n x k] in CSR (row_offsets, cols, vals) and w [k x m] row-major; rows in
// parallel, each row summed over its non-zeros in ascending column order (deterministic).
void SparseTimesDense(std::span<const uint32_t> row_offsets, std::span<const uint32_t> cols,
                      std::span<const float> vals, ConstMatrixMap w, MatrixMap z) {
  const Eigen::Index n = z.rows(), m = z.cols();
  ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      float* zi = z.data() + i * m;
      std::fill(zi, zi + m, 0.0f);
      for (uint32_t e = row_offsets[i]; e < row_offsets[i + 1]; ++e) {
        const float v = vals[e];
        const float* wk = w.data() + static_cast<Eigen::Index>(cols[e]) * m;
        for (Eigen::Index j = 0; j < m; ++j) zi[j] += v * wk[j];
      }
    }
  });
}

}  // namespace

std::vector<uint32_t> GcnConfig::Dims() const {
  assert(layers >= 1);
  std::vector<uint32_t> dims(layers + 1, hidden);
  dims.front() = in_dim;
  dims.back() = out_dim;
  return dims;
}

uint64_t Gcn::ParamCount(const GcnConfig& config) {
  const std::vector<uint32_t> dims = config.Dims();
  uint64_t params = 0;
  for (size_t l = 0; l + 1 < dims.size(); ++l) params += uint64_t{dims[l]} * dims[l + 1] + dims[l + 1];
  return params;
}

uint64_t Gcn::PlannedBytes(const GcnConfig& config) { return 2 * ParamCount(config) * sizeof(float); }

uint64_t Gcn::WorkspaceBytes(const GcnConfig& config, uint64_t nodes) {
  const std::vector<uint32_t> dims = config.Dims();
  uint64_t sum_out = 0, max_dim = 0;
  for (size_t l = 1; l < dims.size(); ++l) sum_out += dims[l];
  for (uint32_t d : dims) max_dim = std::max<uint64_t>(max_dim, d);
  // z_, h_ and mask_ per layer; ax_ws_; grad_a_ and grad_b_.
  return nodes * sizeof(float) * (3 * sum_out + config.in_dim + 2 * max_dim);
}

Gcn::Gcn(const GcnConfig& config, uint64_t seed) : config_(config), dims_(config.Dims()) {
  const uint32_t layers = config_.layers;
  size_t total = 0;
  for (uint32_t l = 0; l < layers; ++l) {
    w_offset_.push_back(total);
    total += static_cast<size_t>(dims_[l]) * dims_[l + 1];
    b_offset_.push_back(total);
    total += dims_[l + 1];
  }
  params_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
  aggregate_first_ = dims_[0] <= 2 * dims_[1];
  z_.resize(layers);
  h_.resize(layers);
  mask_.resize(layers);

  // PyG glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); W row-major in layer order.
  // The uniform draw is spelled out (not std::uniform_real_distribution) so the weights are
  // the same with every standard library.
  std::mt19937_64 rng(seed);
  for (uint32_t l = 0; l < layers; ++l) {
    const float a = std::sqrt(6.0f / static_cast<float>(dims_[l] + dims_[l + 1]));
    float* w = params_.data() + w_offset_[l];
    const size_t count = static_cast<size_t>(dims_[l]) * dims_[l + 1];
    for (size_t i = 0; i < count; ++i) w[i] = a * (2.0f * UnitFloat(rng()) - 1.0f);
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

void Gcn::ZeroGrad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

ConstMatrixMap Gcn::Forward(const SparseRows& adj, ConstMatrixMap x, bool training, uint64_t dropout_seed,
                            const float* propagated_x) {
  const uint32_t layers = config_.layers;
  const Eigen::Index n = adj.num_rows();
  // The batch's adjacency is square over the batch's own rows (the backward pass uses A^T = A).
  assert(adj.self_base == 0 && x.rows() == n && x.cols() == dims_[0]);
  n_ = n;
  const float p = config_.dropout;
  const bool drop = training && p > 0.0f;
  // Factor for a kept positive activation; p >= 1 drops everything.
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  // Keep a unit when its 24-bit draw u satisfies u / 2^24 >= p, i.e. u >= ceil(p 2^24) (exact).
  const auto threshold = static_cast<uint32_t>(std::ceil(std::clamp(static_cast<double>(p), 0.0, 1.0) * 0x1.0p24));
  const uint64_t seed_key = Mix64(dropout_seed + kGolden);

  ax_ = nullptr;
  sparse_x_ = false;
  if (!aggregate_first_) {
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
    const uint64_t layer_key = Mix64(seed_key + (l + 1) * kGolden);
    ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        float* yi = y.data() + i * d_out;
        float* mi = mask.data() + i * d_out;
        if (drop) {
          ReluDropoutRow(yi, mi, b, d_out, RowKey(layer_key, static_cast<uint64_t>(i)), threshold, keep_scale);
        } else {
          ReluRow(yi, mi, b, d_out);
        }
      }
    });
  }
  return ConstMatrixMap(h_[layers - 1].data(), n, dims_[layers]);
}

void Gcn::Backward(const SparseRows& adj, ConstMatrixMap x, ConstMatrixMap grad_logits) {
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
