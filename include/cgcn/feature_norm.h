// Input feature normalization (cgcn-train --feature-norm): none, row (PyG NormalizeFeatures) or
// standard (per-feature mean and standard deviation), with `auto` choosing from the data. The
// same normalization is applied to training batches, to full-graph evaluation and, through the
// model file, to cgcn-predict on any graph.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/shard_directory.h"
#include "cgcn/status.h"

namespace cgcn {

// Stored in the model file (docs/FORMAT.md, "Model file": the normalization field).
enum class FeatureNormKind : uint32_t { kNone = 0, kRow = 1, kStandard = 2 };

struct FeatureNorm {
  FeatureNormKind kind = FeatureNormKind::kRow;
  // With kStandard: x'[f] = (x[f] - mean[f]) * inv_std[f], [feat_dim] each (inv_std is 1 for a
  // feature with zero variance, which then becomes 0 everywhere).
  std::vector<float> mean, inv_std;

  static FeatureNorm None() { return FeatureNorm{FeatureNormKind::kNone, {}, {}}; }
  static FeatureNorm Row() { return FeatureNorm{FeatureNormKind::kRow, {}, {}}; }
  // Normalizes a [rows x cols] row-major block in place (cols must be mean.size() with kStandard).
  void Apply(float* data, uint64_t rows, uint32_t cols) const;
  std::string_view Name() const;  // "none", "row", "standard"
};

// What --feature-norm asks for.
enum class FeatureNormMode { kAuto, kNone, kRow, kStandard };
std::string_view FeatureNormModeName(FeatureNormMode mode);
// "auto", "none", "row" or "standard"; kInvalidArgument naming --feature-norm otherwise.
Result<FeatureNormMode> ParseFeatureNormMode(std::string_view text);

// Feature statistics from one pass over the shards' features (decoded cluster by cluster, in
// parallel; per-feature sums in double).
struct FeatureStats {
  uint64_t rows = 0;              // nodes counted
  double nonzero_fraction = 0;    // of the rows x feat_dim entries
  float min = 0, max = 0;         // over the counted entries
  std::vector<double> mean, std;  // [feat_dim], population standard deviation
};
// Over every node, or with train_only over the training nodes alone.
Result<FeatureStats> ComputeFeatureStats(const ShardDirectory& shards, bool train_only);

// `auto` picks row normalization for non-negative features with at most kSparseFraction of the
// entries non-zero (bag-of-words, as Cora's) and standardization otherwise (dense features, such
// as amazon-computers' review indicators at 35% non-zero, or features with negative values).
inline constexpr double kSparseFraction = 0.10;

// The normalization a run uses: `mode`, with auto resolved from the data, and standardization's
// statistics computed (over the training nodes with train_only, else over every node).
// *reason (optional) gets one line on why ("auto: standard (35.0% of features non-zero)").
Result<FeatureNorm> ResolveFeatureNorm(const ShardDirectory& shards, FeatureNormMode mode, bool train_only,
                                       std::string* reason = nullptr);

}  // namespace cgcn
