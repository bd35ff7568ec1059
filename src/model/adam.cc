// Adam as torch.optim.Adam (amsgrad off, maximize off): L2 weight decay added to the gradient,
// bias-corrected moments, eps added to the bias-corrected sqrt(v).
#include <cassert>
#include <cmath>

#include "cgcn/gcn.h"

namespace cgcn {

Adam::Adam(size_t num_params, float lr, float weight_decay, float beta1, float beta2, float eps)
    : lr_(lr), wd_(weight_decay), b1_(beta1), b2_(beta2), eps_(eps), m_(num_params, 0.0f), v_(num_params, 0.0f) {}

void Adam::Step(std::span<float> params, std::span<const float> grads) {
  assert(params.size() == m_.size() && grads.size() == m_.size());
  ++t_;
  // Scalars in double, as torch computes them in Python before the float kernels.
  const double t = static_cast<double>(t_);
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(b1_), t);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(b2_), t);
  const float step_size = static_cast<float>(static_cast<double>(lr_) / bias_correction1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float one_minus_b1 = 1.0f - b1_, one_minus_b2 = 1.0f - b2_;
  float* p = params.data();
  const float* g = grads.data();
  float* m = m_.data();
  float* v = v_.data();
  const size_t count = m_.size();
  for (size_t i = 0; i < count; ++i) {
    const float gi = g[i] + wd_ * p[i];
    m[i] = b1_ * m[i] + one_minus_b1 * gi;
    v[i] = b2_ * v[i] + one_minus_b2 * gi * gi;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps_;
    p[i] -= step_size * (m[i] / denom);
  }
}

}  // namespace cgcn
