// The model's general path: every configuration but the plain GCN (GcnConfig::Plain), i.e. the
// cluster-gcn and sage layers, normalization and residual connections. Per layer l with input
// H [n x d_in] (X for l = 0):
//   Z = H W                                  (over X's non-zeros when X is sparse)
//   C = P Z (+ H W_root) + b                 P: A_hat, or the layer's aggregation (below)
//   last layer: the logits are C
//   hidden:     H' = dropout(relu(norm(C))) (+ H when ResidualAt(l))
// cluster-gcn: P = A' + lambda diag(A'), A' = (D + I)^-1 (A + I) on the batch's own degrees;
// sage: P = D^-1 A (mean over neighbours, no self loop). Both are row-normalized, so the
// backward pass propagates with P^T, whose entry (i, j) is P's (j, i): the weight of row j.
// gat: P Z is per head the attention-weighted sum (GatForward), no root term.
// Every reduction runs in a fixed order (rows or columns per task, fixed chunks), so results do
// not depend on the thread count.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cassert>
#include <cmath>

#include "cgcn/gcn.h"
#include "model/kernels.h"

namespace cgcn {

using namespace model_detail;

namespace {

constexpr float kNormEps = 1e-5f;  // torch LayerNorm and BatchNorm1d
constexpr float kMomentum = 0.1f;  // torch BatchNorm1d
constexpr Eigen::Index kColGroup = 16;

// out[j] = sum over rows i in ascending order of f(i, j), in double, for j in [0, d). Each
// group of kColGroup columns is one task, so the order never depends on the threads.
template <typename Fn>
void ColumnSums(Eigen::Index n, Eigen::Index d, double* out, const Fn& f) {
  const Eigen::Index groups = (d + kColGroup - 1) / kColGroup;
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, groups, 1), [&](const tbb::blocked_range<Eigen::Index>& r) {
    for (Eigen::Index g = r.begin(); g != r.end(); ++g) {
      const Eigen::Index j0 = g * kColGroup, j1 = std::min(d, j0 + kColGroup);
      double acc[kColGroup] = {};
      for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = j0; j < j1; ++j) acc[j - j0] += f(i, j);
      for (Eigen::Index j = j0; j < j1; ++j) out[j] = acc[j - j0];
    }
  });
}

// Layer norm of one row x [d]: xhat = (x - mean) / sqrt(var + eps) (biased variance, in
// double), written to xhat (may be x); returns 1 / sqrt(var + eps).
constexpr float kLeakySlope = 0.2f;  // PyG GATConv's negative_slope
inline float Leaky(float v) { return v > 0.0f ? v : kLeakySlope * v; }

inline float LayerNormRow(const float* x, float* xhat, Eigen::Index d) {
  double mean = 0;
  for (Eigen::Index j = 0; j < d; ++j) mean += x[j];
  mean /= static_cast<double>(d);
  double var = 0;
  for (Eigen::Index j = 0; j < d; ++j) var += (x[j] - mean) * (x[j] - mean);
  var /= static_cast<double>(d);
  const auto rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(kNormEps)));
  const auto m = static_cast<float>(mean);
  for (Eigen::Index j = 0; j < d; ++j) xhat[j] = (x[j] - m) * rstd;
  return rstd;
}

// dst [k x m] += X^T g for X in CSC (col_offsets [k + 1], rows, vals) and g [n x m].
void SparseTransposeTimes(std::span<const uint32_t> col_offsets, std::span<const uint32_t> rows,
                          std::span<const float> vals, ConstMatrixMap g, MatrixMap dst) {
  const Eigen::Index m = g.cols();
  ParallelRows(dst.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index k = begin; k < end; ++k) {
      float* dk = dst.data() + k * m;
      for (uint32_t e = col_offsets[k]; e < col_offsets[k + 1]; ++e) {
        const float v = vals[e];
        const float* gi = g.data() + static_cast<Eigen::Index>(rows[e]) * m;
        for (Eigen::Index j = 0; j < m; ++j) dk[j] += v * gi[j];
      }
    }
  });
}

}  // namespace

void Gcn::NormalizeForEval(uint32_t l, MatrixMap h) const {
  assert(config_.Normalized(l) && h.cols() == dims_[l + 1]);
  const Eigen::Index d = h.cols();
  const float* gamma = params_.data() + gamma_offset_[l];
  const float* beta = params_.data() + beta_offset_[l];
  if (config_.norm == NormKind::kLayer) {
    ParallelRows(h.rows(), [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        float* hi = h.data() + i * d;
        LayerNormRow(hi, hi, d);
        for (Eigen::Index j = 0; j < d; ++j) hi[j] = hi[j] * gamma[j] + beta[j];
      }
    });
    return;
  }
  const float* mean = buffers_.data() + mean_offset_[l];
  const float* var = buffers_.data() + var_offset_[l];
  std::vector<float> rstd(static_cast<size_t>(d));
  for (Eigen::Index j = 0; j < d; ++j) rstd[j] = 1.0f / std::sqrt(var[j] + kNormEps);
  ParallelRows(h.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      float* hi = h.data() + i * d;
      for (Eigen::Index j = 0; j < d; ++j) hi[j] = (hi[j] - mean[j]) * rstd[j] * gamma[j] + beta[j];
    }
  });
}

void Gcn::AttentionScalars(uint32_t l, ConstMatrixMap z, MatrixMap src, MatrixMap dst) const {
  const Eigen::Index d = dims_[l + 1], heads = config_.HeadsAt(l), c = d / heads;
  const float* as = params_.data() + att_offset_[l];
  const float* ad = as + d;
  ParallelRows(z.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      const float* zi = z.data() + i * d;
      for (Eigen::Index h = 0; h < heads; ++h) {
        float s = 0.0f, t = 0.0f;
        for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) {
          s += zi[k] * as[k];
          t += zi[k] * ad[k];
        }
        src(i, h) = s;
        dst(i, h) = t;
      }
    }
  });
}

void Gcn::GatForward(uint32_t l, const SparseRows& adj, ConstMatrixMap z, MatrixMap out) {
  const Eigen::Index n = z.rows(), d = dims_[l + 1], heads = config_.HeadsAt(l), c = d / heads;
  const size_t nnz = adj.offsets[static_cast<size_t>(n)];
  float* scalars = att_[l].Get(2 * n, heads).data();  // src [n x heads], then dst [n x heads]
  const MatrixMap src(scalars, n, heads), dst(scalars + n * heads, n, heads);
  AttentionScalars(l, z, src, dst);
  MatrixMap alpha = alpha_[l].Get(static_cast<Eigen::Index>(nnz) + n, heads);
  ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      const uint32_t e0 = adj.offsets[i], e1 = adj.offsets[i + 1];
      const Eigen::Index self = static_cast<Eigen::Index>(nnz) + i;
      float* oi = out.data() + i * d;
      std::fill(oi, oi + d, 0.0f);
      for (Eigen::Index h = 0; h < heads; ++h) {
        // Softmax over the neighbours and the self loop of LeakyReLU(src_j + dst_i).
        const float di = dst(i, h);
        float mx = Leaky(src(i, h) + di);
        for (uint32_t e = e0; e < e1; ++e) mx = std::max(mx, Leaky(src(adj.columns[e], h) + di));
        float sum = 0.0f;
        for (uint32_t e = e0; e < e1; ++e) {
          const float v = std::exp(Leaky(src(adj.columns[e], h) + di) - mx);
          alpha(e, h) = v;
          sum += v;
        }
        const float vs = std::exp(Leaky(src(i, h) + di) - mx);
        alpha(self, h) = vs;
        sum += vs;
        const float inv = 1.0f / sum;
        for (uint32_t e = e0; e < e1; ++e) alpha(e, h) *= inv;
        alpha(self, h) *= inv;
        // This head's output: neighbours in CSR order, then the node itself.
        for (uint32_t e = e0; e < e1; ++e) {
          const float a = alpha(e, h);
          const float* zj = z.data() + static_cast<Eigen::Index>(adj.columns[e]) * d;
          for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) oi[k] += a * zj[k];
        }
        const float a = alpha(self, h);
        const float* zi = z.data() + i * d;
        for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) oi[k] += a * zi[k];
      }
    }
  });
}

void Gcn::GatBackward(uint32_t l, const SparseRows& adj, ConstMatrixMap dc, MatrixMap dz) {
  const Eigen::Index n = dc.rows(), d = dims_[l + 1], heads = config_.HeadsAt(l), c = d / heads;
  const size_t nnz = adj.offsets[static_cast<size_t>(n)];
  const ConstMatrixMap z(z_[l].data(), n, d);
  const ConstMatrixMap src(att_[l].data(), n, heads), dst(att_[l].data() + n * heads, n, heads);
  const ConstMatrixMap alpha(alpha_[l].data(), static_cast<Eigen::Index>(nnz) + n, heads);
  MatrixMap dpre = dpre_.Get(static_cast<Eigen::Index>(nnz) + n, heads);  // d loss / d (pre-LeakyReLU score)
  MatrixMap datt = datt_.Get(n, 2 * heads);                               // d loss / d (src, dst scalars)
  // Per target i and head: d alpha_ij = dC_i . Z_j; through the softmax and the LeakyReLU.
  ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index i = begin; i < end; ++i) {
      const uint32_t e0 = adj.offsets[i], e1 = adj.offsets[i + 1];
      const Eigen::Index self = static_cast<Eigen::Index>(nnz) + i;
      const float* gi = dc.data() + i * d;
      auto dot = [&](Eigen::Index j, Eigen::Index h) {
        const float* zj = z.data() + j * d;
        float s = 0.0f;
        for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) s += gi[k] * zj[k];
        return s;
      };
      for (Eigen::Index h = 0; h < heads; ++h) {
        float weighted = 0.0f;
        for (uint32_t e = e0; e < e1; ++e) {
          dpre(e, h) = dot(adj.columns[e], h);
          weighted += alpha(e, h) * dpre(e, h);
        }
        dpre(self, h) = dot(i, h);
        weighted += alpha(self, h) * dpre(self, h);
        const float di = dst(i, h);
        float sum_dst = 0.0f;
        for (uint32_t e = e0; e < e1; ++e) {
          const float slope = src(adj.columns[e], h) + di > 0.0f ? 1.0f : kLeakySlope;
          dpre(e, h) = alpha(e, h) * (dpre(e, h) - weighted) * slope;
          sum_dst += dpre(e, h);
        }
        const float slope = src(i, h) + di > 0.0f ? 1.0f : kLeakySlope;
        dpre(self, h) = alpha(self, h) * (dpre(self, h) - weighted) * slope;
        sum_dst += dpre(self, h);
        datt(i, heads + h) = sum_dst;
      }
    }
  });
  // Per source j: dZ_j = sum over the entries (i, j) of alpha_ij dC_i (and the self loop), then
  // the scalars' part; d src_j = sum of those entries' dpre. Entries grouped by column, ascending i.
  const float* as = params_.data() + att_offset_[l];
  const float* ad = as + d;
  ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
    for (Eigen::Index j = begin; j < end; ++j) {
      float* dzj = dz.data() + j * d;
      const Eigen::Index self = static_cast<Eigen::Index>(nnz) + j;
      for (Eigen::Index h = 0; h < heads; ++h) {
        float ds = dpre(self, h);
        const float aself = alpha(self, h);
        const float* gj = dc.data() + j * d;
        for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) dzj[k] = aself * gj[k];
        for (uint32_t q = adj.offsets[j]; q < adj.offsets[j + 1]; ++q) {
          const uint32_t e = t_entry_[q];
          const float a = alpha(e, h);
          const float* gi = dc.data() + static_cast<Eigen::Index>(t_src_[q]) * d;
          for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) dzj[k] += a * gi[k];
          ds += dpre(e, h);
        }
        datt(j, h) = ds;
        const float dd = datt(j, heads + h);
        for (Eigen::Index k = h * c; k < (h + 1) * c; ++k) dzj[k] += ds * as[k] + dd * ad[k];
      }
    }
  });
  // The attention vectors: d a_src[k] = sum_j d src_j(h(k)) Z_j[k], the same for a_dst.
  std::vector<double> gs(static_cast<size_t>(d)), gd(static_cast<size_t>(d));
  ColumnSums(n, d, gs.data(), [&](Eigen::Index i, Eigen::Index k) { return double{datt(i, k / c)} * z(i, k); });
  ColumnSums(n, d, gd.data(), [&](Eigen::Index i, Eigen::Index k) { return double{datt(i, heads + k / c)} * z(i, k); });
  float* g = grads_.data() + att_offset_[l];
  for (Eigen::Index k = 0; k < d; ++k) {
    g[k] += static_cast<float>(gs[k]);
    g[d + k] += static_cast<float>(gd[k]);
  }
}

ConstMatrixMap Gcn::ForwardGeneral(const SparseRows& adj, ConstMatrixMap x, bool training, uint64_t dropout_seed) {
  const uint32_t layers = config_.layers;
  const Eigen::Index n = adj.num_rows();
  assert(adj.self_base == 0 && x.rows() == n && x.cols() == dims_[0]);
  n_ = n;
  last_training_ = training;
  const DropoutDraw dropout(config_.dropout, training, dropout_seed);
  ax_ = nullptr;
  sparse_x_ = false;
  BuildSparseInput(x);
  zeros_.assign(*std::max_element(dims_.begin(), dims_.end()), 0.0f);

  // The aggregation P and its transpose (cluster-gcn, sage); gcn uses the batch's A_hat.
  SparseRows agg = adj;
  const bool gat = config_.kind == LayerKind::kGat;
  if (gat) {  // the entries grouped by column, ascending source (the adjacency is symmetric)
    const size_t nnz = adj.offsets[static_cast<size_t>(n)];
    t_src_.resize(nnz);
    t_entry_.resize(nnz);
    std::vector<uint32_t>& cursor = x_cols_cursor_;  // free after BuildSparseInput
    cursor.assign(adj.offsets.begin(), adj.offsets.begin() + n);
    for (Eigen::Index i = 0; i < n; ++i)
      for (uint32_t e = adj.offsets[i]; e < adj.offsets[i + 1]; ++e) {
        const uint32_t at = cursor[adj.columns[e]]++;
        t_src_[at] = static_cast<uint32_t>(i);
        t_entry_[at] = e;
      }
  } else if (config_.kind != LayerKind::kGcn) {
    const size_t nnz = adj.offsets[static_cast<size_t>(n)];
    agg_self_.resize(static_cast<size_t>(n));
    agg_w_.resize(nnz);
    agg_tw_.resize(nnz);
    const bool cluster = config_.kind == LayerKind::kClusterGcn;
    for (Eigen::Index i = 0; i < n; ++i) {  // first the row's weight: 1 / (deg + 1) or 1 / deg
      const uint32_t len = adj.offsets[i + 1] - adj.offsets[i];
      agg_self_[i] = cluster ? 1.0f / static_cast<float>(len + 1) : (len ? 1.0f / static_cast<float>(len) : 0.0f);
    }
    ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i)
        for (uint32_t e = adj.offsets[i]; e < adj.offsets[i + 1]; ++e) {
          agg_w_[e] = agg_self_[i];
          agg_tw_[e] = agg_self_[adj.columns[e]];
        }
    });
    // PyG ClusterGCNConv: the self loop weighs deg_inv + lambda * deg_inv; SAGE has none.
    for (Eigen::Index i = 0; i < n; ++i)
      agg_self_[i] = cluster ? agg_self_[i] + config_.diag_lambda * agg_self_[i] : 0.0f;
    agg = SparseRows{adj.offsets, adj.columns, agg_w_, agg_self_, 0};
  }

  for (uint32_t l = 0; l < layers; ++l) {
    const Eigen::Index d_in = dims_[l], d_out = dims_[l + 1];
    const ConstMatrixMap in = l == 0 ? x : ConstMatrixMap(h_[l - 1].data(), n, d_in);
    auto transform = [&](ConstMatrixMap w, MatrixMap out) {  // out = in w
      if (l == 0 && sparse_x_) {
        SparseTimesDense(x_row_offsets_, x_cols_, x_vals_, w, out);
      } else {
        MatMul(in, w, out);
      }
    };
    MatrixMap z = z_[l].Get(n, d_out);
    transform(AsConst(weight(l)), z);
    MatrixMap c = h_[l].Get(n, d_out);  // becomes the layer's output in place
    if (gat) {
      GatForward(l, adj, AsConst(z), c);
    } else {
      Propagate(agg, AsConst(z), c);
    }
    const float* b = params_.data() + b_offset_[l];
    const float* root = nullptr;
    if (config_.HasRoot()) {
      MatrixMap r = grad_c_.Get(n, d_out);  // a gradient buffer, free during the forward pass
      transform(AsConst(root_weight(l)), r);
      root = r.data();
    }
    ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        float* ci = c.data() + i * d_out;
        if (root != nullptr) {
          const float* ri = root + i * d_out;
          for (Eigen::Index j = 0; j < d_out; ++j) ci[j] += ri[j];
        }
        for (Eigen::Index j = 0; j < d_out; ++j) ci[j] += b[j];
      }
    });
    if (l + 1 == layers) break;  // the logits

    if (config_.Normalized(l)) {
      MatrixMap xhat = xhat_[l].Get(n, d_out);
      const float* gamma = params_.data() + gamma_offset_[l];
      const float* beta = params_.data() + beta_offset_[l];
      if (config_.norm == NormKind::kLayer) {
        MatrixMap rstd = rstd_[l].Get(n, 1);
        ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
          for (Eigen::Index i = begin; i < end; ++i) {
            float* ci = c.data() + i * d_out;
            float* xi = xhat.data() + i * d_out;
            rstd(i, 0) = LayerNormRow(ci, xi, d_out);
            for (Eigen::Index j = 0; j < d_out; ++j) ci[j] = xi[j] * gamma[j] + beta[j];
          }
        });
      } else {
        MatrixMap rstd = rstd_[l].Get(1, d_out);
        float* rm = buffers_.data() + mean_offset_[l];
        float* rv = buffers_.data() + var_offset_[l];
        std::vector<float> mean(static_cast<size_t>(d_out));
        if (training) {  // the batch's statistics; the running ones move towards them
          std::vector<double> sum(static_cast<size_t>(d_out)), sq(static_cast<size_t>(d_out));
          ColumnSums(n, d_out, sum.data(), [&](Eigen::Index i, Eigen::Index j) { return double{c(i, j)}; });
          for (Eigen::Index j = 0; j < d_out; ++j) sum[j] /= static_cast<double>(std::max<Eigen::Index>(n, 1));
          ColumnSums(n, d_out, sq.data(), [&](Eigen::Index i, Eigen::Index j) {
            const double v = c(i, j) - sum[j];
            return v * v;
          });
          for (Eigen::Index j = 0; j < d_out; ++j) {
            const double var = sq[j] / static_cast<double>(std::max<Eigen::Index>(n, 1));
            const double unbiased = n > 1 ? sq[j] / static_cast<double>(n - 1) : var;
            mean[j] = static_cast<float>(sum[j]);
            rstd(0, j) = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(kNormEps)));
            rm[j] = (1.0f - kMomentum) * rm[j] + kMomentum * mean[j];
            rv[j] = (1.0f - kMomentum) * rv[j] + kMomentum * static_cast<float>(unbiased);
          }
        } else {
          for (Eigen::Index j = 0; j < d_out; ++j) {
            mean[j] = rm[j];
            rstd(0, j) = 1.0f / std::sqrt(rv[j] + kNormEps);
          }
        }
        ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
          for (Eigen::Index i = begin; i < end; ++i) {
            float* ci = c.data() + i * d_out;
            float* xi = xhat.data() + i * d_out;
            for (Eigen::Index j = 0; j < d_out; ++j) {
              xi[j] = (ci[j] - mean[j]) * rstd(0, j);
              ci[j] = xi[j] * gamma[j] + beta[j];
            }
          }
        });
      }
    }
    MatrixMap mask = mask_[l].Get(n, d_out);
    const uint64_t layer_key = dropout.LayerKey(l);
    const bool residual = config_.ResidualAt(l);
    ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index i = begin; i < end; ++i) {
        float* ci = c.data() + i * d_out;
        float* mi = mask.data() + i * d_out;
        if (dropout.drop) {
          ReluDropoutRow(ci, mi, zeros_.data(), d_out, RowKey(layer_key, static_cast<uint64_t>(i)), dropout.threshold,
                         dropout.keep_scale);
        } else {
          ReluRow(ci, mi, zeros_.data(), d_out);
        }
        if (residual) {
          const float* hi = in.data() + i * d_in;
          for (Eigen::Index j = 0; j < d_out; ++j) ci[j] += hi[j];
        }
      }
    });
  }
  return ConstMatrixMap(h_[layers - 1].data(), n, dims_[layers]);
}

void Gcn::BackwardGeneral(const SparseRows& adj, ConstMatrixMap x, ConstMatrixMap grad_logits) {
  const uint32_t layers = config_.layers;
  const Eigen::Index n = n_;
  assert(adj.num_rows() == n && adj.self_base == 0 && x.rows() == n && x.cols() == dims_[0]);
  assert(grad_logits.rows() == n && grad_logits.cols() == dims_[layers]);
  // P^T: A_hat is symmetric; the row-normalized aggregations use the transposed weights.
  const SparseRows agg_t = config_.kind == LayerKind::kGcn || config_.kind == LayerKind::kGat
                               ? adj
                               : SparseRows{adj.offsets, adj.columns, agg_tw_, agg_self_, 0};

  const float* gh_data = grad_logits.data();  // d loss / d (layer l's output)
  for (uint32_t l = layers; l-- > 0;) {
    const Eigen::Index d_in = dims_[l], d_out = dims_[l + 1];
    const ConstMatrixMap gh(gh_data, n, d_out);
    const ConstMatrixMap in = l == 0 ? x : ConstMatrixMap(h_[l - 1].data(), n, d_in);
    // dC: through the residual's branch, dropout, ReLU and the norm.
    const float* dc_data = gh_data;
    if (l + 1 < layers) {
      MatrixMap g = grad_b_.Get(n, d_out);
      const float* mask = mask_[l].data();
      ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
        for (Eigen::Index e = begin * d_out; e < end * d_out; ++e) g.data()[e] = gh.data()[e] * mask[e];
      });
      if (config_.Normalized(l)) {
        const ConstMatrixMap xhat(xhat_[l].data(), n, d_out);
        const float* gamma = params_.data() + gamma_offset_[l];
        std::vector<double> dgamma(static_cast<size_t>(d_out)), dbeta(static_cast<size_t>(d_out));
        ColumnSums(n, d_out, dgamma.data(),
                   [&](Eigen::Index i, Eigen::Index j) { return double{g(i, j)} * double{xhat(i, j)}; });
        ColumnSums(n, d_out, dbeta.data(), [&](Eigen::Index i, Eigen::Index j) { return double{g(i, j)}; });
        float* gg = grads_.data() + gamma_offset_[l];
        float* gb = grads_.data() + beta_offset_[l];
        for (Eigen::Index j = 0; j < d_out; ++j) {
          gg[j] += static_cast<float>(dgamma[j]);
          gb[j] += static_cast<float>(dbeta[j]);
        }
        if (config_.norm == NormKind::kLayer) {
          const float* rstd = rstd_[l].data();
          ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
            for (Eigen::Index i = begin; i < end; ++i) {
              float* gi = g.data() + i * d_out;
              const float* xi = xhat.data() + i * d_out;
              double m1 = 0, m2 = 0;
              for (Eigen::Index j = 0; j < d_out; ++j) {
                const double gy = double{gi[j]} * gamma[j];
                m1 += gy;
                m2 += gy * xi[j];
              }
              const auto a = static_cast<float>(m1 / static_cast<double>(d_out));
              const auto b = static_cast<float>(m2 / static_cast<double>(d_out));
              for (Eigen::Index j = 0; j < d_out; ++j) gi[j] = rstd[i] * (gi[j] * gamma[j] - a - xi[j] * b);
            }
          });
        } else {
          const float* rstd = rstd_[l].data();
          std::vector<float> a(static_cast<size_t>(d_out), 0.0f), b(static_cast<size_t>(d_out), 0.0f);
          if (last_training_) {  // the batch's mean and variance depend on every row
            for (Eigen::Index j = 0; j < d_out; ++j) {
              a[j] = static_cast<float>(dbeta[j] * gamma[j] / static_cast<double>(n));
              b[j] = static_cast<float>(dgamma[j] * gamma[j] / static_cast<double>(n));
            }
          }
          ParallelRows(n, [&](Eigen::Index begin, Eigen::Index end) {
            for (Eigen::Index i = begin; i < end; ++i) {
              float* gi = g.data() + i * d_out;
              const float* xi = xhat.data() + i * d_out;
              for (Eigen::Index j = 0; j < d_out; ++j) gi[j] = rstd[j] * (gi[j] * gamma[j] - a[j] - xi[j] * b[j]);
            }
          });
        }
      }
      dc_data = g.data();
    }
    const ConstMatrixMap dc(dc_data, n, d_out);
    AddColumnSums(dc, bias_grad(l), scratch_);
    // dZ = P^T dC; dW = H^T dZ; dW_root = H^T dC.
    MatrixMap dz = grad_c_.Get(n, d_out);
    if (config_.kind == LayerKind::kGat) {
      GatBackward(l, adj, dc, dz);
    } else {
      Propagate(agg_t, dc, dz);
    }
    auto accumulate = [&](ConstMatrixMap g, size_t offset) {  // grads at offset += in^T g
      MatrixMap gw(grads_.data() + offset, d_in, d_out);
      if (l == 0 && sparse_x_) {
        SparseTransposeTimes(x_col_offsets_, x_rows_, x_col_vals_, g, gw);
        return;
      }
      MatrixMap dw = dw_.Get(d_in, d_out);
      MatMulTransposeA(in, g, dw, scratch_);
      gw += dw;
    };
    accumulate(AsConst(dz), w_offset_[l]);
    if (config_.HasRoot()) accumulate(dc, root_offset_[l]);
    if (l == 0) break;
    // d(in) = dZ W^T (+ dC W_root^T) (+ gh through the residual).
    Workspace& next_ws = l % 2 ? grad_a_ : grad_d_;  // never the buffer gh lives in
    MatrixMap gnext = next_ws.Get(n, d_in);
    MatMulTransposeB(AsConst(dz), AsConst(weight(l)), gnext);
    if (config_.HasRoot()) {
      MatrixMap t = grad_c_.Get(n, d_in);  // dZ is no longer needed
      MatMulTransposeB(dc, AsConst(root_weight(l)), t);
      gnext += t;
    }
    if (config_.ResidualAt(l)) gnext += gh;
    gh_data = gnext.data();
  }
}

}  // namespace cgcn
