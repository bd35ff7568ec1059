// Scoring the model's last layer against the labels, split by split (src/train/metrics.cc):
//  - multi-class: accuracy of the arg-max class;
//  - multi-label (L binary tasks, sigmoid outputs): micro- and macro-F1 with a task predicted when
//    its probability is at least 0.5 (logit >= 0); the same two with DeepWalk's top-k rule (each
//    node's k highest-scoring tasks, k = its true number of labels, ties to the lower task); and
//    OGB's mean ROC-AUC (per task with both classes present in the split, then the mean).
// The headline figure of each split is accuracy (multi-class) or micro-F1 at 0.5 (multi-label).
// F1 of a task with no positive and no predicted node is 0 (scikit-learn's zero_division
// default), in the macro mean too. Micro-F1 pools TP, FP and FN over every (node, task) pair.
// Every figure is exact and independent of the order and grouping in which rows are added.
#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <span>
#include <vector>

namespace cgcn {

inline constexpr double kNoMetric = std::numeric_limits<double>::quiet_NaN();

// The multi-label figures of one split (NaN when the split is empty, or, for roc_auc, when no
// task has both classes in it, and on the training split, whose scores are not kept).
struct MultiLabelMetrics {
  double micro_f1 = kNoMetric, macro_f1 = kNoMetric;
  double topk_micro_f1 = kNoMetric, topk_macro_f1 = kNoMetric;
  double roc_auc = kNoMetric;
};

// What an evaluation reports: the headline metric of each split (NaN for an empty split):
// accuracy, or for a multi-label task micro-F1 at threshold 0.5; and for a multi-label task every
// figure of each split.
struct Accuracy {
  double train = 0, valid = 0, test = 0;
  uint32_t label_tasks = 0;          // 0: multi-class (multi_label unused)
  MultiLabelMetrics multi_label[3];  // train, valid, test
  // The mean loss on each split (cross-entropy, or for a multi-label task the binary
  // cross-entropy averaged over the tasks), NaN for an empty split.
  double train_loss = 0, valid_loss = 0, test_loss = 0;
  // Accuracy over every node with a label, in a split or not (NaN when no node has one, and for a
  // multi-label task), and that count.
  double labeled = 0;
  uint64_t labeled_nodes = 0;
};

// 2 TP / (2 TP + FP + FN); 0 when all three are 0.
double F1Score(uint64_t tp, uint64_t fp, uint64_t fn);

// Area under the ROC curve of `scores` against `positive` (0 or 1 each): the probability that a
// positive scores above a negative, ties counting one half (scikit-learn's roc_auc_score). NaN
// when either class is absent or a score is NaN.
double RocAuc(std::span<const float> scores, std::span<const uint8_t> positive);

// Top-k prediction of one row: sets in `words` (LabelWords(L) words, zeroed first) the bits of
// the k tasks of `scores` [L] with the highest scores, ties to the lower task.
void TopKTasks(std::span<const float> scores, uint32_t k, uint32_t* words);

// Per-split tallies of one evaluation. Add() is thread-safe.
class SplitScorer {
 public:
  // label_tasks 0: multi-class with num_classes outputs; else L = num_classes tasks.
  SplitScorer(uint32_t num_classes, uint32_t label_tasks);
  // Scores n rows: logits [n x num_classes] row-major, labels [n], label_bits [n x
  // LabelWords(L)] (multi-label; else unused), split [n] (kSplit* bits; rows in no split count
  // nowhere).
  void Add(const float* logits, uint64_t n, const uint32_t* labels, const uint32_t* label_bits, const uint8_t* split);
  // The headline per split [train, valid, test]: accuracy, or micro-F1 at 0.5 for multi-label
  // (NaN for an empty split).
  double Headline(int split) const;
  // Multi-label figures of split [0, 3) (all NaN for multi-class).
  MultiLabelMetrics MultiLabel(int split) const;
  // All of the above.
  Accuracy Summary() const;
  // Memory the scores kept for ROC-AUC take: 5 bytes a (node, task) pair of the validation and
  // test splits (the training split's are not kept).
  static uint64_t PlannedBytes(uint64_t num_valid, uint64_t num_test, uint32_t label_tasks);

 private:
  struct Tally {
    uint64_t rows = 0, correct = 0;              // multi-class
    std::vector<uint64_t> tp, fp, fn;            // [L] at 0.5
    std::vector<uint64_t> ktp, kfp, kfn;         // [L] top-k
    std::vector<std::vector<float>> scores;      // [L][rows] valid/test only
    std::vector<std::vector<uint8_t>> positive;  // [L][rows]
  };
  uint32_t classes_, tasks_;
  mutable std::mutex mu_;
  Tally tally_[3];
};

}  // namespace cgcn
