// Predictions: one class per node, written as a "node_id,label" CSV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

// The predicted class of one node (its original id).
struct Prediction {
  uint32_t node_id;
  uint32_t label;
};

// CSV "node_id,label" sorted by node id, written atomically (WriteFileAtomic).
Status WritePredictions(const std::string& path, std::vector<Prediction> predictions);

}  // namespace cgcn
