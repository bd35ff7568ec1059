#include "cgcn/loss.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <cmath>

#include "cgcn/gcn.h"
#include "cgcn/split.h"

namespace cgcn {

float SigmoidBinaryCrossEntropy(ConstMatrixMap logits, std::span<const uint32_t> label_bits,
                                std::span<const uint8_t> mask, MatrixMap grad, uint32_t* count) {
  const Eigen::Index n = logits.rows(), L = logits.cols();
  const uint32_t W = LabelWords(static_cast<uint32_t>(L));
  assert(mask.size() == static_cast<size_t>(n) && label_bits.size() == static_cast<size_t>(n) * W);
  assert(grad.rows() == n && grad.cols() == L);
  uint32_t k = 0;
  for (uint8_t m : mask) k += m != 0;
  if (count != nullptr) *count = k;
  if (k == 0 || L == 0) {
    grad.setZero();
    return 0.0f;
  }
  const float scale = 1.0f / (static_cast<float>(k) * static_cast<float>(L));
  // Fixed-grain deterministic reduction, as SoftmaxCrossEntropy: the order of the sum does not
  // depend on the thread count.
  const double total = tbb::parallel_deterministic_reduce(
      tbb::blocked_range<Eigen::Index>(0, n, 256), 0.0,
      [&](const tbb::blocked_range<Eigen::Index>& r, double sum) {
        for (Eigen::Index i = r.begin(); i != r.end(); ++i) {
          float* gi = grad.data() + i * L;
          if (mask[i] == 0) {
            std::fill(gi, gi + L, 0.0f);
            continue;
          }
          const float* xi = logits.data() + i * L;
          const uint32_t* yi = label_bits.data() + static_cast<size_t>(i) * W;
          double row = 0;
          for (Eigen::Index j = 0; j < L; ++j) {
            const float x = xi[j];
            const float y = LabelBit(yi, static_cast<uint32_t>(j)) ? 1.0f : 0.0f;
            const float e = std::exp(-std::fabs(x));  // in (0, 1]: no overflow
            row += static_cast<double>(std::max(x, 0.0f) - x * y + std::log1p(e));
            // sigmoid(x) from e = exp(-|x|) without overflow on either side.
            const float s = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
            gi[j] = (s - y) * scale;
          }
          sum += row;
        }
        return sum;
      },
      [](double a, double b) { return a + b; }, tbb::simple_partitioner());
  return static_cast<float>(total / (static_cast<double>(k) * static_cast<double>(L)));
}

float TaskLoss(uint32_t label_tasks, ConstMatrixMap logits, std::span<const uint32_t> labels,
               std::span<const uint32_t> label_bits, std::span<const uint8_t> mask, MatrixMap grad, uint32_t* count) {
  if (label_tasks == 0) return SoftmaxCrossEntropy(logits, labels, mask, grad, count);
  return SigmoidBinaryCrossEntropy(logits, label_bits, mask, grad, count);
}

}  // namespace cgcn
