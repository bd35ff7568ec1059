// Predictions: one class per node, written as a "node_id,label" CSV (with class probabilities,
// "node_id,label,p0,...,p{C-1}"). cgcn-train --predict-out and cgcn-predict write them here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

// The predicted class of one node (its original id).
struct Prediction {
  uint32_t node_id;
  uint32_t label;
};

// CSV "node_id,label" sorted by node id, written atomically (WriteFileAtomic). With
// probabilities ([predictions.size() x classes], row i belonging to predictions[i]), each line
// also holds the node's class probabilities (shortest round-trip decimal form).
Status WritePredictions(const std::string& path, std::vector<Prediction> predictions,
                        std::span<const float> probabilities = {}, uint32_t classes = 0);

// Before a run: `path` may be written as predictions only if it does not exist, is empty, or is
// a predictions file cgcn wrote (its first line starts "node_id,label"). Anything else is
// refused (kInvalidArgument naming `flag`, the path and its first line), so that a mistyped
// path never replaces someone's data. Other path checks are OutputPaths' (util/output_path.h).
Status CheckPredictionsPath(const std::string& flag, const std::string& path);

}  // namespace cgcn
