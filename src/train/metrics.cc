#include "cgcn/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cgcn/split.h"

namespace cgcn {

double F1Score(uint64_t tp, uint64_t fp, uint64_t fn) {
  const uint64_t d = 2 * tp + fp + fn;
  return d == 0 ? 0.0 : static_cast<double>(2 * tp) / static_cast<double>(d);
}

double RocAuc(std::span<const float> scores, std::span<const uint8_t> positive) {
  const size_t n = scores.size();
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  uint64_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) return kNoMetric;
    pos += positive[i] != 0;
  }
  const uint64_t neg = n - pos;
  if (pos == 0 || neg == 0) return kNoMetric;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  // Twice the count of (positive, negative) pairs ranked right, a tie counting one: exact in u64
  // up to 2^63 pairs. Scores are grouped by value, so the order within a tie does not matter.
  uint64_t twice = 0, neg_below = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t gp = 0, gn = 0;
    for (; j < n && scores[order[j]] == scores[order[i]]; ++j) (positive[order[j]] ? gp : gn) += 1;
    twice += gp * (2 * neg_below + gn);
    neg_below += gn;
    i = j;
  }
  return static_cast<double>(twice) / (2.0 * static_cast<double>(pos) * static_cast<double>(neg));
}

void TopKTasks(std::span<const float> scores, uint32_t k, uint32_t* words) {
  const auto L = static_cast<uint32_t>(scores.size());
  std::fill(words, words + LabelWords(L), 0u);
  k = std::min(k, L);
  std::vector<uint32_t> idx(L);
  std::iota(idx.begin(), idx.end(), 0u);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](uint32_t a, uint32_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  for (uint32_t i = 0; i < k; ++i) words[idx[i] / 32] |= uint32_t{1} << (idx[i] % 32);
}

SplitScorer::SplitScorer(uint32_t num_classes, uint32_t label_tasks) : classes_(num_classes), tasks_(label_tasks) {
  for (int s = 0; s < 3; ++s) {
    Tally& t = tally_[s];
    for (auto* v : {&t.tp, &t.fp, &t.fn, &t.ktp, &t.kfp, &t.kfn}) v->assign(tasks_, 0);
    if (s > 0) {
      t.scores.resize(tasks_);
      t.positive.resize(tasks_);
    }
  }
}

uint64_t SplitScorer::PlannedBytes(uint64_t num_valid, uint64_t num_test, uint32_t label_tasks) {
  return (num_valid + num_test) * label_tasks * (sizeof(float) + sizeof(uint8_t));
}

void SplitScorer::Add(const float* logits, uint64_t n, const uint32_t* labels, const uint32_t* label_bits,
                      const uint8_t* split) {
  const uint32_t C = classes_, L = tasks_, W = LabelWords(L);
  Tally local[3];
  for (Tally& t : local)
    for (auto* v : {&t.tp, &t.fp, &t.fn, &t.ktp, &t.kfp, &t.kfn}) v->assign(L, 0);
  std::vector<uint32_t> topk(W);
  for (uint64_t i = 0; i < n; ++i) {
    int s = -1;
    for (int b = 0; b < 3; ++b)
      if (split[i] & (1u << b)) s = b;
    if (s < 0 || labels[i] == kNoLabel) continue;
    const float* x = logits + i * C;
    Tally& t = local[s];
    ++t.rows;
    if (L == 0) {
      const auto pred = static_cast<uint32_t>(std::max_element(x, x + C) - x);  // first maximum, as Eigen's maxCoeff
      t.correct += pred == labels[i];
      continue;
    }
    const uint32_t* y = label_bits + i * W;
    uint32_t k = 0;
    for (uint32_t w = 0; w < W; ++w) k += static_cast<uint32_t>(__builtin_popcount(y[w]));
    TopKTasks(std::span<const float>(x, L), k, topk.data());
    for (uint32_t j = 0; j < L; ++j) {
      const bool truth = LabelBit(y, j), pred = x[j] >= 0.0f, kpred = LabelBit(topk.data(), j);
      t.tp[j] += truth && pred;
      t.fp[j] += !truth && pred;
      t.fn[j] += truth && !pred;
      t.ktp[j] += truth && kpred;
      t.kfp[j] += !truth && kpred;
      t.kfn[j] += truth && !kpred;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (int s = 0; s < 3; ++s) {
    Tally& g = tally_[s];
    const Tally& t = local[s];
    g.rows += t.rows;
    g.correct += t.correct;
    for (uint32_t j = 0; j < L; ++j) {
      g.tp[j] += t.tp[j];
      g.fp[j] += t.fp[j];
      g.fn[j] += t.fn[j];
      g.ktp[j] += t.ktp[j];
      g.kfp[j] += t.kfp[j];
      g.kfn[j] += t.kfn[j];
    }
  }
  if (L == 0) return;
  for (uint64_t i = 0; i < n; ++i) {  // the scores ROC-AUC needs, validation and test only
    if (labels[i] == kNoLabel || !(split[i] & (kSplitValid | kSplitTest))) continue;
    Tally& g = tally_[(split[i] & kSplitValid) ? 1 : 2];
    for (uint32_t j = 0; j < L; ++j) {
      g.scores[j].push_back(logits[i * C + j]);
      g.positive[j].push_back(LabelBit(label_bits + i * W, j) ? 1 : 0);
    }
  }
}

double SplitScorer::Headline(int s) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Tally& t = tally_[s];
  if (t.rows == 0) return kNoMetric;
  if (tasks_ == 0) return static_cast<double>(t.correct) / static_cast<double>(t.rows);
  uint64_t tp = 0, fp = 0, fn = 0;
  for (uint32_t j = 0; j < tasks_; ++j) {
    tp += t.tp[j];
    fp += t.fp[j];
    fn += t.fn[j];
  }
  return F1Score(tp, fp, fn);
}

MultiLabelMetrics SplitScorer::MultiLabel(int s) const {
  std::lock_guard<std::mutex> lock(mu_);
  MultiLabelMetrics m;
  const Tally& t = tally_[s];
  if (tasks_ == 0 || t.rows == 0) return m;
  uint64_t tp = 0, fp = 0, fn = 0, ktp = 0, kfp = 0, kfn = 0;
  double macro = 0, kmacro = 0;
  for (uint32_t j = 0; j < tasks_; ++j) {
    tp += t.tp[j];
    fp += t.fp[j];
    fn += t.fn[j];
    ktp += t.ktp[j];
    kfp += t.kfp[j];
    kfn += t.kfn[j];
    macro += F1Score(t.tp[j], t.fp[j], t.fn[j]);
    kmacro += F1Score(t.ktp[j], t.kfp[j], t.kfn[j]);
  }
  m.micro_f1 = F1Score(tp, fp, fn);
  m.macro_f1 = macro / tasks_;
  m.topk_micro_f1 = F1Score(ktp, kfp, kfn);
  m.topk_macro_f1 = kmacro / tasks_;
  if (s > 0) {
    double sum = 0;
    uint32_t counted = 0;
    for (uint32_t j = 0; j < tasks_; ++j) {
      const double a = RocAuc(t.scores[j], t.positive[j]);
      if (std::isnan(a)) continue;
      sum += a;
      ++counted;
    }
    if (counted > 0) m.roc_auc = sum / counted;
  }
  return m;
}

Accuracy SplitScorer::Summary() const {
  Accuracy a;
  a.train = Headline(0);
  a.valid = Headline(1);
  a.test = Headline(2);
  a.label_tasks = tasks_;
  for (int s = 0; s < 3; ++s) a.multi_label[s] = MultiLabel(s);
  return a;
}

}  // namespace cgcn
