// Feature normalization (cgcn/feature_norm.h).
#include "cgcn/feature_norm.h"

#include <tbb/enumerable_thread_specific.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "cgcn/batch.h"
#include "cgcn/split.h"
#include "util/parallel.h"

namespace cgcn {

void FeatureNorm::Apply(float* data, uint64_t rows, uint32_t cols) const {
  switch (kind) {
    case FeatureNormKind::kNone:
      return;
    case FeatureNormKind::kRow:
      RowNormalize(data, rows, cols);
      return;
    case FeatureNormKind::kStandard:
      for (uint64_t i = 0; i < rows; ++i) {
        float* r = data + i * cols;
        for (uint32_t j = 0; j < cols; ++j) r[j] = (r[j] - mean[j]) * inv_std[j];
      }
      return;
  }
}

std::string_view FeatureNorm::Name() const {
  switch (kind) {
    case FeatureNormKind::kNone:
      return "none";
    case FeatureNormKind::kRow:
      return "row";
    case FeatureNormKind::kStandard:
      return "standard";
  }
  return "?";
}

std::string_view FeatureNormModeName(FeatureNormMode mode) {
  switch (mode) {
    case FeatureNormMode::kAuto:
      return "auto";
    case FeatureNormMode::kNone:
      return "none";
    case FeatureNormMode::kRow:
      return "row";
    case FeatureNormMode::kStandard:
      return "standard";
  }
  return "?";
}

Result<FeatureNormMode> ParseFeatureNormMode(std::string_view text) {
  for (FeatureNormMode m :
       {FeatureNormMode::kAuto, FeatureNormMode::kNone, FeatureNormMode::kRow, FeatureNormMode::kStandard})
    if (text == FeatureNormModeName(m)) return m;
  return Status::InvalidArgument("--feature-norm must be auto, none, row or standard, found '" + std::string(text) +
                                 "'");
}

namespace {
struct StatsLocal {
  ShardDecoder decoder;
  ClusterData data;
  std::vector<double> sum, sum_sq;
  uint64_t rows = 0, nonzero = 0;
  float min = std::numeric_limits<float>::infinity(), max = -std::numeric_limits<float>::infinity();
};
}  // namespace

Result<FeatureStats> ComputeFeatureStats(const ShardDirectory& shards, bool train_only) {
  const uint32_t F = shards.manifest().feat_dim;
  tbb::enumerable_thread_specific<StatsLocal> locals;
  CGCN_RETURN_IF_ERROR(ParallelFor(0u, shards.num_clusters(), "feature statistics", [&](uint32_t c) -> Status {
    StatsLocal& t = locals.local();
    if (t.sum.empty()) {
      t.sum.assign(F, 0.0);
      t.sum_sq.assign(F, 0.0);
    }
    CGCN_RETURN_IF_ERROR(
        shards.Load(c, SectionBit(SectionKind::kFeatures) | SectionBit(SectionKind::kSplit), t.decoder, t.data));
    for (uint32_t i = 0; i < t.data.num_nodes; ++i) {
      if (train_only && !(t.data.split[i] & kSplitTrain)) continue;
      const float* r = t.data.features.data() + uint64_t{i} * F;
      ++t.rows;
      for (uint32_t j = 0; j < F; ++j) {
        const float v = r[j];
        t.nonzero += v != 0.0f;
        t.min = std::min(t.min, v);
        t.max = std::max(t.max, v);
        t.sum[j] += v;
        t.sum_sq[j] += static_cast<double>(v) * v;
      }
    }
    return Status::Ok();
  }));
  FeatureStats s;
  std::vector<double> sum(F, 0.0), sum_sq(F, 0.0);
  uint64_t nonzero = 0;
  s.min = std::numeric_limits<float>::infinity();
  s.max = -std::numeric_limits<float>::infinity();
  for (const StatsLocal& t : locals) {
    if (t.sum.empty()) continue;
    s.rows += t.rows;
    nonzero += t.nonzero;
    s.min = std::min(s.min, t.min);
    s.max = std::max(s.max, t.max);
    for (uint32_t j = 0; j < F; ++j) {
      sum[j] += t.sum[j];
      sum_sq[j] += t.sum_sq[j];
    }
  }
  if (s.rows == 0) s.min = s.max = 0;
  const double n = static_cast<double>(s.rows);
  s.nonzero_fraction = s.rows && F ? static_cast<double>(nonzero) / (n * F) : 0.0;
  s.mean.assign(F, 0.0);
  s.std.assign(F, 0.0);
  if (s.rows)
    for (uint32_t j = 0; j < F; ++j) {
      s.mean[j] = sum[j] / n;
      s.std[j] = std::sqrt(std::max(0.0, sum_sq[j] / n - s.mean[j] * s.mean[j]));
    }
  return s;
}

Result<FeatureNorm> ResolveFeatureNorm(const ShardDirectory& shards, FeatureNormMode mode, bool train_only,
                                       std::string* reason) {
  if (mode == FeatureNormMode::kNone || mode == FeatureNormMode::kRow) {
    if (reason) *reason = std::string(FeatureNormModeName(mode)) + " (--feature-norm)";
    return mode == FeatureNormMode::kNone ? FeatureNorm::None() : FeatureNorm::Row();
  }
  CGCN_ASSIGN_OR_RETURN(FeatureStats s, ComputeFeatureStats(shards, train_only));
  FeatureNormKind kind = FeatureNormKind::kStandard;
  char why[160];
  if (mode == FeatureNormMode::kAuto) {
    const bool sparse = s.min >= 0.0f && s.nonzero_fraction <= kSparseFraction;
    kind = sparse ? FeatureNormKind::kRow : FeatureNormKind::kStandard;
    std::snprintf(why, sizeof why, "auto: %s (%.1f%% of feature values non-zero, minimum %g%s)",
                  sparse ? "row" : "standard", 100.0 * s.nonzero_fraction, static_cast<double>(s.min),
                  sparse         ? ": sparse non-negative, bag-of-words"
                  : s.min < 0.0f ? ": signed"
                                 : ": dense");
  } else {
    std::snprintf(why, sizeof why, "standard (--feature-norm)");
  }
  FeatureNorm norm;
  norm.kind = kind;
  if (kind == FeatureNormKind::kStandard) {
    const size_t F = s.mean.size();
    norm.mean.resize(F);
    norm.inv_std.resize(F);
    for (size_t j = 0; j < F; ++j) {
      norm.mean[j] = static_cast<float>(s.mean[j]);
      norm.inv_std[j] = s.std[j] > 1e-6 ? static_cast<float>(1.0 / s.std[j]) : 1.0f;
    }
    if (reason) {
      *reason = why;
      *reason += train_only ? ", statistics over the training nodes" : ", statistics over every node";
    }
  } else if (reason) {
    *reason = why;
  }
  return norm;
}

}  // namespace cgcn
