// Training losses over a batch's logits (src/model/loss.cc); SoftmaxCrossEntropy (cgcn/gcn.h)
// is the multi-class one.
#pragma once

#include <cstdint>
#include <span>

#include "cgcn/dense.h"

namespace cgcn {

// Mean binary cross-entropy of sigmoid(logits) over the rows with mask[i] != 0 and all L tasks:
//   loss = 1/(k L) sum_i sum_j [max(x_ij, 0) - x_ij y_ij + log(1 + exp(-|x_ij|))],
// the numerically stable form of -y log s(x) - (1 - y) log(1 - s(x)); y_ij is task j's bit of
// row i of label_bits [n x LabelWords(L)] (cgcn/split.h), L = logits.cols(). grad [n x L] gets
// d(loss)/d(logits) = (s(x) - y) / (k L), zero on unmasked rows. Sets *count to k; loss 0 and a
// zero grad when k is 0. The sum is reduced in a fixed order whatever the thread count.
float SigmoidBinaryCrossEntropy(ConstMatrixMap logits, std::span<const uint32_t> label_bits,
                                std::span<const uint8_t> mask, MatrixMap grad, uint32_t* count);

// The task's loss: SoftmaxCrossEntropy against labels when label_tasks is 0, else
// SigmoidBinaryCrossEntropy against label_bits.
float TaskLoss(uint32_t label_tasks, ConstMatrixMap logits, std::span<const uint32_t> labels,
               std::span<const uint32_t> label_bits, std::span<const uint8_t> mask, MatrixMap grad, uint32_t* count);

}  // namespace cgcn
